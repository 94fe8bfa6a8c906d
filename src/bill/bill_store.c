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
 * This file describes qiwi_bills to the ledger and maps an answer to a row.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#define BILL_NARGS 12

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

/* The statements of bills and refunds, in the order of bill_statements */
enum
{
	BILL_REFRESH, BILL_RECORD, BILL_INSERT, REFUND_UPSERT, REFUND_HEADROOM,
	BILL_INTENT, BILL_CREATE_FAILED
};

/*
 * An answer about a bill: $1..$12 from the answer (those after $1 fill their
 * columns), $13 seconds until the first check, $14 from a notification,
 * $15 the merchant
 */
static const LedgerParam bill_params[BILL_NARGS + 3] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiBill, bill_id),
	LEDGER_COLUMN(TEXTOID, LEDGER_V_TEXT, QiwiBill, site_id, LEDGER_TEXT, false),
	LEDGER_MONEY_COLUMNS(QiwiBill, LEDGER_AMOUNT),
	LEDGER_TIME_COLUMN(QiwiBill, status_changed_at, false),
	LEDGER_TIME_COLUMN(QiwiBill, created_at, false),
	LEDGER_TERMS_COLUMNS(QiwiBill, terms, false),
	LEDGER_SET(FLOAT8OID),
	LEDGER_SET(BOOLOID),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiBill, merchant),
};
static const LedgerParam refund_params[7] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiRefund, bill_id),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiRefund, refund_id),
	LEDGER_ARG(NUMERICOID, LEDGER_V_NUMERIC, QiwiRefund, amount),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiRefund, currency),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiRefund, status),
	LEDGER_TIME_ARG(QiwiRefund, created_at),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiRefund, merchant),
};
/* A bill to create: $6 its customer */
static const LedgerParam intent_params[8] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiCreateBillArgs, bill_id),
	LEDGER_ARG(NUMERICOID, LEDGER_V_NUMERIC, QiwiCreateBillArgs, amount),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiCreateBillArgs, currency),
	LEDGER_ARG(TIMESTAMPTZOID, LEDGER_V_TIMESTAMP, QiwiCreateBillArgs, expires_at),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiCreateBillArgs, comment),
	LEDGER_SET(JSONBOID),
	LEDGER_ARG(JSONBOID, LEDGER_V_VARLENA, QiwiCreateBillArgs, custom_fields),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, QiwiCreateBillArgs, merchant),
};
static const LedgerParam text_params[3] = {LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID)};

#define BILL_COLUMNS "bill_id, site_id, amount, currency, status, status_changed_at," \
	" created_at, expires_at, pay_url, comment, customer, custom_fields"

static const LedgerStatement bill_statements[] = {
	/* an answer repeating the recorded status and money with other details: one plain UPDATE */
	[BILL_REFRESH] = {"UPDATE %1$s.qiwi_bills SET (" BILL_COLUMNS ", checked_at) ="
		" ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp()),"
		" failures = 0, last_error = NULL"
		" WHERE merchant = $15 AND bill_id = $1 AND status = $5 AND amount = $3 AND currency = $4",
	BILL_NARGS + 3, bill_params, NULL},

	/*
	 * Otherwise lock the bill's row, decide and update in one statement.
	 * With the shop's amount and currency: a repeated status refreshes the
	 * row (not for a notification: that is a duplicate), an open bill
	 * moves to another status, nothing else moves.  A notification ($14)
	 * signs only money, ids and status: it never replaces the other
	 * columns that an API answer gave.  With other money the bill becomes
	 * MISMATCH, keeping the shop's amount and what QIWI said beside it.  It
	 * returns the row's status, amount and currency (NULL when there is no
	 * row yet) and whether anything moved.
	 */
	[BILL_RECORD] = {"WITH old AS (SELECT status, amount, currency, site_id,"
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
		"   OR (old.status IN %2$s AND $5 <> old.status))"
		"  RETURNING 1),"
		" mis AS (UPDATE %1$s.qiwi_bills b SET"
		"  status = 'MISMATCH', qiwi_amount = $3, qiwi_currency = $4, qiwi_status = $5,"
		"  status_changed_at = CASE WHEN old.status = 'MISMATCH' THEN b.status_changed_at ELSE clock_timestamp() END,"
		"  checked_at = clock_timestamp(), failures = 0, last_error = NULL"
		"  FROM old WHERE b.merchant = $15 AND b.bill_id = $1 AND NOT old.same_money AND old.same_site"
		"  AND (old.status IN %2$s OR old.status = 'MISMATCH')"
		"  RETURNING 1)"
		" SELECT old.status, old.amount, old.currency, old.same_money, old.same_site,"
		"  (SELECT count(*) FROM upd) + (SELECT count(*) FROM mis)"
		" FROM old", BILL_NARGS + 3, bill_params, NULL},
	[BILL_INSERT] = {"INSERT INTO %1$s.qiwi_bills (merchant, " BILL_COLUMNS ", checked_at, next_check_at)"
		" VALUES ($15, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, clock_timestamp(),"
		" clock_timestamp() + make_interval(secs => $13))"
		" ON CONFLICT (merchant, bill_id) DO NOTHING", BILL_NARGS + 3, bill_params, NULL},

	/*
	 * A refund also writes its bill's row (QIWI has just spoken of the
	 * bill's money): a refund waiting for that row's lock then sees the
	 * write, and counts this refund with a fresh snapshot, or in REPEATABLE
	 * READ or SERIALIZABLE fails with a serialization failure.
	 */
	[REFUND_UPSERT] = {"WITH b AS (UPDATE %1$s.qiwi_bills SET checked_at = clock_timestamp()"
		"  WHERE merchant = $7 AND bill_id = $1 RETURNING 1)"
		" INSERT INTO %1$s.qiwi_refunds AS r (bill_id, refund_id, amount, currency,"
		" status, created_at, checked_at, merchant)"
		" VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(), $7)"
		" ON CONFLICT (merchant, bill_id, refund_id) DO UPDATE SET"
		" amount = EXCLUDED.amount, currency = EXCLUDED.currency,"
		" status = EXCLUDED.status,"
		" created_at = coalesce(EXCLUDED.created_at, r.created_at),"
		" checked_at = EXCLUDED.checked_at", 7, refund_params, NULL},
	[REFUND_HEADROOM] = {"SELECT b.amount, coalesce(sum(r.amount) FILTER (WHERE r.refund_id <> $2), 0)"
		" FROM %1$s.qiwi_bills b LEFT JOIN %1$s.qiwi_refunds r"
		"  ON r.merchant = b.merchant AND r.bill_id = b.bill_id"
		" WHERE b.merchant = $3 AND b.bill_id = $1 GROUP BY b.amount", 3, text_params, NULL},
	[BILL_INTENT] = {"INSERT INTO %1$s.qiwi_bills (bill_id, amount, currency, status, expires_at, comment,"
		" customer, custom_fields, checked_at, next_check_at, merchant)"
		" VALUES ($1, $2, $3, 'CREATING', $4, $5, $6, $7, clock_timestamp(), clock_timestamp(), $8)"
		" ON CONFLICT (merchant, bill_id) DO NOTHING", 8, intent_params, NULL},
	[BILL_CREATE_FAILED] = {"UPDATE %1$s.qiwi_bills SET status = 'CREATE_FAILED', last_error = $2,"
		" checked_at = clock_timestamp()"
		" WHERE merchant = $3 AND bill_id = $1 AND status = 'CREATING'", 3, text_params, NULL},
};

/*
 * Bills as a ledger kind.  The reconciler checks a WAITING bill again
 * after base * 2^checks (capped), a failed check after base * 2^failures
 * (capped); a bill is due as soon as it expires, and every base seconds
 * once it has.
 */
const LedgerKind bill_kind = {
	.table = &bill_table,
	.id_column = "bill_id",
	.followed = {NULL, true,
		"t.amount, t.currency, t.expires_at, t.comment, t.customer, t.custom_fields", "",
		"WHEN t.expires_at <= clock_timestamp() AND NOT u.failed"
		" THEN clock_timestamp() + make_interval(secs => $5)",
	"t.expires_at + interval '1 second'"},
	.answer = {bill_params, BILL_NARGS + 3, BILL_NARGS + 2, 0, true},
	.events = {"qiwi_bill_events", "bill_id", NULL, "qiwi_bill_status", "bill_id", NULL},
	.statements = bill_statements,
	.nstatements = lengthof(bill_statements),
	.unknown_outcome = "t.status = 'CREATING'",
};

/* Record a status change of a bill in qiwi_bill_events and announce it at commit */
static void
record_event(const char *merchant, const char *bill_id, const char *old_status,
			 const char *new_status, const char *source)
{
	ledger_event(&bill_kind, merchant, NULL, bill_id, old_status, new_status, source);
}

/* Fill the parameters of an answer about a bill ($1..$15 of BILL_RECORD) */
static void
bill_values(const QiwiBill *bill, const char *source, Datum *values, char *nulls)
{
	ledger_fill(bill_params, BILL_NARGS + 3, bill, values, nulls);
	/* a payment link is not signed: only an API answer may give one */
	if (strcmp(source, LEDGER_BY_NOTIFICATION) == 0)
		values[8] = ledger_text_or_null(NULL, &nulls[8]);
	values[12] = Float8GetDatum((double) qiwi_reconcile_interval_s);
	values[13] = BoolGetDatum(strcmp(source, LEDGER_BY_NOTIFICATION) == 0);
}

/* An answer that repeated the bill's status and money: the row is as QIWI says */
static StoreOutcome
stored_as_answered(const QiwiBill *bill, StoredBill *stored, bool moved)
{
	if (stored != NULL)
	{
		stored->status = pstrdup(bill->status);
		stored->amount = bill->amount;
		stored->currency = bill->currency;
		stored->moved = moved;
	}
	return STORE_REFRESHED;
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
store_bill(const QiwiBill *bill, const char *source, StoredBill *stored)
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
	bool		isnull;

	bill_values(bill, source, values, nulls);
	if (strcmp(source, LEDGER_BY_NOTIFICATION) != 0 && ledger_row_unchanged(&bill_kind, values, nulls))
	{
		ledger_defer_checked_at(&bill_kind, bill->merchant, bill->bill_id);
		return stored_as_answered(bill, stored, false); /* nothing was written */
	}
	ledger_begin_kind(&ctx, &bill_kind);
	if (strcmp(source, LEDGER_BY_NOTIFICATION) != 0 &&
		ledger_run_plan(&bill_kind, BILL_REFRESH, values, nulls, SPI_OK_UPDATE) > 0)
	{
		ledger_end(&ctx);
		return stored_as_answered(bill, stored, true);
	}
	/* lock the row and record the answer, deciding under the lock */
	if (ledger_lock_or_insert(&bill_kind, BILL_RECORD, values, nulls, BILL_INSERT, values, nulls))
	{
		old_status = ledger_row_text(&ctx, 1);
		shop_amount = ledger_row_numeric(&ctx, 2);
		shop_currency = ledger_row_text(&ctx, 3);
		same_money = ledger_row_bool(4);
		same_site = ledger_row_bool(5);
		moved = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6, &isnull));
	}

	if (old_status == NULL)
		outcome = STORE_INSERTED;
	else if (!same_site)
		outcome = STORE_FOREIGN_SITE;
	else if (!same_money)
		outcome = STORE_MISMATCH;
	else if (strcmp(old_status, bill->status) == 0)
		outcome = strcmp(source, LEDGER_BY_NOTIFICATION) == 0 ? STORE_DUPLICATE : STORE_REFRESHED;
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
	ledger_report_mismatch(elevel, "bill", bill->bill_id, bill->amount, bill->currency, bill->status,
						   "bill", stored->amount, stored->currency,
						   "The bill is recorded as MISMATCH, never as paid; qiwi_bills.qiwi_amount, qiwi_currency and qiwi_status hold what QIWI said.");
}

/*
 * Lock a bill's row before a call that changes it at QIWI, so that the
 * answer can be recorded (a conflicting writer or a serialization failure
 * shows now, before anything is sent); false if the bill is unknown.
 */
bool
store_lock_bill(const char *merchant, const char *bill_id, StoredBill *stored)
{
	if (!ledger_lock_item(&bill_kind, merchant, bill_id, &stored->status, &stored->amount,
						  &stored->currency))
		return false;
	stored->moved = false;
	return true;
}

/* Record what QIWI said about a refund in qiwi_refunds */
void
store_refund(const QiwiRefund *refund)
{
	Datum		values[7];
	char		nulls[8];
	OwnerContext ctx;

	ledger_fill(refund_params, 7, refund, values, nulls);
	ledger_begin_kind(&ctx, &bill_kind);
	ledger_run_plan(&bill_kind, REFUND_UPSERT, values, nulls, SPI_OK_INSERT);
	ledger_end(&ctx);
}

/* Record a bill to create at QIWI after commit; false if the id is taken */
bool
store_bill_intent(const QiwiCreateBillArgs *args, Jsonb *customer)
{
	Datum		values[8];
	char		nulls[9];
	OwnerContext ctx;
	bool		inserted;

	ledger_fill(intent_params, 8, args, values, nulls);
	values[5] = ledger_pointer_or_null(customer, &nulls[5]);
	ledger_begin_kind(&ctx, &bill_kind);
	inserted = ledger_run_plan(&bill_kind, BILL_INTENT, values, nulls, SPI_OK_INSERT) > 0;
	if (inserted)
		record_event(args->merchant, args->bill_id, NULL, "CREATING", LEDGER_BY_CALL);
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

	ledger_begin_kind(&ctx, &bill_kind);
	if (ledger_run_plan(&bill_kind, BILL_CREATE_FAILED, values, NULL, SPI_OK_UPDATE) > 0)
		record_event(merchant, bill_id, "CREATING", "CREATE_FAILED", LEDGER_BY_RECONCILER);
	ledger_end(&ctx);
}

/* Tell the ledger about qiwi_bills and its open statuses (from _PG_init) */
void
store_register_table(void)
{
	ledger_add_kind(&bill_kind);
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

	ledger_begin_kind(&ctx, &bill_kind);
	known = ledger_run_plan(&bill_kind, REFUND_HEADROOM, values, NULL, SPI_OK_SELECT) > 0;
	if (known)
	{
		*paid = ledger_row_numeric(&ctx, 1);
		*refunded = ledger_row_numeric(&ctx, 2);
	}
	ledger_end(&ctx);
	return known;
}
