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

#define BILL_UPSERT_NARGS 12
#define REFUND_UPSERT_NARGS 6

/* Prepared statements, valid for the schema they were prepared in */
static Oid	plans_schema = InvalidOid;
static SPIPlanPtr bill_upsert_plan = NULL;
static SPIPlanPtr refund_upsert_plan = NULL;

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

/* Prepare a statement once per backend and schema */
static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* (Re)build the upsert statements for the schema the extension lives in */
static void
prepare_plans(Oid schema)
{
	const char *nsp;
	Oid			bill_types[BILL_UPSERT_NARGS] = {
		TEXTOID, TEXTOID, NUMERICOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID
	};
	Oid			refund_types[REFUND_UPSERT_NARGS] = {
		TEXTOID, TEXTOID, NUMERICOID, TEXTOID, TEXTOID, TIMESTAMPTZOID
	};

	if (plans_schema == schema && bill_upsert_plan != NULL)
		return;
	if (bill_upsert_plan != NULL)
		SPI_freeplan(bill_upsert_plan);
	if (refund_upsert_plan != NULL)
		SPI_freeplan(refund_upsert_plan);
	bill_upsert_plan = refund_upsert_plan = NULL;

	nsp = quote_identifier(get_namespace_name(schema));
	bill_upsert_plan = prepare_kept(psprintf(
		"INSERT INTO %s.qiwi_bills AS b (bill_id, site_id, amount, currency, status,"
		" status_changed_at, created_at, expires_at, pay_url, comment, customer,"
		" custom_fields, checked_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp())"
		" ON CONFLICT (bill_id) DO UPDATE SET"
		" site_id = EXCLUDED.site_id, amount = EXCLUDED.amount,"
		" currency = EXCLUDED.currency, status = EXCLUDED.status,"
		" status_changed_at = EXCLUDED.status_changed_at,"
		" created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,"
		" pay_url = EXCLUDED.pay_url, comment = EXCLUDED.comment,"
		" customer = EXCLUDED.customer, custom_fields = EXCLUDED.custom_fields,"
		" checked_at = EXCLUDED.checked_at"
		" WHERE b.status = 'WAITING' OR b.status = EXCLUDED.status", nsp),
		BILL_UPSERT_NARGS, bill_types);
	refund_upsert_plan = prepare_kept(psprintf(
		"INSERT INTO %s.qiwi_refunds AS r (bill_id, refund_id, amount, currency,"
		" status, created_at, checked_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())"
		" ON CONFLICT (bill_id, refund_id) DO UPDATE SET"
		" amount = EXCLUDED.amount, currency = EXCLUDED.currency,"
		" status = EXCLUDED.status,"
		" created_at = coalesce(EXCLUDED.created_at, r.created_at),"
		" checked_at = EXCLUDED.checked_at", nsp),
		REFUND_UPSERT_NARGS, refund_types);
	plans_schema = schema;
}

/* Run one prepared upsert as the extension's owner */
static void
execute_as_owner(SPIPlanPtr *plan, Datum *values, const char *nulls)
{
	Oid			schema;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	int			rc;

	extension_schema_and_owner(&schema, &owner);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans(schema);
	rc = SPI_execute_plan(*plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "recording a QIWI answer failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/* A text Datum, or a NULL marker, for a possibly absent string */
static Datum
text_or_null(const char *s, char *null)
{
	*null = (s == NULL) ? 'n' : ' ';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* Record what QIWI said about a bill in qiwi_bills */
void
store_bill(const QiwiBill *bill)
{
	Datum		values[BILL_UPSERT_NARGS];
	char		nulls[BILL_UPSERT_NARGS + 1];

	memset(nulls, ' ', BILL_UPSERT_NARGS);
	nulls[BILL_UPSERT_NARGS] = '\0';
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

	execute_as_owner(&bill_upsert_plan, values, nulls);
}

/* Record what QIWI said about a refund in qiwi_refunds */
void
store_refund(const QiwiRefund *refund)
{
	Datum		values[REFUND_UPSERT_NARGS];
	char		nulls[REFUND_UPSERT_NARGS + 1];

	memset(nulls, ' ', REFUND_UPSERT_NARGS);
	nulls[REFUND_UPSERT_NARGS] = '\0';
	values[0] = CStringGetTextDatum(refund->bill_id);
	values[1] = CStringGetTextDatum(refund->refund_id);
	values[2] = NumericGetDatum(refund->amount);
	values[3] = CStringGetTextDatum(refund->currency);
	values[4] = CStringGetTextDatum(refund->status);
	values[5] = TimestampTzGetDatum(refund->created_at);
	nulls[5] = refund->has_created_at ? ' ' : 'n';

	execute_as_owner(&refund_upsert_plan, values, nulls);
}
