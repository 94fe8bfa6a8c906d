/*
 * store.c
 *		Bookkeeping of bills and refunds in the extension's tables.
 *
 * The SQL functions record every answer QIWI gives in qiwi_bills and
 * qiwi_refunds, in the caller's transaction.  The writes run as the
 * extension's owner, so a role needs EXECUTE on a function, not write
 * access to the tables.  A bill only moves forward: a final status is
 * never replaced by WAITING nor by another final status.
 */
#include "qiwi_kassa.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#define BILL_NARGS 12
#define REFUND_NARGS 6

/* Prepared statements, valid for the schema they were prepared in */
static Oid	plans_schema = InvalidOid;
static SPIPlanPtr bill_refresh_plan = NULL;
static SPIPlanPtr bill_record_plan = NULL;
static SPIPlanPtr bill_insert_plan = NULL;
static SPIPlanPtr bill_lock_plan = NULL;
static SPIPlanPtr refund_upsert_plan = NULL;
static SPIPlanPtr event_insert_plan = NULL;
static SPIPlanPtr check_result_plan = NULL;
static SPIPlanPtr due_bills_plan = NULL;
static SPIPlanPtr make_due_plan = NULL;
static SPIPlanPtr refund_headroom_plan = NULL;
static SPIPlanPtr intent_insert_plan = NULL;
static SPIPlanPtr create_failed_plan = NULL;

/* The user to restore after writing as the extension's owner */
typedef struct OwnerContext
{
	Oid			save_userid;
	int			save_sec_context;
	int			guc_nestlevel;	/* undoes the fixed search_path */
	MemoryContext caller_context;	/* survives SPI_finish */
} OwnerContext;

/*
 * The search_path of every statement run as the owner: the caller's path
 * could name a schema of its own, whose functions and operators would then
 * run with the owner's rights.  The extension's tables are named with
 * their schema; pg_temp last, so it can shadow nothing.
 */
#define OWNER_SEARCH_PATH "pg_catalog, pg_temp"


/*
 * Look the extension up in pg_extension: its schema, its owner and its
 * version (palloc'd); false if it is not installed in this database.
 */
static bool
extension_lookup(Oid *schema, Oid *owner, char **version)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("qiwi_kassa"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	found = HeapTupleIsValid(tuple);
	if (found)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		*schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
		*owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
		*version = isnull ? pstrdup("") : TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Is the extension installed here, and are its SQL objects the version
 * this library was built for?  After a package upgrade and before ALTER
 * EXTENSION ... UPDATE, the tables lack what the library writes.
 */
ExtensionState
store_extension_state(void)
{
	Oid			schema;
	Oid			owner;
	char	   *version;

	if (!extension_lookup(&schema, &owner, &version))
		return EXTENSION_NOT_INSTALLED;
	return strcmp(version, QIWI_KASSA_VERSION) == 0 ? EXTENSION_READY : EXTENSION_OLD_VERSION;
}

/* Prepare a statement and keep it for the backend's life */
static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* Free a kept statement, if any */
static void
free_plan(SPIPlanPtr *plan)
{
	if (*plan != NULL)
		SPI_freeplan(*plan);
	*plan = NULL;
}

/* (Re)build the statements for the schema the extension lives in */
static void
prepare_plans(Oid schema)
{
	const char *nsp;
	const char *bill_columns =
		"bill_id, site_id, amount, currency, status, status_changed_at,"
		" created_at, expires_at, pay_url, comment, customer, custom_fields";
	Oid			bill_types[BILL_NARGS] = {
		TEXTOID, TEXTOID, NUMERICOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID
	};
	Oid			refund_types[REFUND_NARGS] = {
		TEXTOID, TEXTOID, NUMERICOID, TEXTOID, TEXTOID, TIMESTAMPTZOID
	};
	Oid			record_types[BILL_NARGS + 2];
	Oid			check_types[5] = {TEXTOID, BOOLOID, TEXTOID, FLOAT8OID, FLOAT8OID};
	Oid			int_type[1] = {INT4OID};
	Oid			event_types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Oid			intent_types[7] = {TEXTOID, NUMERICOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, JSONBOID, JSONBOID};

	memcpy(record_types, bill_types, sizeof(bill_types));
	record_types[BILL_NARGS] = FLOAT8OID;	/* seconds until the first check */
	record_types[BILL_NARGS + 1] = BOOLOID; /* from a notification */

	if (plans_schema == schema && bill_record_plan != NULL)
		return;
	free_plan(&bill_refresh_plan);
	free_plan(&bill_record_plan);
	free_plan(&bill_insert_plan);
	free_plan(&bill_lock_plan);
	free_plan(&refund_upsert_plan);
	free_plan(&event_insert_plan);
	free_plan(&check_result_plan);
	free_plan(&due_bills_plan);
	free_plan(&make_due_plan);
	free_plan(&refund_headroom_plan);
	free_plan(&intent_insert_plan);
	free_plan(&create_failed_plan);

	nsp = quote_identifier(get_namespace_name(schema));
	/* the common case, an answer repeating the recorded status and money: one plain UPDATE */
	bill_refresh_plan = prepare_kept(psprintf(
		"UPDATE %s.qiwi_bills SET (%s, checked_at) ="
		" ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp()),"
		" failures = 0, last_error = NULL"
		" WHERE bill_id = $1 AND status = $5 AND amount = $3 AND currency = $4",
		nsp, bill_columns),
		BILL_NARGS, record_types);

	/*
	 * Otherwise lock the bill's row, decide and update in one statement.
	 * With the shop's amount and currency: a repeated status refreshes the
	 * row (not for a notification: that is a duplicate), an open bill
	 * (WAITING, CREATING, CREATE_FAILED) moves to another status, nothing
	 * else moves.  A notification ($14) signs only money, ids and status:
	 * it never replaces the other columns that an API answer gave.  With
	 * other money the bill becomes MISMATCH, keeping the shop's amount and
	 * what QIWI said beside it.  It returns the row's status, amount and
	 * currency (NULL when there is no row yet) and whether anything moved.
	 */
	bill_record_plan = prepare_kept(psprintf(
		"WITH old AS (SELECT status, amount, currency, site_id,"
		"  amount = $3 AND currency = $4 AS same_money,"
		"  NOT $14 OR site_id IS NULL OR $2 IS NULL OR site_id = $2 AS same_site"
		"  FROM %1$s.qiwi_bills WHERE bill_id = $1 FOR UPDATE),"
		" upd AS (UPDATE %1$s.qiwi_bills b SET"
		"  site_id = CASE WHEN $14 THEN coalesce(b.site_id, $2) ELSE $2 END,"
		"  status = $5,"
		"  status_changed_at = CASE WHEN $14 THEN clock_timestamp() ELSE $6 END,"
		"  created_at = CASE WHEN $14 THEN coalesce(b.created_at, $7) ELSE $7 END,"
		"  expires_at = CASE WHEN $14 THEN coalesce(b.expires_at, $8) ELSE $8 END,"
		"  pay_url = CASE WHEN $14 THEN b.pay_url ELSE $9 END,"
		"  comment = CASE WHEN $14 THEN coalesce(b.comment, $10) ELSE $10 END,"
		"  customer = CASE WHEN $14 THEN coalesce(b.customer, $11) ELSE $11 END,"
		"  custom_fields = CASE WHEN $14 THEN coalesce(b.custom_fields, $12) ELSE $12 END,"
		"  checked_at = clock_timestamp(), failures = 0, last_error = NULL"
		"  FROM old WHERE b.bill_id = $1 AND old.same_money AND old.same_site"
		"  AND ((old.status = $5 AND NOT $14)"
		"   OR (old.status IN ('WAITING', 'CREATING', 'CREATE_FAILED') AND $5 <> old.status))"
		"  RETURNING 1),"
		" mis AS (UPDATE %1$s.qiwi_bills b SET"
		"  status = 'MISMATCH', qiwi_amount = $3, qiwi_currency = $4, qiwi_status = $5,"
		"  status_changed_at = CASE WHEN old.status = 'MISMATCH' THEN b.status_changed_at ELSE clock_timestamp() END,"
		"  checked_at = clock_timestamp(), failures = 0, last_error = NULL"
		"  FROM old WHERE b.bill_id = $1 AND NOT old.same_money AND old.same_site"
		"  AND old.status IN ('WAITING', 'CREATING', 'CREATE_FAILED', 'MISMATCH')"
		"  RETURNING 1)"
		" SELECT old.status, old.amount, old.currency, old.same_money, old.same_site,"
		"  (SELECT count(*) FROM upd) + (SELECT count(*) FROM mis)"
		" FROM old", nsp),
		BILL_NARGS + 2, record_types);
	bill_insert_plan = prepare_kept(psprintf(
		"INSERT INTO %s.qiwi_bills (%s, checked_at, next_check_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp(),"
		" clock_timestamp() + make_interval(secs => $13))"
		" ON CONFLICT (bill_id) DO NOTHING", nsp, bill_columns),
		BILL_NARGS + 1, record_types);
	bill_lock_plan = prepare_kept(psprintf(
		"SELECT status, amount, currency FROM %s.qiwi_bills WHERE bill_id = $1 FOR UPDATE", nsp),
		1, event_types);
	refund_upsert_plan = prepare_kept(psprintf(
		"INSERT INTO %s.qiwi_refunds AS r (bill_id, refund_id, amount, currency,"
		" status, created_at, checked_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())"
		" ON CONFLICT (bill_id, refund_id) DO UPDATE SET"
		" amount = EXCLUDED.amount, currency = EXCLUDED.currency,"
		" status = EXCLUDED.status,"
		" created_at = coalesce(EXCLUDED.created_at, r.created_at),"
		" checked_at = EXCLUDED.checked_at", nsp),
		REFUND_NARGS, refund_types);
	event_insert_plan = prepare_kept(psprintf(
		"INSERT INTO %s.qiwi_bill_events (bill_id, old_status, new_status, source)"
		" VALUES ($1, $2, $3, $4)", nsp),
		4, event_types);

	/*
	 * A WAITING bill is checked again after base * 2^checks (capped), a
	 * failed check after base * 2^failures (capped); a bill is due as soon
	 * as it expires, and every base seconds once it has.
	 */
	check_result_plan = prepare_kept(psprintf(
		"UPDATE %s.qiwi_bills SET"
		" checked_at = CASE WHEN $2 THEN checked_at ELSE clock_timestamp() END,"
		" check_count = check_count + CASE WHEN $2 THEN 0 ELSE 1 END,"
		" failures = CASE WHEN $2 THEN failures + 1 ELSE 0 END,"
		" last_error = $3,"
		" next_check_at = CASE"
		"  WHEN expires_at <= clock_timestamp() AND NOT $2 THEN clock_timestamp() + make_interval(secs => $4)"
		"  ELSE least(clock_timestamp() + make_interval(secs => least($5, $4 * power(2, least(CASE WHEN $2 THEN failures + 1 ELSE check_count + 1 END, 30)))),"
		"             coalesce(expires_at + interval '1 second', 'infinity'))"
		"  END"
		" WHERE bill_id = $1 AND status IN ('WAITING', 'CREATING')", nsp),
		5, check_types);
	due_bills_plan = prepare_kept(psprintf(
		"SELECT bill_id, status, amount, currency, expires_at, comment, customer, custom_fields"
		" FROM %s.qiwi_bills"
		" WHERE status IN ('WAITING', 'CREATING') AND next_check_at <= clock_timestamp()"
		" ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED", nsp),
		1, int_type);
	make_due_plan = prepare_kept(psprintf(
		"UPDATE %s.qiwi_bills SET next_check_at = clock_timestamp(), failures = 0"
		" WHERE status IN ('WAITING', 'CREATING')", nsp),
		0, NULL);
	refund_headroom_plan = prepare_kept(psprintf(
		"SELECT b.amount, coalesce(sum(r.amount) FILTER (WHERE r.refund_id <> $2), 0)"
		" FROM %1$s.qiwi_bills b LEFT JOIN %1$s.qiwi_refunds r ON r.bill_id = b.bill_id"
		" WHERE b.bill_id = $1 GROUP BY b.amount", nsp),
		2, event_types);
	intent_insert_plan = prepare_kept(psprintf(
		"INSERT INTO %s.qiwi_bills (bill_id, amount, currency, status, expires_at, comment,"
		" customer, custom_fields, checked_at, next_check_at)"
		" VALUES ($1, $2, $3, 'CREATING', $4, $5, $6, $7, clock_timestamp(), clock_timestamp())"
		" ON CONFLICT (bill_id) DO NOTHING", nsp),
		7, intent_types);
	create_failed_plan = prepare_kept(psprintf(
		"UPDATE %s.qiwi_bills SET status = 'CREATE_FAILED', last_error = $2, checked_at = clock_timestamp()"
		" WHERE bill_id = $1 AND status = 'CREATING'", nsp),
		2, event_types);
	plans_schema = schema;
}

static LocalTransactionId looked_up_in = InvalidLocalTransactionId;
static Oid	extension_schema;
static Oid	extension_owner;

/*
 * Check that the bookkeeping can run: the extension is installed here, at
 * the library's version.  The SQL functions call it before any request,
 * so that nothing is sent whose answer could not be recorded.
 */
void
store_require_ready(void)
{
	/* the extension cannot move within a transaction: look it up once per transaction */
	if (looked_up_in != MyProc->lxid)
	{
		char	   *version;

		if (!extension_lookup(&extension_schema, &extension_owner, &version))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("extension \"qiwi_kassa\" is not installed in this database")));
		if (strcmp(version, QIWI_KASSA_VERSION) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the SQL objects of qiwi_kassa are version %s, but its library is version %s",
							version, QIWI_KASSA_VERSION),
					 errhint("Run ALTER EXTENSION qiwi_kassa UPDATE.")));
		looked_up_in = MyProc->lxid;
	}
}

/* Become the extension's owner and connect to SPI with the statements ready */
static void
begin_as_owner(OwnerContext *ctx)
{
	store_require_ready();
	ctx->caller_context = CurrentMemoryContext;
	GetUserIdAndSecContext(&ctx->save_userid, &ctx->save_sec_context);
	SetUserIdAndSecContext(extension_owner, ctx->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	/* an error before end_as_owner undoes both at (sub)transaction abort */
	ctx->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", OWNER_SEARCH_PATH, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans(extension_schema);
}

/* Disconnect from SPI and become the calling user again */
static void
end_as_owner(OwnerContext *ctx)
{
	SPI_finish();
	AtEOXact_GUC(true, ctx->guc_nestlevel);
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec_context);
}

/* Run a kept statement, checking its result code */
static uint64
run_plan(SPIPlanPtr plan, Datum *values, const char *nulls, int expected)
{
	int			rc = SPI_execute_plan(plan, values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "recording a QIWI answer failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* A text Datum, or a NULL marker, for a possibly absent string */
static Datum
text_or_null(const char *s, char *null)
{
	*null = (s == NULL) ? 'n' : ' ';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* The name a source has in qiwi_bill_events */
static const char *
source_name(StoreSource source)
{
	switch (source)
	{
		case SOURCE_CALL:
			return "call";
		case SOURCE_RECONCILER:
			return "reconciler";
		case SOURCE_NOTIFICATION:
			return "notification";
	}
	return "call";
}

/* Record a status change in qiwi_bill_events and announce it at commit */
static void
record_event(const char *bill_id, const char *old_status, const char *new_status,
			 StoreSource source)
{
	Datum		values[4];
	char		nulls[5] = "    ";
	StringInfoData payload;

	values[0] = CStringGetTextDatum(bill_id);
	values[1] = text_or_null(old_status, &nulls[1]);
	values[2] = CStringGetTextDatum(new_status);
	values[3] = CStringGetTextDatum(source_name(source));
	run_plan(event_insert_plan, values, nulls, SPI_OK_INSERT);

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"bill_id\":");
	escape_json(&payload, bill_id);
	appendStringInfoString(&payload, ",\"status\":");
	escape_json(&payload, new_status);
	appendStringInfoString(&payload, ",\"source\":");
	escape_json(&payload, source_name(source));
	appendStringInfoChar(&payload, '}');
	Async_Notify("qiwi_bill_status", payload.data);
}

/*
 * Record what QIWI said about a bill in qiwi_bills, moving the row only
 * forward, and say what happened; *stored (if given) gets the row's status
 * before the call and the shop's amount and currency.  A repeated status
 * refreshes the row for an API answer and is left alone for a notification
 * (a duplicate).  Other money than the shop's makes an open bill MISMATCH.
 * Each status change is recorded in qiwi_bill_events and NOTIFYed.
 */
StoreOutcome
store_bill(const QiwiBill *bill, StoreSource source, StoredBill *stored)
{
	Datum		values[BILL_NARGS + 2];
	char		nulls[BILL_NARGS + 3];
	OwnerContext ctx;
	StoreOutcome outcome;
	char	   *old_status = NULL;
	Numeric		shop_amount = bill->amount;
	char	   *shop_currency = bill->currency;
	bool		same_money = true;
	bool		same_site = true;
	int64		moved = 0;

	memset(nulls, ' ', BILL_NARGS + 2);
	nulls[BILL_NARGS + 2] = '\0';
	values[0] = CStringGetTextDatum(bill->bill_id);
	values[1] = text_or_null(bill->site_id, &nulls[1]);
	values[2] = NumericGetDatum(bill->amount);
	values[3] = CStringGetTextDatum(bill->currency);
	values[4] = CStringGetTextDatum(bill->status);
	values[5] = TimestampTzGetDatum(bill->status_changed_at);
	nulls[5] = bill->has_status_changed_at ? ' ' : 'n';
	values[6] = TimestampTzGetDatum(bill->created_at);
	nulls[6] = bill->has_created_at ? ' ' : 'n';
	values[7] = TimestampTzGetDatum(bill->expires_at);
	nulls[7] = bill->has_expires_at ? ' ' : 'n';
	/* a payment link is not signed: only an API answer may give one */
	values[8] = text_or_null(source == SOURCE_NOTIFICATION ? NULL : bill->pay_url, &nulls[8]);
	values[9] = text_or_null(bill->comment, &nulls[9]);
	values[10] = PointerGetDatum(bill->customer);
	nulls[10] = bill->customer ? ' ' : 'n';
	values[11] = PointerGetDatum(bill->custom_fields);
	nulls[11] = bill->custom_fields ? ' ' : 'n';
	values[12] = Float8GetDatum((double) qiwi_reconcile_interval_s);

	values[13] = BoolGetDatum(source == SOURCE_NOTIFICATION);

	begin_as_owner(&ctx);
	if (source != SOURCE_NOTIFICATION &&
		run_plan(bill_refresh_plan, values, nulls, SPI_OK_UPDATE) > 0)
	{
		end_as_owner(&ctx);
		if (stored != NULL)
		{
			stored->status = pstrdup(bill->status);
			stored->amount = bill->amount;
			stored->currency = bill->currency;
		}
		return STORE_REFRESHED;
	}
	for (;;)
	{
		HeapTuple	row;
		TupleDesc	desc;
		bool		isnull;
		MemoryContext spi_context;

		/* lock the row and record the answer, deciding under the lock */
		if (run_plan(bill_record_plan, values, nulls, SPI_OK_SELECT) > 0)
		{
			row = SPI_tuptable->vals[0];
			desc = SPI_tuptable->tupdesc;
			/* they outlive SPI_finish: the caller reports them */
			spi_context = MemoryContextSwitchTo(ctx.caller_context);
			old_status = TextDatumGetCString(SPI_getbinval(row, desc, 1, &isnull));
			shop_amount = DatumGetNumericCopy(SPI_getbinval(row, desc, 2, &isnull));
			shop_currency = TextDatumGetCString(SPI_getbinval(row, desc, 3, &isnull));
			MemoryContextSwitchTo(spi_context);
			same_money = DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
			same_site = DatumGetBool(SPI_getbinval(row, desc, 5, &isnull));
			moved = DatumGetInt64(SPI_getbinval(row, desc, 6, &isnull));
			break;
		}
		if (run_plan(bill_insert_plan, values, nulls, SPI_OK_INSERT) > 0)
			break;
		/* a concurrent writer inserted it first: lock and decide again */
	}

	if (old_status == NULL)
		outcome = STORE_INSERTED;
	else if (!same_site)
		outcome = STORE_FOREIGN_SITE;
	else if (!same_money)
		outcome = STORE_MISMATCH;
	else if (strcmp(old_status, bill->status) == 0)
		outcome = (source == SOURCE_NOTIFICATION) ? STORE_DUPLICATE : STORE_REFRESHED;
	else if (moved > 0)
		outcome = STORE_ADVANCED;
	else
		outcome = STORE_STALE;	/* final already; never replaced */

	if (outcome == STORE_INSERTED || outcome == STORE_ADVANCED)
		record_event(bill->bill_id, old_status, bill->status, source);
	else if (outcome == STORE_MISMATCH && moved > 0 && strcmp(old_status, "MISMATCH") != 0)
		record_event(bill->bill_id, old_status, "MISMATCH", source);
	end_as_owner(&ctx);

	if (stored != NULL)
	{
		stored->status = old_status ? old_status : pstrdup(bill->status);
		stored->amount = shop_amount;
		stored->currency = shop_currency;
	}
	return outcome;
}

/*
 * Lock a bill's row before a call that changes it at QIWI, so that the
 * answer can be recorded (a conflicting writer or a serialization failure
 * shows now, before anything is sent); false if the bill is unknown.
 */
bool
store_lock_bill(const char *bill_id, StoredBill *stored)
{
	Datum		values[1] = {CStringGetTextDatum(bill_id)};
	OwnerContext ctx;
	bool		known;

	begin_as_owner(&ctx);
	known = run_plan(bill_lock_plan, values, NULL, SPI_OK_SELECT) > 0;
	if (known)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext spi_context = MemoryContextSwitchTo(ctx.caller_context);

		stored->status = TextDatumGetCString(SPI_getbinval(row, desc, 1, &isnull));
		stored->amount = DatumGetNumericCopy(SPI_getbinval(row, desc, 2, &isnull));
		stored->currency = TextDatumGetCString(SPI_getbinval(row, desc, 3, &isnull));
		MemoryContextSwitchTo(spi_context);
	}
	end_as_owner(&ctx);
	return known;
}

/* Record what QIWI said about a refund in qiwi_refunds */
void
store_refund(const QiwiRefund *refund)
{
	Datum		values[REFUND_NARGS];
	char		nulls[REFUND_NARGS + 1];
	OwnerContext ctx;

	memset(nulls, ' ', REFUND_NARGS);
	nulls[REFUND_NARGS] = '\0';
	values[0] = CStringGetTextDatum(refund->bill_id);
	values[1] = CStringGetTextDatum(refund->refund_id);
	values[2] = NumericGetDatum(refund->amount);
	values[3] = CStringGetTextDatum(refund->currency);
	values[4] = CStringGetTextDatum(refund->status);
	values[5] = TimestampTzGetDatum(refund->created_at);
	nulls[5] = refund->has_created_at ? ' ' : 'n';

	begin_as_owner(&ctx);
	run_plan(refund_upsert_plan, values, nulls, SPI_OK_INSERT);
	end_as_owner(&ctx);
}

/* Record a reconciler check that left a bill WAITING, or that failed */
void
store_check_result(const char *bill_id, bool failed, const char *error)
{
	Datum		values[5];
	char		nulls[6] = "     ";
	OwnerContext ctx;

	values[0] = CStringGetTextDatum(bill_id);
	values[1] = BoolGetDatum(failed);
	values[2] = text_or_null(error ? qiwi_redact_secrets(error) : NULL, &nulls[2]);
	values[3] = Float8GetDatum((double) qiwi_reconcile_interval_s);
	values[4] = Float8GetDatum((double) qiwi_reconcile_max_interval_s);
	begin_as_owner(&ctx);
	run_plan(check_result_plan, values, nulls, SPI_OK_UPDATE);
	end_as_owner(&ctx);
}

/* A string member of a jsonb object, or NULL */
static char *
jsonb_string_member(Jsonb *object, const char *key)
{
	JsonbValue *v;

	if (object == NULL || !JB_ROOT_IS_OBJECT(object))
		return NULL;
	v = getKeyJsonValueFromContainer(&object->root, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * Up to limit bills due for the reconciler, most overdue first: WAITING
 * ones to check, CREATING ones to create (with what to create); *n of them.
 */
DueBill *
store_due_bills(int limit, int *n)
{
	Datum		values[1] = {Int32GetDatum(limit)};
	OwnerContext ctx;
	DueBill    *due;

	begin_as_owner(&ctx);
	/* rows another writer holds right now are skipped, not waited for */
	*n = (int) run_plan(due_bills_plan, values, NULL, SPI_OK_SELECT);
	due = MemoryContextAllocZero(ctx.caller_context, sizeof(DueBill) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi_context = MemoryContextSwitchTo(ctx.caller_context);
		bool		isnull;
		Datum		d;

		due[i].bill_id = TextDatumGetCString(SPI_getbinval(row, desc, 1, &isnull));
		due[i].creating = strcmp(TextDatumGetCString(SPI_getbinval(row, desc, 2, &isnull)), "CREATING") == 0;
		due[i].create.bill_id = due[i].bill_id;
		due[i].create.amount = DatumGetNumericCopy(SPI_getbinval(row, desc, 3, &isnull));
		due[i].create.currency = TextDatumGetCString(SPI_getbinval(row, desc, 4, &isnull));
		if (due[i].creating)
		{
			QiwiCreateBillArgs *args = &due[i].create;
			Jsonb	   *customer;

			args->expires_at = DatumGetTimestampTz(SPI_getbinval(row, desc, 5, &isnull));
			d = SPI_getbinval(row, desc, 6, &isnull);
			args->comment = isnull ? NULL : TextDatumGetCString(d);
			d = SPI_getbinval(row, desc, 7, &isnull);
			customer = isnull ? NULL : DatumGetJsonbPCopy(d);
			args->phone = jsonb_string_member(customer, "phone");
			args->email = jsonb_string_member(customer, "email");
			args->account = jsonb_string_member(customer, "account");
			d = SPI_getbinval(row, desc, 8, &isnull);
			args->custom_fields = isnull ? NULL : DatumGetJsonbPCopy(d);
		}
		MemoryContextSwitchTo(spi_context);
	}
	end_as_owner(&ctx);
	return due;
}

/* Record a bill to create at QIWI after commit; false if the id is taken */
bool
store_bill_intent(const QiwiCreateBillArgs *args, Jsonb *customer)
{
	Datum		values[7];
	char		nulls[8] = "       ";
	OwnerContext ctx;
	bool		inserted;

	values[0] = CStringGetTextDatum(args->bill_id);
	values[1] = NumericGetDatum(args->amount);
	values[2] = CStringGetTextDatum(args->currency);
	values[3] = TimestampTzGetDatum(args->expires_at);
	values[4] = text_or_null(args->comment, &nulls[4]);
	values[5] = PointerGetDatum(customer);
	nulls[5] = customer ? ' ' : 'n';
	values[6] = PointerGetDatum(args->custom_fields);
	nulls[6] = args->custom_fields ? ' ' : 'n';

	begin_as_owner(&ctx);
	inserted = run_plan(intent_insert_plan, values, nulls, SPI_OK_INSERT) > 0;
	if (inserted)
		record_event(args->bill_id, NULL, "CREATING", SOURCE_CALL);
	end_as_owner(&ctx);
	return inserted;
}

/* QIWI refused to create a CREATING bill: record why */
void
store_create_failed(const char *bill_id, const char *reason)
{
	Datum		values[2] = {CStringGetTextDatum(bill_id), CStringGetTextDatum(qiwi_redact_secrets(reason))};
	OwnerContext ctx;

	begin_as_owner(&ctx);
	if (run_plan(create_failed_plan, values, NULL, SPI_OK_UPDATE) > 0)
		record_event(bill_id, "CREATING", "CREATE_FAILED", SOURCE_RECONCILER);
	end_as_owner(&ctx);
}

/* Make every WAITING (or CREATING) bill due now; how many */
int64
store_make_all_due(void)
{
	OwnerContext ctx;
	uint64		n;

	begin_as_owner(&ctx);
	n = run_plan(make_due_plan, NULL, NULL, SPI_OK_UPDATE);
	end_as_owner(&ctx);
	return (int64) n;
}

/*
 * What qiwi_bills and qiwi_refunds know of a bill's money: its amount and
 * what other refunds than refund_id returned.  False if the bill is unknown.
 */
bool
store_refund_headroom(const char *bill_id, const char *refund_id,
					  Numeric *paid, Numeric *refunded)
{
	Datum		values[2] = {CStringGetTextDatum(bill_id), CStringGetTextDatum(refund_id)};
	OwnerContext ctx;
	bool		known;

	begin_as_owner(&ctx);
	known = run_plan(refund_headroom_plan, values, NULL, SPI_OK_SELECT) > 0;
	if (known)
	{
		bool		isnull;
		MemoryContext spi_context = MemoryContextSwitchTo(ctx.caller_context);

		*paid = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
		*refunded = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 2, &isnull));
		MemoryContextSwitchTo(spi_context);
	}
	end_as_owner(&ctx);
	return known;
}
