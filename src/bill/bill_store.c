/*
 * bill_store.c
 *		Bookkeeping of bills and refunds in the extension's tables.
 *
 * The SQL functions record every answer QIWI gives in qiwi_bills and
 * qiwi_refunds, in the caller's transaction, through the ledger (as the
 * extension's owner).  A bill only moves forward: a final status is never
 * replaced by WAITING nor by another final status, and never by a status
 * for other money than the shop's (MISMATCH).  An answer that repeats a
 * row exactly rewrites nothing; its checked_at is written at pre-commit.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "access/genam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#define BILL_NARGS 12
#define REFUND_NARGS 6

/*
 * qiwi_bills for the ledger: a bill moves out of WAITING, CREATING (not at
 * QIWI yet) and CREATE_FAILED; the reconciler checks WAITING bills and
 * creates CREATING ones.  MISMATCH is final for statuses, but keeps
 * recording what QIWI says.
 */
static const char *const bill_open_statuses[] = {"WAITING", "CREATING", "CREATE_FAILED", NULL};
static const char *const bill_reconciled_statuses[] = {"WAITING", "CREATING", NULL};
static const LedgerTable bill_table = {
	.name = "qiwi_bills",
	.status_column = "status",
	.open_statuses = bill_open_statuses,
	.reconciled_statuses = bill_reconciled_statuses,
};

/* Prepared statements, valid for the schema they were prepared in */
static Oid	plans_schema = InvalidOid;
static SPIPlanPtr bill_refresh_plan = NULL;
static SPIPlanPtr bill_checked_plan = NULL;
static SPIPlanPtr bill_checked_one_plan = NULL;
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
	Oid			refund_types[REFUND_NARGS + 1] = {
		TEXTOID, TEXTOID, NUMERICOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID
	};
	Oid			record_types[BILL_NARGS + 3];
	Oid			check_types[6] = {TEXTARRAYOID, BOOLARRAYOID, TEXTARRAYOID, FLOAT8OID, FLOAT8OID, TEXTARRAYOID};
	Oid			due_types[2] = {INT4OID, TEXTARRAYOID};
	Oid			event_types[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Oid			checked_types[3] = {TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
	Oid			checked_one_types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Oid			intent_types[8] = {TEXTOID, NUMERICOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, JSONBOID, JSONBOID, TEXTOID};

	memcpy(record_types, bill_types, sizeof(bill_types));
	record_types[BILL_NARGS] = FLOAT8OID;	/* seconds until the first check */
	record_types[BILL_NARGS + 1] = BOOLOID; /* from a notification */
	record_types[BILL_NARGS + 2] = TEXTOID; /* the merchant */

	if (plans_schema == schema && bill_record_plan != NULL)
		return;
	ledger_free_plan(&bill_refresh_plan);
	ledger_free_plan(&bill_checked_plan);
	ledger_free_plan(&bill_checked_one_plan);
	ledger_free_plan(&bill_record_plan);
	ledger_free_plan(&bill_insert_plan);
	ledger_free_plan(&bill_lock_plan);
	ledger_free_plan(&refund_upsert_plan);
	ledger_free_plan(&event_insert_plan);
	ledger_free_plan(&check_result_plan);
	ledger_free_plan(&due_bills_plan);
	ledger_free_plan(&make_due_plan);
	ledger_free_plan(&refund_headroom_plan);
	ledger_free_plan(&intent_insert_plan);
	ledger_free_plan(&create_failed_plan);

	nsp = quote_identifier(get_namespace_name(schema));

	/* their checked_at, once per transaction: the latest answer of each bill */
	bill_checked_plan = ledger_prepare_for_arrays(psprintf(
		"UPDATE %s.qiwi_bills b SET checked_at = greatest(b.checked_at, a.at)"
		" FROM (SELECT merchant, bill_id, max(at) AS at"
		"  FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(merchant, bill_id, at)"
		"  GROUP BY merchant, bill_id) a"
		" WHERE b.merchant = a.merchant AND b.bill_id = a.bill_id", nsp),
		3, checked_types);
	/* the same for one bill, the usual case of a call per transaction */
	bill_checked_one_plan = ledger_prepare(psprintf(
		"UPDATE %s.qiwi_bills SET checked_at = greatest(checked_at, $3)"
		" WHERE merchant = $1 AND bill_id = $2", nsp),
		3, checked_one_types);
	/* an answer repeating the recorded status and money with other details: one plain UPDATE */
	bill_refresh_plan = ledger_prepare(psprintf(
		"UPDATE %s.qiwi_bills SET (%s, checked_at) ="
		" ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp()),"
		" failures = 0, last_error = NULL"
		" WHERE merchant = $15 AND bill_id = $1 AND status = $5 AND amount = $3 AND currency = $4",
		nsp, bill_columns),
		BILL_NARGS + 3, record_types);

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
	bill_record_plan = ledger_prepare(psprintf(
		"WITH old AS (SELECT status, amount, currency, site_id,"
		"  amount = $3 AND currency = $4 AS same_money,"
		"  NOT $14 OR site_id IS NULL OR $2 IS NULL OR site_id = $2 AS same_site"
		"  FROM %1$s.qiwi_bills WHERE merchant = $15 AND bill_id = $1 FOR UPDATE),"
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
		"  FROM old WHERE b.merchant = $15 AND b.bill_id = $1 AND old.same_money AND old.same_site"
		"  AND ((old.status = $5 AND NOT $14)"
		"   OR %2$s)"
		"  RETURNING 1),"
		" mis AS (UPDATE %1$s.qiwi_bills b SET"
		"  status = 'MISMATCH', qiwi_amount = $3, qiwi_currency = $4, qiwi_status = $5,"
		"  status_changed_at = CASE WHEN old.status = 'MISMATCH' THEN b.status_changed_at ELSE clock_timestamp() END,"
		"  checked_at = clock_timestamp(), failures = 0, last_error = NULL"
		"  FROM old WHERE b.merchant = $15 AND b.bill_id = $1 AND NOT old.same_money AND old.same_site"
		"  AND (%3$s OR old.status = 'MISMATCH')"
		"  RETURNING 1)"
		" SELECT old.status, old.amount, old.currency, old.same_money, old.same_site,"
		"  (SELECT count(*) FROM upd) + (SELECT count(*) FROM mis)"
		" FROM old", nsp, ledger_may_move(&bill_table, "old.status", "$5"),
		ledger_is_open(&bill_table, "old.status")),
		BILL_NARGS + 3, record_types);
	bill_insert_plan = ledger_prepare(psprintf(
		"INSERT INTO %s.qiwi_bills (merchant, %s, checked_at, next_check_at)"
		" VALUES ($15, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp(),"
		" clock_timestamp() + make_interval(secs => $13))"
		" ON CONFLICT (merchant, bill_id) DO NOTHING", nsp, bill_columns),
		BILL_NARGS + 3, record_types);
	bill_lock_plan = ledger_prepare(psprintf(
		"SELECT status, amount, currency FROM %s.qiwi_bills WHERE merchant = $1 AND bill_id = $2 FOR UPDATE", nsp),
		2, event_types);
	/*
	 * A refund also writes its bill's row (QIWI has just spoken of the
	 * bill's money): a refund waiting for that row's lock then sees the
	 * write, and counts this refund with a fresh snapshot, or in REPEATABLE
	 * READ or SERIALIZABLE fails with a serialization failure.
	 */
	refund_upsert_plan = ledger_prepare(psprintf(
		"WITH b AS (UPDATE %1$s.qiwi_bills SET checked_at = clock_timestamp()"
		"  WHERE merchant = $7 AND bill_id = $1 RETURNING 1)"
		" INSERT INTO %1$s.qiwi_refunds AS r (bill_id, refund_id, amount, currency,"
		" status, created_at, checked_at, merchant)"
		" VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(), $7)"
		" ON CONFLICT (merchant, bill_id, refund_id) DO UPDATE SET"
		" amount = EXCLUDED.amount, currency = EXCLUDED.currency,"
		" status = EXCLUDED.status,"
		" created_at = coalesce(EXCLUDED.created_at, r.created_at),"
		" checked_at = EXCLUDED.checked_at", nsp),
		REFUND_NARGS + 1, refund_types);
	event_insert_plan = ledger_prepare(psprintf(
		"INSERT INTO %s.qiwi_bill_events (bill_id, old_status, new_status, source, merchant)"
		" VALUES ($1, $2, $3, $4, $5)", nsp),
		5, event_types);

	/*
	 * A WAITING bill is checked again after base * 2^checks (capped), a
	 * failed check after base * 2^failures (capped); a bill is due as soon
	 * as it expires, and every base seconds once it has.
	 */
	check_result_plan = ledger_prepare_for_arrays(psprintf(
		"UPDATE %s.qiwi_bills b SET"
		" checked_at = CASE WHEN u.failed THEN b.checked_at ELSE clock_timestamp() END,"
		" check_count = b.check_count + CASE WHEN u.failed THEN 0 ELSE 1 END,"
		" failures = CASE WHEN u.failed THEN b.failures + 1 ELSE 0 END,"
		" last_error = u.error,"
		" next_check_at = CASE"
		"  WHEN b.expires_at <= clock_timestamp() AND NOT u.failed THEN clock_timestamp() + make_interval(secs => $4)"
		"  ELSE least(clock_timestamp() + make_interval(secs => least($5, $4 * power(2, least(CASE WHEN u.failed THEN b.failures + 1 ELSE b.check_count + 1 END, 30)))),"
		"             coalesce(b.expires_at + interval '1 second', 'infinity'))"
		"  END"
		" FROM unnest($6::text[], $1::text[], $2::bool[], $3::text[]) AS u(merchant, bill_id, failed, error)"
		" WHERE b.merchant = u.merchant AND b.bill_id = u.bill_id AND %s", nsp,
		ledger_is_reconciled(&bill_table, "b.status")),
		6, check_types);
	/* the merchants in $2 are left alone (QIWI refused their key, or they have none) */
	due_bills_plan = ledger_prepare(psprintf(
		"SELECT bill_id, status, amount, currency, expires_at, comment, customer, custom_fields,"
		" merchant FROM %s.qiwi_bills"
		" WHERE %s AND next_check_at <= clock_timestamp()"
		" AND merchant <> ALL ($2)"
		" ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED", nsp,
		ledger_is_reconciled(&bill_table, "status")),
		2, due_types);
	/*
	 * Rows another transaction holds are left to it: the reconciler is
	 * recording them right now (and waiting for them here, while it holds
	 * others in another order, would deadlock), or a call is changing them.
	 */
	make_due_plan = ledger_prepare(psprintf(
		"UPDATE %1$s.qiwi_bills b SET next_check_at = clock_timestamp(), failures = 0"
		" FROM (SELECT merchant, bill_id FROM %1$s.qiwi_bills WHERE %2$s"
		"  FOR UPDATE SKIP LOCKED) due"
		" WHERE b.merchant = due.merchant AND b.bill_id = due.bill_id",
		nsp, ledger_is_reconciled(&bill_table, "status")),
		0, NULL);
	refund_headroom_plan = ledger_prepare(psprintf(
		"SELECT b.amount, coalesce(sum(r.amount) FILTER (WHERE r.refund_id <> $2), 0)"
		" FROM %1$s.qiwi_bills b LEFT JOIN %1$s.qiwi_refunds r"
		"  ON r.merchant = b.merchant AND r.bill_id = b.bill_id"
		" WHERE b.merchant = $3 AND b.bill_id = $1 GROUP BY b.amount", nsp),
		3, event_types);
	intent_insert_plan = ledger_prepare(psprintf(
		"INSERT INTO %s.qiwi_bills (bill_id, amount, currency, status, expires_at, comment,"
		" customer, custom_fields, checked_at, next_check_at, merchant)"
		" VALUES ($1, $2, $3, 'CREATING', $4, $5, $6, $7, clock_timestamp(), clock_timestamp(), $8)"
		" ON CONFLICT (merchant, bill_id) DO NOTHING", nsp),
		8, intent_types);
	create_failed_plan = ledger_prepare(psprintf(
		"UPDATE %s.qiwi_bills SET status = 'CREATE_FAILED', last_error = $2, checked_at = clock_timestamp()"
		" WHERE merchant = $3 AND bill_id = $1 AND status = 'CREATING'", nsp),
		3, event_types);
	plans_schema = schema;
}

/* Begin bookkeeping as the owner, with the bill statements ready */
static void
begin_bill_ledger(OwnerContext *ctx)
{
	ledger_begin(ctx);
	prepare_plans(ctx->schema);
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
record_event(const char *merchant, const char *bill_id, const char *old_status,
			 const char *new_status, StoreSource source)
{
	Datum		values[5];
	char		nulls[6] = "     ";
	StringInfoData payload;

	values[0] = CStringGetTextDatum(bill_id);
	values[1] = ledger_text_or_null(old_status, &nulls[1]);
	values[2] = CStringGetTextDatum(new_status);
	values[3] = CStringGetTextDatum(source_name(source));
	values[4] = CStringGetTextDatum(merchant);
	ledger_run(event_insert_plan, values, nulls, SPI_OK_INSERT);

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"bill_id\":");
	escape_json(&payload, bill_id);
	appendStringInfoString(&payload, ",\"status\":");
	escape_json(&payload, new_status);
	appendStringInfoString(&payload, ",\"source\":");
	escape_json(&payload, source_name(source));
	appendStringInfoString(&payload, ",\"merchant\":");
	escape_json(&payload, merchant);
	appendStringInfoChar(&payload, '}');
	Async_Notify("qiwi_bill_status", payload.data);
}

/*
 * The bills of this transaction that QIWI answered about exactly as their
 * rows say: their checked_at is written once, at pre-commit, in one
 * statement, instead of rewriting each row per answer.  In
 * TopTransactionContext; an entry made in a subtransaction that rolls back
 * is forgotten with it.
 */
typedef struct CheckedBill
{
	char	   *merchant;
	char	   *bill_id;
	TimestampTz at;
	SubTransactionId subxact;
} CheckedBill;

static CheckedBill *checked_bills = NULL;
static int	nchecked_bills = 0;
static int	checked_bills_cap = 0;
static bool checked_callbacks_registered = false;

/* Write the checked_at of the transaction's unchanged bills */
static void
flush_checked_bills(void)
{
	Datum		values[3];
	OwnerContext ctx;
	int			n = nchecked_bills;

	nchecked_bills = 0;
	/* DROP EXTENSION after the calls took the rows with it */
	if (n == 0 || ledger_extension_state() != EXTENSION_READY)
		return;
	if (n == 1)
	{
		values[0] = CStringGetTextDatum(checked_bills[0].merchant);
		values[1] = CStringGetTextDatum(checked_bills[0].bill_id);
		values[2] = TimestampTzGetDatum(checked_bills[0].at);
	}
	else
	{
		Datum	   *merchants = palloc(sizeof(Datum) * n);
		Datum	   *bill_ids = palloc(sizeof(Datum) * n);
		Datum	   *ats = palloc(sizeof(Datum) * n);

		for (int i = 0; i < n; i++)
		{
			merchants[i] = CStringGetTextDatum(checked_bills[i].merchant);
			bill_ids[i] = CStringGetTextDatum(checked_bills[i].bill_id);
			ats[i] = TimestampTzGetDatum(checked_bills[i].at);
		}
		values[0] = PointerGetDatum(construct_array(merchants, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[1] = PointerGetDatum(construct_array(bill_ids, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_array(ats, n, TIMESTAMPTZOID, sizeof(TimestampTz),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	}
	/* at pre-commit the statements' snapshots are gone: SPI needs one */
	PushActiveSnapshot(GetTransactionSnapshot());
	begin_bill_ledger(&ctx);
	ledger_run(n == 1 ? bill_checked_one_plan : bill_checked_plan, values, NULL, SPI_OK_UPDATE);
	ledger_end(&ctx);
	PopActiveSnapshot();
}

/* At pre-commit, write the checked_at of unchanged bills; forget them at the end */
static void
checked_bills_xact(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			flush_checked_bills();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* the memory went with TopTransactionContext */
			checked_bills = NULL;
			nchecked_bills = 0;
			checked_bills_cap = 0;
			break;
		default:
			break;
	}
}

/* When a subtransaction rolls back, forget the bills it (or a child) checked */
static void
checked_bills_subxact(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	/* subtransactions nest: every later id is this one's or a child's */
	while (nchecked_bills > 0 && checked_bills[nchecked_bills - 1].subxact >= mySubid)
		nchecked_bills--;
}

/* Remember that QIWI confirmed a bill's row as it is, for checked_at at pre-commit */
static void
defer_checked_at(const QiwiBill *bill)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	CheckedBill *c;

	if (!checked_callbacks_registered)
	{
		RegisterXactCallback(checked_bills_xact, NULL);
		RegisterSubXactCallback(checked_bills_subxact, NULL);
		checked_callbacks_registered = true;
	}
	if (nchecked_bills == checked_bills_cap)
	{
		checked_bills_cap = Max(64, checked_bills_cap * 2);
		checked_bills = checked_bills == NULL ?
			palloc(sizeof(CheckedBill) * checked_bills_cap) :
			repalloc(checked_bills, sizeof(CheckedBill) * checked_bills_cap);
	}
	c = &checked_bills[nchecked_bills++];
	c->merchant = pstrdup(bill->merchant);
	c->bill_id = pstrdup(bill->bill_id);
	c->at = GetCurrentTimestamp();
	c->subxact = GetCurrentSubTransactionId();
	MemoryContextSwitchTo(old);
}

/* How the unchanged-row probe compares a column with the answer's value */
typedef enum ProbeCompare
{
	PROBE_TEXT,
	PROBE_AMOUNT,
	PROBE_TIMESTAMP,
	PROBE_JSONB
} ProbeCompare;

/* A column of qiwi_bills the probe compares, with the parameter ($n - 1) it holds */
typedef struct ProbeColumn
{
	const char *name;
	int			param;
	Oid			type;
	ProbeCompare compare;
} ProbeColumn;

static const ProbeColumn probe_columns[] = {
	{"site_id", 1, TEXTOID, PROBE_TEXT},
	{"amount", 2, NUMERICOID, PROBE_AMOUNT},
	{"currency", 3, TEXTOID, PROBE_TEXT},
	{"status", 4, TEXTOID, PROBE_TEXT},
	{"status_changed_at", 5, TIMESTAMPTZOID, PROBE_TIMESTAMP},
	{"created_at", 6, TIMESTAMPTZOID, PROBE_TIMESTAMP},
	{"expires_at", 7, TIMESTAMPTZOID, PROBE_TIMESTAMP},
	{"pay_url", 8, TEXTOID, PROBE_TEXT},
	{"comment", 9, TEXTOID, PROBE_TEXT},
	{"customer", 10, JSONBOID, PROBE_JSONB},
	{"custom_fields", 11, JSONBOID, PROBE_JSONB},
};

#define PROBE_NCOLUMNS ((int) lengthof(probe_columns))

/*
 * What the probe knows of qiwi_bills: its columns' numbers and collations
 * and its primary key (merchant, bill_id).  relid is reset when the table
 * changes (a relcache callback), and the rest is then looked up again.
 */
static struct
{
	Oid			relid;
	Oid			schema;
	Oid			pkey;
	Oid			key_collations[2];
	AttrNumber	attnums[PROBE_NCOLUMNS];
	Oid			collations[PROBE_NCOLUMNS];
	AttrNumber	failures;
	AttrNumber	last_error;
	AttrNumber	last;			/* the highest of them */
	bool		callback_registered;
} probe;

/* Forget the probe's look-ups when qiwi_bills (or every relation) changes */
static void
probe_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == probe.relid)
		probe.relid = InvalidOid;
}

/* The number of a column of qiwi_bills, which must have the given type */
static AttrNumber
probe_attnum(Relation rel, const char *name, Oid type)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);

	if (attnum <= 0 || TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid != type)
		elog(ERROR, "column qiwi_bills.%s is missing or has another type", name);
	probe.last = Max(probe.last, attnum);
	return attnum;
}

/* Look qiwi_bills up in the extension's schema for the probe */
static void
probe_lookup(Oid schema)
{
	Oid			relid = get_relname_relid("qiwi_bills", schema);
	Relation	rel;
	Relation	pkey;
	AttrNumber	merchant;
	AttrNumber	bill_id;

	if (!probe.callback_registered)
	{
		CacheRegisterRelcacheCallback(probe_invalidate, (Datum) 0);
		probe.callback_registered = true;
	}
	if (!OidIsValid(relid))
		elog(ERROR, "table qiwi_bills is missing");
	rel = table_open(relid, AccessShareLock);
	probe.last = 0;
	for (int i = 0; i < PROBE_NCOLUMNS; i++)
	{
		probe.attnums[i] = probe_attnum(rel, probe_columns[i].name, probe_columns[i].type);
		probe.collations[i] = TupleDescAttr(RelationGetDescr(rel), probe.attnums[i] - 1)->attcollation;
	}
	probe.failures = probe_attnum(rel, "failures", INT4OID);
	probe.last_error = probe_attnum(rel, "last_error", TEXTOID);
	merchant = probe_attnum(rel, "merchant", TEXTOID);
	bill_id = probe_attnum(rel, "bill_id", TEXTOID);
	probe.pkey = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(probe.pkey))
		elog(ERROR, "table qiwi_bills has no primary key");
	pkey = index_open(probe.pkey, AccessShareLock);
	if (pkey->rd_index->indnkeyatts != 2 || pkey->rd_index->indkey.values[0] != merchant ||
		pkey->rd_index->indkey.values[1] != bill_id)
		elog(ERROR, "the primary key of qiwi_bills is not (merchant, bill_id)");
	probe.key_collations[0] = pkey->rd_indcollation[0];
	probe.key_collations[1] = pkey->rd_indcollation[1];
	index_close(pkey, NoLock);
	table_close(rel, NoLock);
	probe.schema = schema;
	probe.relid = relid;
}

/* Does a column of the row hold the answer's value (SQL's IS NOT DISTINCT FROM)? */
static bool
probe_column_same(const ProbeColumn *column, Oid collation, Datum row, bool row_null,
				  Datum value, bool value_null)
{
	Numeric		a;
	Numeric		b;

	if (row_null || value_null)
		return row_null && value_null && column->compare != PROBE_AMOUNT;
	switch (column->compare)
	{
		case PROBE_TEXT:
			return DatumGetBool(DirectFunctionCall2Coll(texteq, collation, row, value));
		case PROBE_AMOUNT:
			/* the same amount at the same scale; NaN and infinity have no scale */
			a = DatumGetNumeric(row);
			b = DatumGetNumeric(value);
			return !numeric_is_nan(a) && !numeric_is_inf(a) &&
				DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(a), NumericGetDatum(b))) &&
				DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(a))) ==
				DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(b)));
		case PROBE_TIMESTAMP:
			return DatumGetTimestampTz(row) == DatumGetTimestampTz(value);
		case PROBE_JSONB:
			return DatumGetBool(DirectFunctionCall2(jsonb_eq, row, value));
	}
	return false;
}

/*
 * Does the bill's row repeat the answer column for column (an amount's
 * scale too), with no failed check to clear?  values and nulls are
 * bill_record_plan's parameters.  The most common answer: the row is found
 * through the primary key without the executor, in the snapshot a
 * statement would use, and compared in place.
 */
static bool
bill_row_unchanged(Oid schema, Datum *values, const char *nulls)
{
	Relation	rel;
	Relation	pkey;
	Snapshot	snapshot;
	ScanKeyData keys[2];
	TupleTableSlot *slot;
	IndexScanDesc scan;
	bool		same = false;

	for (;;)
	{
		if (probe.relid == InvalidOid || probe.schema != schema)
			probe_lookup(schema);
		rel = table_open(probe.relid, AccessShareLock);
		/* locking it took in what changed it since it was looked up */
		if (probe.relid == RelationGetRelid(rel))
			break;
		table_close(rel, NoLock);
	}
	pkey = index_open(probe.pkey, AccessShareLock);
	/* as SPI does for each statement: our own writes so far are visible */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   probe.key_collations[0], F_TEXTEQ, values[BILL_NARGS + 2]);
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   probe.key_collations[1], F_TEXTEQ, values[0]);
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, pkey, snapshot, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		slot_getsomeattrs(slot, probe.last);
		same = !slot->tts_isnull[probe.failures - 1] &&
			DatumGetInt32(slot->tts_values[probe.failures - 1]) == 0 &&
			slot->tts_isnull[probe.last_error - 1];
		for (int i = 0; same && i < PROBE_NCOLUMNS; i++)
		{
			int			param = probe_columns[i].param;
			AttrNumber	attnum = probe.attnums[i];

			same = probe_column_same(&probe_columns[i], probe.collations[i],
									 slot->tts_values[attnum - 1], slot->tts_isnull[attnum - 1],
									 values[param], nulls[param] == 'n');
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(pkey, NoLock);
	table_close(rel, NoLock);
	return same;
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
	Datum		values[BILL_NARGS + 3];
	char		nulls[BILL_NARGS + 4];
	OwnerContext ctx;
	StoreOutcome outcome;
	char	   *old_status = NULL;
	Numeric		shop_amount = bill->amount;
	char	   *shop_currency = bill->currency;
	bool		same_money = true;
	bool		same_site = true;
	int64		moved = 0;

	memset(nulls, ' ', BILL_NARGS + 3);
	nulls[BILL_NARGS + 3] = '\0';
	values[0] = CStringGetTextDatum(bill->bill_id);
	values[1] = ledger_text_or_null(bill->site_id, &nulls[1]);
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
	values[8] = ledger_text_or_null(source == SOURCE_NOTIFICATION ? NULL : bill->pay_url, &nulls[8]);
	values[9] = ledger_text_or_null(bill->comment, &nulls[9]);
	values[10] = PointerGetDatum(bill->customer);
	nulls[10] = bill->customer ? ' ' : 'n';
	values[11] = PointerGetDatum(bill->custom_fields);
	nulls[11] = bill->custom_fields ? ' ' : 'n';
	values[12] = Float8GetDatum((double) qiwi_reconcile_interval_s);

	values[13] = BoolGetDatum(source == SOURCE_NOTIFICATION);
	values[14] = CStringGetTextDatum(bill->merchant);

	/*
	 * The probe runs no SQL and no user code (index AM, built-in equality):
	 * it needs neither the owner's rights nor the fixed search_path.
	 */
	if (source != SOURCE_NOTIFICATION && bill_row_unchanged(ledger_schema(), values, nulls))
	{
		defer_checked_at(bill);
		if (stored != NULL)
		{
			stored->status = pstrdup(bill->status);
			stored->amount = bill->amount;
			stored->currency = bill->currency;
			stored->moved = false;	/* nothing was written */
		}
		return STORE_REFRESHED;
	}
	begin_bill_ledger(&ctx);
	if (source != SOURCE_NOTIFICATION &&
		ledger_run(bill_refresh_plan, values, nulls, SPI_OK_UPDATE) > 0)
	{
		ledger_end(&ctx);
		if (stored != NULL)
		{
			stored->status = pstrdup(bill->status);
			stored->amount = bill->amount;
			stored->currency = bill->currency;
			stored->moved = true;
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
		if (ledger_run(bill_record_plan, values, nulls, SPI_OK_SELECT) > 0)
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
		if (ledger_run(bill_insert_plan, values, nulls, SPI_OK_INSERT) > 0)
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
		record_event(bill->merchant, bill->bill_id, old_status, bill->status, source);
	else if (outcome == STORE_MISMATCH && moved > 0 && strcmp(old_status, "MISMATCH") != 0)
		record_event(bill->merchant, bill->bill_id, old_status, "MISMATCH", source);
	ledger_end(&ctx);

	if (stored != NULL)
	{
		stored->status = old_status ? old_status : pstrdup(bill->status);
		stored->amount = shop_amount;
		stored->currency = shop_currency;
		stored->moved = old_status == NULL || moved > 0;
	}
	return outcome;
}

/* Say that QIWI reported a bill for other money than the shop's (STORE_MISMATCH) */
void
store_report_mismatch(int elevel, const QiwiBill *bill, const StoredBill *stored)
{
	ereport(elevel,
			(errcode(ERRCODE_QIWI_AMOUNT_MISMATCH),
			 errmsg("QIWI reports bill \"%s\" for %s %s, but the shop's bill is for %s %s",
					bill->bill_id, qiwi_format_amount(bill->amount), bill->currency,
					qiwi_format_amount(stored->amount), stored->currency),
			 errdetail("QIWI says %s. The bill is recorded as MISMATCH, never as paid; qiwi_bills.qiwi_amount, qiwi_currency and qiwi_status hold what QIWI said.",
					   bill->status)));
}

/*
 * Lock a bill's row before a call that changes it at QIWI, so that the
 * answer can be recorded (a conflicting writer or a serialization failure
 * shows now, before anything is sent); false if the bill is unknown.
 */
bool
store_lock_bill(const char *merchant, const char *bill_id, StoredBill *stored)
{
	Datum		values[2] = {CStringGetTextDatum(merchant), CStringGetTextDatum(bill_id)};
	OwnerContext ctx;
	bool		known;

	begin_bill_ledger(&ctx);
	known = ledger_run(bill_lock_plan, values, NULL, SPI_OK_SELECT) > 0;
	if (known)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext spi_context = MemoryContextSwitchTo(ctx.caller_context);

		stored->status = TextDatumGetCString(SPI_getbinval(row, desc, 1, &isnull));
		stored->amount = DatumGetNumericCopy(SPI_getbinval(row, desc, 2, &isnull));
		stored->currency = TextDatumGetCString(SPI_getbinval(row, desc, 3, &isnull));
		stored->moved = false;
		MemoryContextSwitchTo(spi_context);
	}
	ledger_end(&ctx);
	return known;
}

/* Record what QIWI said about a refund in qiwi_refunds */
void
store_refund(const QiwiRefund *refund)
{
	Datum		values[REFUND_NARGS + 1];
	char		nulls[REFUND_NARGS + 2];
	OwnerContext ctx;

	memset(nulls, ' ', REFUND_NARGS + 1);
	nulls[REFUND_NARGS + 1] = '\0';
	values[0] = CStringGetTextDatum(refund->bill_id);
	values[1] = CStringGetTextDatum(refund->refund_id);
	values[2] = NumericGetDatum(refund->amount);
	values[3] = CStringGetTextDatum(refund->currency);
	values[4] = CStringGetTextDatum(refund->status);
	values[5] = TimestampTzGetDatum(refund->created_at);
	nulls[5] = refund->has_created_at ? ' ' : 'n';
	values[6] = CStringGetTextDatum(refund->merchant);

	begin_bill_ledger(&ctx);
	ledger_run(refund_upsert_plan, values, nulls, SPI_OK_INSERT);
	ledger_end(&ctx);
}

/*
 * Record n reconciler checks, in one statement: each left its bill WAITING,
 * or failed (with its error)
 */
void
store_check_results(int n, const char *const *merchants, const char *const *bill_ids,
					const bool *failed, const char *const *errors)
{
	Datum		values[6];
	OwnerContext ctx;

	if (n == 0)
		return;
	ledger_check_arrays(n, merchants, bill_ids, failed, errors,
						&values[5], &values[0], &values[1], &values[2]);
	values[3] = Float8GetDatum((double) qiwi_reconcile_interval_s);
	values[4] = Float8GetDatum((double) qiwi_reconcile_max_interval_s);
	begin_bill_ledger(&ctx);
	ledger_run(check_result_plan, values, NULL, SPI_OK_UPDATE);
	ledger_end(&ctx);
}

/* Record one reconciler check that left a bill WAITING, or that failed */
void
store_check_result(const char *merchant, const char *bill_id, bool failed, const char *error)
{
	store_check_results(1, &merchant, &bill_id, &failed, &error);
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
store_due_bills(int limit, Datum skip_merchants, int *n)
{
	Datum		values[2] = {Int32GetDatum(limit), skip_merchants};
	OwnerContext ctx;
	DueBill    *due;

	begin_bill_ledger(&ctx);
	/* rows another writer holds right now are skipped, not waited for */
	*n = (int) ledger_run(due_bills_plan, values, NULL, SPI_OK_SELECT);
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
		due[i].create.merchant = TextDatumGetCString(SPI_getbinval(row, desc, 9, &isnull));
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
	ledger_end(&ctx);
	return due;
}

/* Record a bill to create at QIWI after commit; false if the id is taken */
bool
store_bill_intent(const QiwiCreateBillArgs *args, Jsonb *customer)
{
	Datum		values[8];
	char		nulls[9] = "        ";
	OwnerContext ctx;
	bool		inserted;

	values[0] = CStringGetTextDatum(args->bill_id);
	values[1] = NumericGetDatum(args->amount);
	values[2] = CStringGetTextDatum(args->currency);
	values[3] = TimestampTzGetDatum(args->expires_at);
	values[4] = ledger_text_or_null(args->comment, &nulls[4]);
	values[5] = PointerGetDatum(customer);
	nulls[5] = customer ? ' ' : 'n';
	values[6] = PointerGetDatum(args->custom_fields);
	nulls[6] = args->custom_fields ? ' ' : 'n';
	values[7] = CStringGetTextDatum(args->merchant);

	begin_bill_ledger(&ctx);
	inserted = ledger_run(intent_insert_plan, values, nulls, SPI_OK_INSERT) > 0;
	if (inserted)
		record_event(args->merchant, args->bill_id, NULL, "CREATING", SOURCE_CALL);
	ledger_end(&ctx);
	return inserted;
}

/* QIWI refused to create a CREATING bill: record why */
void
store_create_failed(const char *merchant, const char *bill_id, const char *reason)
{
	Datum		values[3] = {CStringGetTextDatum(bill_id), CStringGetTextDatum(qiwi_redact_secrets(reason)),
	CStringGetTextDatum(merchant)};
	OwnerContext ctx;

	begin_bill_ledger(&ctx);
	if (ledger_run(create_failed_plan, values, NULL, SPI_OK_UPDATE) > 0)
		record_event(merchant, bill_id, "CREATING", "CREATE_FAILED", SOURCE_RECONCILER);
	ledger_end(&ctx);
}

/* Tell the ledger about qiwi_bills and its open statuses (from _PG_init) */
void
store_register_table(void)
{
	ledger_add_table(&bill_table);
}

/* Make every WAITING (or CREATING) bill due now; how many */
int64
store_make_all_due(void)
{
	OwnerContext ctx;
	uint64		n;

	begin_bill_ledger(&ctx);
	n = ledger_run(make_due_plan, NULL, NULL, SPI_OK_UPDATE);
	ledger_end(&ctx);
	return (int64) n;
}

/*
 * What qiwi_bills and qiwi_refunds know of a bill's money: its amount and
 * what other refunds than refund_id returned.  False if the bill is unknown.
 */
bool
store_refund_headroom(const char *merchant, const char *bill_id, const char *refund_id,
					  Numeric *paid, Numeric *refunded)
{
	Datum		values[3] = {CStringGetTextDatum(bill_id), CStringGetTextDatum(refund_id),
	CStringGetTextDatum(merchant)};
	OwnerContext ctx;
	bool		known;

	begin_bill_ledger(&ctx);
	known = ledger_run(refund_headroom_plan, values, NULL, SPI_OK_SELECT) > 0;
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
	ledger_end(&ctx);
	return known;
}
