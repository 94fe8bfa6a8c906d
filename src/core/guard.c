/*
 * guard.c
 *		Refusals that keep the shop's record of money whole.
 *
 * A call that only the reconciler completes (a bill created after commit,
 * items made due) is refused in a database qiwi.database filters out (no
 * reconciler serves it): there it would be recorded and never done.
 *
 * A reporting copy is a database that subscribes, by logical replication,
 * to the extension's tables of another (pg_subscription_rel lists one of
 * them): its tables are written by the apply worker only.  There nothing
 * is sent that changes money or is recorded (the call would write rows the
 * primary never sees, and the next row it sends could collide with them),
 * no notification is applied and no worker acts.  Reading calls answer
 * without recording, as on a hot standby.
 *
 * Dropping the extension deletes its tables: the ledger of every bill,
 * payment, refund and event.  Whatever command drops it (DROP EXTENSION,
 * DROP SCHEMA ... CASCADE, DROP OWNED BY its owner, any cascade that
 * reaches it), the first of its tables to be dropped is announced to the
 * object access hook while all of them are still whole: if they hold rows,
 * the drop is refused with their counts, unless qiwi.drop_ledger is on by
 * SET LOCAL in that transaction.  The counting reads the tables directly:
 * no SQL, no search_path, no user code.
 */
#include "core/core.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_subscription.h"
#include "catalog/pg_subscription_rel.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#define DROP_LEDGER_SETTING "qiwi.drop_ledger"

static bool drop_ledger = false;
static object_access_hook_type prev_object_access_hook = NULL;

/* The drop the guard let through: later tables of the same drop are not counted again */
static Oid	allowed_extension = InvalidOid;
static LocalTransactionId allowed_lxid = InvalidLocalTransactionId;
static SubTransactionId allowed_subxid = InvalidSubTransactionId;

/* One table of the ledger, counted */
typedef struct LedgerCount
{
	char	   *table;
	int64		rows;
	int64		open;			/* rows whose status can still change */
	bool		has_open;		/* a table of items (ledger_add_table) */
} LedgerCount;

/* ---------- the reconciler's database ---------- */

/*
 * Refuse a call that only the reconciler completes (function: its SQL name;
 * undone: what would then never happen) unless a reconciler serves this
 * database: one does wherever the extension is (the caller's database has
 * it) unless qiwi.database filters it out.  Called before the call records
 * or queues anything.
 */
void
guard_require_reconciler(const char *function, const char *undone)
{
	char	   *here = get_database_name(MyDatabaseId);

	guard_refuse_reporting_copy(psprintf("use %s", function));
	if (!reconciler_registered())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s cannot be used: no reconciler runs in this server", function),
				 errdetail("The server runs in binary-upgrade mode, where the reconciler is not started: %s. Nothing was changed.",
						   undone)));
	if (qiwi_database == NULL || qiwi_database[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s cannot be used: the reconciler is off (qiwi.database is empty)", function),
				 errdetail("With no reconciler, %s. Nothing was changed.", undone),
				 errhint("Set qiwi.database = %s in postgresql.conf (or with ALTER SYSTEM) and reload the configuration (SELECT pg_reload_conf()).",
						 quote_literal_cstr(here))));
	if (!reconciler_serves(here))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s cannot be used in database \"%s\": the reconciler serves database \"%s\" (qiwi.database)",
						function, here, qiwi_database),
				 errdetail("qiwi.database lets reconcilers serve that database only ('*' serves every database with the extension); here %s. Nothing was changed.", undone),
				 errhint("Call it in database \"%s\", or set qiwi.database = %s in postgresql.conf (or with ALTER SYSTEM) and reload the configuration (SELECT pg_reload_conf()).",
						 qiwi_database, quote_literal_cstr(here))));
}

/* ---------- a reporting copy ---------- */

/*
 * Does a subscription of this database write into a table of qiwi_kassa
 * (a reporting copy)?  Then *subscription (if not NULL) is its name.  Read
 * from pg_subscription_rel, which has rows only in a subscriber's
 * databases, once per transaction (one must be open).
 */
bool
guard_reporting_copy(char **subscription)
{
	static LocalTransactionId looked_in = InvalidLocalTransactionId;
	static Oid	copied_by = InvalidOid;
	Oid			extension;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;

	if (looked_in != MyProc->lxid)
	{
		copied_by = InvalidOid;
		extension = get_extension_oid("qiwi_kassa", true);
		rel = table_open(SubscriptionRelRelationId, AccessShareLock);
		scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
		while (OidIsValid(extension) && HeapTupleIsValid(tuple = systable_getnext(scan)))
		{
			Form_pg_subscription_rel sr = (Form_pg_subscription_rel) GETSTRUCT(tuple);

			if (getExtensionOfObject(RelationRelationId, sr->srrelid) == extension)
			{
				copied_by = sr->srsubid;
				break;
			}
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
		looked_in = MyProc->lxid;
	}
	if (OidIsValid(copied_by) && subscription != NULL)
		*subscription = get_subscription_name(copied_by, true);
	return OidIsValid(copied_by);
}

/*
 * Refuse, before anything is sent or recorded, to do (what: "create a
 * bill") in a reporting copy.
 */
void
guard_refuse_reporting_copy(const char *what)
{
	char	   *subscription = NULL;

	if (!guard_reporting_copy(&subscription))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("cannot %s in a reporting copy of qiwi_kassa", what),
			 errdetail("Database \"%s\" subscribes to the tables of qiwi_kassa (subscription \"%s\"): only the primary writes them. Nothing was sent to QIWI or recorded.",
					   get_database_name(MyDatabaseId), subscription ? subscription : "?"),
			 errhint("Call it on the primary, the publisher of subscription \"%s\".",
					 subscription ? subscription : "?")));
}

/* ---------- qiwi.drop_ledger ---------- */

/*
 * qiwi.drop_ledger on is for SET LOCAL only: refuse it where it would be
 * stored for every session (a file, a database's or role's settings, a
 * function's SET clause), since the guard would ignore it there.
 */
static bool
check_drop_ledger(bool *newval, void **extra, GucSource source)
{
	switch (source)
	{
		case PGC_S_FILE:
		case PGC_S_TEST:
		case PGC_S_GLOBAL:
		case PGC_S_DATABASE:
		case PGC_S_USER:
		case PGC_S_DATABASE_USER:
			if (!*newval)
				return true;
			GUC_check_errcode(ERRCODE_CANT_CHANGE_RUNTIME_PARAM);
			GUC_check_errmsg("qiwi.drop_ledger can only be set with SET LOCAL, for one transaction");
			GUC_check_errhint("Run BEGIN; SET LOCAL qiwi.drop_ledger = on; DROP EXTENSION qiwi_kassa; COMMIT; once the ledger is dumped.");
			return false;
		default:
			return true;
	}
}

/*
 * Is qiwi.drop_ledger on by SET LOCAL (or set_config(..., true)) in this
 * transaction?  A session-wide SET outlives the transaction it was meant
 * for, so it does not count.
 */
static bool
drop_ledger_set_locally(void)
{
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	if (!drop_ledger)
		return false;
	for (int i = 0; i < n; i++)
		if (strcmp(vars[i]->name, DROP_LEDGER_SETTING) == 0)
			return vars[i]->stack != NULL &&
				(vars[i]->stack->state == GUC_LOCAL || vars[i]->stack->state == GUC_SET_LOCAL);
	return false;
}

/* ---------- counting the ledger ---------- */

/* Is a status (a text Datum) one of the table's open statuses? */
static bool
status_is_open(const LedgerTable *table, Datum status)
{
	return qiwi_name_in(TextDatumGetCString(status), table->open_statuses);
}

/* Count a table's rows, and its open ones if it is a table of items, by a plain scan */
static void
count_table(Oid relid, LedgerCount *count)
{
	Relation	rel = table_open(relid, AccessShareLock);
	const LedgerTable *items = ledger_table_named(RelationGetRelationName(rel));
	AttrNumber	status = InvalidAttrNumber;
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	TableScanDesc scan;
	TupleTableSlot *slot;

	if (items != NULL)
	{
		status = get_attnum(relid, items->status_column);
		if (status != InvalidAttrNumber && get_atttype(relid, status) != TEXTOID)
			status = InvalidAttrNumber;
	}
	count->table = pstrdup(RelationGetRelationName(rel));
	count->rows = 0;
	count->open = 0;
	count->has_open = status != InvalidAttrNumber;
	scan = table_beginscan(rel, snapshot, 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		value;

		CHECK_FOR_INTERRUPTS();
		count->rows++;
		if (status == InvalidAttrNumber)
			continue;
		value = slot_getattr(slot, status, &isnull);
		if (!isnull && status_is_open(items, value))
			count->open++;
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
}

/* Order counts by table name */
static int
count_cmp(const void *a, const void *b)
{
	return strcmp(((const LedgerCount *) a)->table, ((const LedgerCount *) b)->table);
}

/*
 * Count the rows of every table of the extension (its member tables, as
 * pg_depend records them: a table a later version adds is counted too;
 * not the due watermark);
 * how many tables, *counts sorted by name.
 */
static int
count_ledger(Oid extension, LedgerCount **counts)
{
	Relation	depend = table_open(DependRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tuple;
	List	   *tables = NIL;
	ListCell   *lc;
	int			n = 0;

	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ExtensionRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extension));
	scan = systable_beginscan(depend, DependReferenceIndexId, true, NULL, 2, key);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tuple);
		char		kind;

		if (dep->classid != RelationRelationId || dep->deptype != DEPENDENCY_EXTENSION)
			continue;
		kind = get_rel_relkind(dep->objid);
		/* the due watermark's one row is the reconciler's state, no ledger */
		if ((kind == RELKIND_RELATION || kind == RELKIND_PARTITIONED_TABLE) &&
			strcmp(get_rel_name(dep->objid), "qiwi_reconcile_watermark") != 0)
			tables = lappend_oid(tables, dep->objid);
	}
	systable_endscan(scan);
	table_close(depend, AccessShareLock);

	*counts = palloc(sizeof(LedgerCount) * Max(list_length(tables), 1));
	foreach(lc, tables)
		count_table(lfirst_oid(lc), &(*counts)[n++]);
	qsort(*counts, n, sizeof(LedgerCount), count_cmp);
	return n;
}

/* "qiwi_bills: 3 rows (1 open), ...": the tables that hold rows, with the totals */
static char *
describe_counts(const LedgerCount *counts, int n, int64 *rows, int64 *open_items, int *tables)
{
	StringInfoData buf;

	initStringInfo(&buf);
	*rows = 0;
	*open_items = 0;
	*tables = 0;
	for (int i = 0; i < n; i++)
	{
		if (counts[i].rows == 0)
			continue;
		appendStringInfo(&buf, "%s%s: " INT64_FORMAT " %s", buf.len > 0 ? ", " : "",
						 counts[i].table, counts[i].rows, counts[i].rows == 1 ? "row" : "rows");
		if (counts[i].has_open)
			appendStringInfo(&buf, " (" INT64_FORMAT " open)", counts[i].open);
		*rows += counts[i].rows;
		*open_items += counts[i].open;
		(*tables)++;
	}
	return buf.data;
}

/* ---------- the drop ---------- */

/*
 * A table of the extension (table) is about to be dropped, the first of this drop:
 * the extension goes with it (a member is dropped only with its extension,
 * outside its own scripts).  Refuse while the ledger holds rows, unless
 * qiwi.drop_ledger is on by SET LOCAL; then say what is deleted.
 */
static void
guard_ledger_drop(Oid extension, Oid table)
{
	LedgerCount *counts;
	int			n = count_ledger(extension, &counts);
	int64		rows;
	int64		open_items;
	int			tables;
	char	   *detail = describe_counts(counts, n, &rows, &open_items, &tables);
	char	   *schema;

	if (rows == 0)
		return;
	if (drop_ledger_set_locally())
	{
		ereport(WARNING,
				(errmsg("dropping extension qiwi_kassa deletes its ledger, as qiwi.drop_ledger allows (rows: " INT64_FORMAT ", tables: %d, open items: " INT64_FORMAT ")",
						rows, tables, open_items),
				 errdetail("%s.", detail)));
		return;
	}
	schema = get_namespace_name(get_rel_namespace(table));
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("dropping extension qiwi_kassa would delete its ledger (rows: " INT64_FORMAT ", tables: %d, open items: " INT64_FORMAT ")",
					rows, tables, open_items),
			 errdetail("%s. Open items are rows whose status can still change.%s",
					   detail, drop_ledger ?
					   " qiwi.drop_ledger is on, but not by SET LOCAL in this transaction, so it does not count." : ""),
			 errhint("Dump the tables first (pg_dump -t '%s.qiwi_*' %s, or the whole database), then drop deliberately, in one transaction: BEGIN; SET LOCAL qiwi.drop_ledger = on; DROP EXTENSION qiwi_kassa; COMMIT;",
					 quote_identifier(schema), quote_identifier(get_database_name(MyDatabaseId)))));
}

/*
 * The object access hook: before a table of qiwi_kassa is dropped, the
 * guard, once per drop.  Not in binary-upgrade mode, nor in the extension's
 * own scripts (an update may drop a table of its own).
 */
static void
guard_object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	Oid			extension;

	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_POST_CREATE && classId == ExtensionRelationId)
		reconciler_extension_created();
	if (access != OAT_DROP || classId != RelationRelationId || subId != 0 || IsBinaryUpgrade)
		return;
	extension = get_extension_oid("qiwi_kassa", true);
	if (!OidIsValid(extension) || (creating_extension && CurrentExtensionObject == extension))
		return;
	if (getExtensionOfObject(RelationRelationId, objectId) != extension)
		return;
	if (allowed_extension == extension && allowed_lxid == MyProc->lxid &&
		allowed_subxid == GetCurrentSubTransactionId())
		return;
	guard_ledger_drop(extension, objectId);
	allowed_extension = extension;
	allowed_lxid = MyProc->lxid;
	allowed_subxid = GetCurrentSubTransactionId();
}

/* Define qiwi.drop_ledger; install the drop guard (from _PG_init) */
void
guard_init(void)
{
	DefineCustomBoolVariable(DROP_LEDGER_SETTING,
							 "Lets this transaction drop qiwi_kassa while its tables hold rows.",
							 "Only SET LOCAL counts. Dropping the extension deletes every bill, payment, refund and event it recorded: dump them first.",
							 &drop_ledger,
							 false,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							 check_drop_ledger, NULL, NULL);

	prev_object_access_hook = object_access_hook;
	object_access_hook = guard_object_access;
}
