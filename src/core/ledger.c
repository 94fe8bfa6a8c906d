/*
 * ledger.c
 *		The bookkeeping write path every API shares: its statements run as
 *		the extension's owner (so a caller needs EXECUTE on a function, not
 *		write access to the tables), with a fixed search_path, once the
 *		extension is known to be installed at the library's version.  The
 *		statements of each kind of item are built on it (ledger_kind.c).
 */
#include "core/core.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/*
 * The search_path of every statement run as the owner: the caller's path
 * could name a schema of its own, whose functions and operators would then
 * run with the owner's rights.  The extension's tables are named with
 * their schema; pg_temp last, so it can shadow nothing.
 */
#define OWNER_SEARCH_PATH "pg_catalog, pg_temp"

static LocalTransactionId looked_up_in = InvalidLocalTransactionId;
static Oid	extension_schema;
static Oid	extension_owner;

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
ledger_extension_state(void)
{
	Oid			schema;
	Oid			owner;
	char	   *version;

	if (!extension_lookup(&schema, &owner, &version))
		return EXTENSION_NOT_INSTALLED;
	return strcmp(version, QIWI_KASSA_VERSION) == 0 ? EXTENSION_READY : EXTENSION_OLD_VERSION;
}

/*
 * Check that the bookkeeping can run: the extension is installed here, at
 * the library's version.  The SQL functions call it before any request,
 * so that nothing is sent whose answer could not be recorded.
 */
void
ledger_require_ready(void)
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

/*
 * The extension's schema, once the bookkeeping can run (ledger_require_ready):
 * for a read of the tables that runs no SQL and so needs no owner context.
 */
Oid
ledger_schema(void)
{
	ledger_require_ready();
	return extension_schema;
}

/*
 * Become the extension's owner, with a fixed search_path, and connect to
 * SPI; ctx->schema is the extension's schema, for the caller's statements.
 */
void
ledger_begin(OwnerContext *ctx)
{
	ledger_require_ready();
	ctx->schema = extension_schema;
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
}

/* Disconnect from SPI and become the calling user again */
void
ledger_end(OwnerContext *ctx)
{
	SPI_finish();
	AtEOXact_GUC(true, ctx->guc_nestlevel);
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec_context);
}

/*
 * Make the current transaction's commit wait for the disk and, where one is
 * configured, for a synchronous standby (synchronous_commit at least 'on'),
 * whatever the session's or the role's setting: an intent recorded before a
 * request is sent must survive a crash and a promotion.  For this
 * transaction only.
 */
void
ledger_durable_commit(void)
{
	if (synchronous_commit < SYNCHRONOUS_COMMIT_REMOTE_FLUSH)
		(void) set_config_option("synchronous_commit", "on", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
}

/*
 * Commit the current transaction durably (ledger_durable_commit): true once
 * its commit is on disk and acknowledged by the synchronous standby, if
 * any; false if the wait for the standby was cut short (a cancel or a
 * termination: PostgreSQL then commits locally with a WARNING), so that
 * nothing is sent on a commit a promoted standby may not have.
 */
bool
ledger_commit_durably(void)
{
	bool		wait_for_standby;
	bool		acknowledged;

	ledger_durable_commit();
	wait_for_standby = SyncRepRequested() && SyncRepStandbyNames != NULL && SyncRepStandbyNames[0] != '\0';
	CommitTransactionCommand();
	if (ProcDiePending)
		return false;
	if (!wait_for_standby || XactLastCommitEnd == InvalidXLogRecPtr)
		return true;
	LWLockAcquire(SyncRepLock, LW_SHARED);
	acknowledged = WalSndCtl->lsn[SYNC_REP_WAIT_FLUSH] >= XactLastCommitEnd;
	LWLockRelease(SyncRepLock);
	return acknowledged;
}

/*
 * Run step in a transaction of its own and commit it durably
 * (ledger_commit_durably), for a worker between its transactions (a state
 * that must be durable before a request is sent): step's result, false if
 * the commit may not be durable.  The caller's memory context is kept.
 */
bool
ledger_commit_step(bool (*step) (void *arg), void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	bool		result;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	result = step(arg);
	PopActiveSnapshot();
	result = ledger_commit_durably() && result;
	MemoryContextSwitchTo(caller);
	return result;
}

/* The plans of ledger_execute's statements: one per statement (its constant text) and schema */
#define EXECUTE_PLANS 16
static struct
{
	const char *sql;
	Oid			schema;
	SPIPlanPtr	plan;
}			execute_plans[EXECUTE_PLANS];

/* The kept plan of sql (a constant) in schema, prepared on first use (in SPI) */
static SPIPlanPtr
execute_plan(const char *sql, Oid schema, int nargs, const Oid *types)
{
	int			i;

	for (i = 0; i < EXECUTE_PLANS && execute_plans[i].sql != NULL; i++)
		if (execute_plans[i].sql == sql)
			break;
	if (i == EXECUTE_PLANS)
		elog(ERROR, "too many statements for ledger_execute");
	if (execute_plans[i].sql == NULL || execute_plans[i].schema != schema)
	{
		ledger_free_plan(&execute_plans[i].plan);
		execute_plans[i].plan = ledger_prepare(psprintf(sql, quote_identifier(get_namespace_name(schema))),
											   nargs, (Oid *) types);
		execute_plans[i].sql = sql;
		execute_plans[i].schema = schema;
	}
	return execute_plans[i].plan;
}

/*
 * Run an API's statement as the extension's owner, %1$s in sql (a
 * constant: its plan is kept) standing for the extension's schema; the
 * first row's first ncolumns (of by-value types) into row.  Returns how
 * many rows it processed.
 */
uint64
ledger_execute(const char *sql, int nargs, const Oid *types, Datum *values, const char *nulls,
			   int expected, Datum *row, int ncolumns)
{
	OwnerContext ctx;
	uint64		processed;
	int			rc;
	bool		isnull;

	ledger_begin(&ctx);
	rc = SPI_execute_plan(execute_plan(sql, ctx.schema, nargs, types), values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "recording a QIWI answer failed: %s", SPI_result_code_string(rc));
	processed = SPI_processed;
	for (int c = 0; processed > 0 && c < ncolumns; c++)
		row[c] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, c + 1, &isnull);
	ledger_end(&ctx);
	return processed;
}

/* Prepare a statement with SPI's cursor options and keep it for the backend's life */
static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes, int cursor_options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* Prepare a statement and keep it for the backend's life */
SPIPlanPtr
ledger_prepare(const char *sql, int nargs, Oid *argtypes)
{
	return prepare_kept(sql, nargs, argtypes, 0);
}

/*
 * Prepare a statement on arrays of rows and keep it: planned for each run,
 * since only the arrays' lengths say how many rows it touches, and a
 * generic plan would scan the whole table for a few.
 */
SPIPlanPtr
ledger_prepare_for_arrays(const char *sql, int nargs, Oid *argtypes)
{
	return prepare_kept(sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);
}

/* Free a kept statement, if any */
void
ledger_free_plan(SPIPlanPtr *plan)
{
	if (*plan != NULL)
		SPI_freeplan(*plan);
	*plan = NULL;
}

/* Run a kept statement, checking its result code */
uint64
ledger_run(SPIPlanPtr plan, Datum *values, const char *nulls, int expected)
{
	int			rc = SPI_execute_plan(plan, values, nulls, false, 0);

	if (rc != expected)
		elog(ERROR, "recording a QIWI answer failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* A text Datum, or a NULL marker, for a possibly absent string */
Datum
ledger_text_or_null(const char *s, char *null)
{
	*null = (s == NULL) ? 'n' : ' ';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* A timestamptz Datum, or a NULL marker, for a time an answer may lack (present says) */
Datum
ledger_time_or_null(TimestampTz t, bool present, char *null)
{
	*null = present ? ' ' : 'n';
	return present ? TimestampTzGetDatum(t) : (Datum) 0;
}

/* A varlena Datum (jsonb, an array), or a NULL marker, for a possibly absent value */
Datum
ledger_pointer_or_null(const void *p, char *null)
{
	*null = (p == NULL) ? 'n' : ' ';
	return PointerGetDatum(p);
}

/* Mark n parameters not NULL, and end the markers */
void
ledger_no_nulls(char *nulls, int n)
{
	memset(nulls, ' ', n);
	nulls[n] = '\0';
}

/*
 * Refuse, before anything is sent, a call that would change something at
 * QIWI in a transaction that cannot record QIWI's answer (in tables): QIWI
 * would have the object and the tables would not.
 */
void
ledger_require_writable(const char *what, const char *tables)
{
	ledger_require_ready();
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s on a hot standby", what),
				 errdetail("QIWI's answer could not be recorded in %s. Nothing was sent to QIWI.", tables),
				 errhint("Call it on the primary server.")));
	guard_refuse_reporting_copy(what);
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s in a read-only transaction", what),
				 errdetail("QIWI's answer could not be recorded in %s. Nothing was sent to QIWI.", tables),
				 errhint("Call it in a read-write transaction.")));
}

/*
 * Can a reading call record what it learnt in tables?  If not (a read-only
 * transaction, a hot standby, a reporting copy), it still answers, with a
 * warning.
 */
bool
ledger_can_record(const char *what, const char *tables)
{
	char	   *subscription = NULL;

	if (XactReadOnly)
		ereport(WARNING,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("%s was not recorded: the transaction is read-only", what),
				 RecoveryInProgress() ? errdetail("This server is a hot standby.") :
				 errdetail("The answer is returned but %s are unchanged.", tables)));
	else if (guard_reporting_copy(&subscription))
		ereport(WARNING,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("%s was not recorded: this database is a reporting copy of qiwi_kassa", what),
				 errdetail("It subscribes to the tables of qiwi_kassa (subscription \"%s\"): only the primary writes them. The answer is returned but %s are unchanged.",
						   subscription ? subscription : "?", tables)));
	else
		return true;
	return false;
}
