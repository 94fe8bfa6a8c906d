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
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#define BILL_NARGS 12
#define REFUND_NARGS 6

/* Prepared statements, valid for the schema they were prepared in */
static Oid	plans_schema = InvalidOid;
static SPIPlanPtr bill_lock_plan = NULL;
static SPIPlanPtr bill_insert_plan = NULL;
static SPIPlanPtr bill_update_plan = NULL;
static SPIPlanPtr refund_upsert_plan = NULL;

/* The user to restore after writing as the extension's owner */
typedef struct OwnerContext
{
	Oid			save_userid;
	int			save_sec_context;
} OwnerContext;

/* Find the installed extension's schema and owner in pg_extension */
static void
extension_schema_and_owner(Oid *schema, Oid *owner)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("qiwi_kassa"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"qiwi_kassa\" is not installed in this database")));
	*schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	*owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
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

	if (plans_schema == schema && bill_lock_plan != NULL)
		return;
	free_plan(&bill_lock_plan);
	free_plan(&bill_insert_plan);
	free_plan(&bill_update_plan);
	free_plan(&refund_upsert_plan);

	nsp = quote_identifier(get_namespace_name(schema));
	bill_lock_plan = prepare_kept(psprintf(
		"SELECT status FROM %s.qiwi_bills WHERE bill_id = $1 FOR UPDATE", nsp),
		1, bill_types);
	bill_insert_plan = prepare_kept(psprintf(
		"INSERT INTO %s.qiwi_bills (%s, checked_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp())"
		" ON CONFLICT (bill_id) DO NOTHING", nsp, bill_columns),
		BILL_NARGS, bill_types);
	bill_update_plan = prepare_kept(psprintf(
		"UPDATE %s.qiwi_bills SET (%s, checked_at) ="
		" ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp())"
		" WHERE bill_id = $1", nsp, bill_columns),
		BILL_NARGS, bill_types);
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
	plans_schema = schema;
}

/* Become the extension's owner and connect to SPI with the statements ready */
static void
begin_as_owner(OwnerContext *ctx)
{
	Oid			schema;
	Oid			owner;

	extension_schema_and_owner(&schema, &owner);
	GetUserIdAndSecContext(&ctx->save_userid, &ctx->save_sec_context);
	SetUserIdAndSecContext(owner, ctx->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans(schema);
}

/* Disconnect from SPI and become the calling user again */
static void
end_as_owner(OwnerContext *ctx)
{
	SPI_finish();
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

/*
 * Record what QIWI said about a bill in qiwi_bills, moving the row only
 * forward, and say what happened.  A repeated status refreshes the row for
 * an API answer and is left alone for a notification (a duplicate).
 */
StoreOutcome
store_bill(const QiwiBill *bill, bool from_notification, char **recorded_status)
{
	Datum		values[BILL_NARGS];
	char		nulls[BILL_NARGS + 1];
	OwnerContext ctx;
	StoreOutcome outcome;
	char	   *old_status = NULL;

	memset(nulls, ' ', BILL_NARGS);
	nulls[BILL_NARGS] = '\0';
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
	values[8] = text_or_null(bill->pay_url, &nulls[8]);
	values[9] = text_or_null(bill->comment, &nulls[9]);
	values[10] = PointerGetDatum(bill->customer);
	nulls[10] = bill->customer ? ' ' : 'n';
	values[11] = PointerGetDatum(bill->custom_fields);
	nulls[11] = bill->custom_fields ? ' ' : 'n';

	begin_as_owner(&ctx);
	for (;;)
	{
		/* lock the row, so that no other writer decides at the same time */
		if (run_plan(bill_lock_plan, values, nulls, SPI_OK_SELECT) > 0)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			old_status = TextDatumGetCString(d);
			break;
		}
		if (run_plan(bill_insert_plan, values, nulls, SPI_OK_INSERT) > 0)
			break;
		/* a concurrent writer inserted it first: lock and decide again */
	}

	if (old_status == NULL)
		outcome = STORE_INSERTED;
	else if (strcmp(old_status, bill->status) == 0)
		outcome = from_notification ? STORE_DUPLICATE : STORE_REFRESHED;
	else if (strcmp(old_status, "WAITING") == 0)
		outcome = STORE_ADVANCED;
	else
		outcome = STORE_STALE;	/* final already; never replaced */

	if (outcome == STORE_REFRESHED || outcome == STORE_ADVANCED)
		run_plan(bill_update_plan, values, nulls, SPI_OK_UPDATE);
	end_as_owner(&ctx);

	if (recorded_status != NULL)
		*recorded_status = old_status ? old_status : pstrdup(bill->status);
	return outcome;
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
