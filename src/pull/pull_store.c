/*
 * pull_store.c
 *		Bookkeeping of Pull bills and refunds in the extension's tables,
 *		through the ledger (as the extension's owner).
 *
 * A bill only moves forward, out of waiting, never back and never from one
 * final status to another; a refund only out of processing.  A bill or a
 * refund that QIWI reports for other money than the shop's row is not
 * recorded (a WARNING says so): the row keeps the shop's money.  Each
 * status change is a row of qiwi_pull_events and a NOTIFY
 * qiwi_pull_status.
 */
#include "core/core.h"
#include "pull/pull.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/builtins.h"

static const char *const bill_open_statuses[] = {"waiting", NULL};
static const LedgerTable bill_table = {
	.name = "qiwi_pull_bills",
	.status_column = "status",
	.open_statuses = bill_open_statuses,
	.reconciled_statuses = bill_open_statuses,
};
static const char *const refund_open_statuses[] = {"processing", NULL};
static const LedgerTable refund_table = {
	.name = "qiwi_pull_refunds",
	.status_column = "status",
	.open_statuses = refund_open_statuses,
	.reconciled_statuses = refund_open_statuses,
};

/* The statements, in the order of pull_statements */
enum
{
	P_BILL_INSERT, P_BILL_UPDATE, P_REFUND_LOCK, P_REFUND_INSERT, P_REFUND_UPDATE, P_REFUNDED,
	P_BILL_CURRENCY
};

/* A bill write: $1..$10 from the answer, $11 the source */
#define BILL_NARGS 10
static const LedgerParam bill_params[BILL_NARGS] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullBill, merchant),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullBill, bill_id),
	LEDGER_MONEY_COLUMNS(PullBill, LEDGER_NUMERIC),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullBill, user),
	LEDGER_COLUMN(TEXTOID, LEDGER_V_TEXT, PullBill, comment, LEDGER_TEXT, false),
	LEDGER_ARG(NUMERICOID, LEDGER_V_VARLENA, PullBill, origin_amount),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullBill, origin_currency),
	LEDGER_COLUMN(TEXTOID, LEDGER_V_TEXT, PullBill, error, LEDGER_TEXT, false),
};

/* A refund write: $1..$7 from the answer */
#define REFUND_NARGS 7
static const LedgerParam refund_params[REFUND_NARGS] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullRefund, merchant),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullRefund, bill_id),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullRefund, refund_id),
	LEDGER_ARG(NUMERICOID, LEDGER_V_NUMERIC, PullRefund, amount),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullRefund, currency),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullRefund, status),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PullRefund, error),
};

static const LedgerParam three_text[3] = {LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID)};

static const LedgerStatement pull_statements[] = {
	[P_BILL_INSERT] = {"INSERT INTO %1$s.qiwi_pull_bills (merchant, bill_id, amount, currency, status,"
		" qiwi_user, comment, origin_amount, origin_currency, error, status_changed_at, checked_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp(), clock_timestamp())"
		" ON CONFLICT (merchant, bill_id) DO NOTHING", BILL_NARGS, bill_params, NULL},
	/* the shop's money: the status moved only forward */
	[P_BILL_UPDATE] = {"UPDATE %1$s.qiwi_pull_bills SET qiwi_user = coalesce($6, qiwi_user),"
		" comment = coalesce($7, comment), origin_amount = coalesce($8, origin_amount),"
		" origin_currency = coalesce($9, origin_currency), error = $10,"
		" status_changed_at = CASE WHEN status = $5 THEN status_changed_at ELSE clock_timestamp() END,"
		" status = $5, checked_at = clock_timestamp()"
		" WHERE merchant = $1 AND bill_id = $2 AND amount = $3 AND currency = $4"
		" AND (status = $5 OR status IN %2$s)", BILL_NARGS, bill_params, NULL},
	[P_REFUND_LOCK] = {"SELECT status, amount FROM %1$s.qiwi_pull_refunds"
		" WHERE merchant = $1 AND bill_id = $2 AND refund_id = $3 FOR UPDATE", 3, three_text, NULL},
	[P_REFUND_INSERT] = {"INSERT INTO %1$s.qiwi_pull_refunds (merchant, bill_id, refund_id, amount, currency,"
		" status, error, status_changed_at, checked_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp(), clock_timestamp())"
		" ON CONFLICT (merchant, bill_id, refund_id) DO NOTHING", REFUND_NARGS, refund_params, NULL},
	[P_REFUND_UPDATE] = {"UPDATE %1$s.qiwi_pull_refunds SET error = $7,"
		" status_changed_at = CASE WHEN status = $6 THEN status_changed_at ELSE clock_timestamp() END,"
		" status = $6, checked_at = clock_timestamp()"
		" WHERE merchant = $1 AND bill_id = $2 AND refund_id = $3 AND amount = $4"
		" AND (status = $6 OR status IN %2$s)", REFUND_NARGS, refund_params, &refund_table},
	/* what the other refunds of a bill took back or may still take back */
	[P_REFUNDED] = {"SELECT coalesce(sum(amount), 0) FROM %1$s.qiwi_pull_refunds"
		" WHERE merchant = $1 AND bill_id = $2 AND refund_id <> $3 AND status <> 'fail'",
	3, three_text, NULL},
	[P_BILL_CURRENCY] = {"SELECT currency FROM %1$s.qiwi_pull_bills WHERE merchant = $1 AND bill_id = $2",
	2, three_text, NULL},
};

/*
 * Pull bills as a ledger kind: followed while waiting, due after base *
 * 2^checks, capped.  Every Pull object's events go to qiwi_pull_events.
 */
const LedgerKind pull_bill_kind = {
	.table = &bill_table,
	.id_column = "bill_id",
	.followed = {NULL, true, "t.amount, t.currency", "", "WHEN false THEN NULL", "NULL::timestamptz"},
	.answer = {bill_params, BILL_NARGS, 0, 1, false},
	.events = {"qiwi_pull_events", "object_id", "object", "qiwi_pull_status", "id", NULL},
	.statements = pull_statements,
	.nstatements = lengthof(pull_statements),
};

/*
 * Pull refunds as a ledger kind, keyed by refund_key (bill_id/refund_id):
 * followed while processing, due after base * 2^checks, capped.  A claim
 * returns their bill, refund id and currency; their rows are written with
 * the bills' statements (pull_store_refund), so the kind has none.
 */
const LedgerKind pull_refund_kind = {
	.table = &refund_table,
	.id_column = "refund_key",
	.followed = {NULL, true, "t.bill_id, t.refund_id, t.currency", "", "WHEN false THEN NULL",
	"NULL::timestamptz"},
	.events = {"qiwi_pull_events", "object_id", "object", "qiwi_pull_status", "id", NULL},
};

/* Run one of the Pull statements */
static uint64
run(int plan, Datum *values, const char *nulls, int expected)
{
	return ledger_run_plan(&pull_bill_kind, plan, values, nulls, expected);
}

/* Warn that QIWI reported an object for other money than the shop's row, which stays */
static void
report_other_money(const char *what, const char *id, Numeric amount, const char *currency,
				   const char *status, Numeric shop_amount, const char *shop_currency)
{
	ledger_report_mismatch(WARNING, what, id, amount, currency, status, what, shop_amount,
						   shop_currency, "The row keeps the shop's money and status.");
}

/*
 * Record what QIWI said about a bill, forward only; *bill then says what
 * was recorded.  True if its status changed (or it was new).
 */
bool
pull_store_bill(PullBill *bill, const char *source)
{
	Datum		values[BILL_NARGS];
	char		nulls[BILL_NARGS + 1];
	OwnerContext ctx;
	bool		changed = false;

	ledger_fill(bill_params, BILL_NARGS, bill, values, nulls);
	ledger_begin_kind(&ctx, &pull_bill_kind);
	if (!ledger_lock_or_insert(&pull_bill_kind, LEDGER_ROW_LOCK, values, NULL, P_BILL_INSERT,
							   values, nulls))
	{
		ledger_event(&pull_bill_kind, bill->merchant, "bill", bill->bill_id, NULL, bill->status,
					 source);
		changed = true;
	}
	else
	{
		char	   *old_status = ledger_row_text(&ctx, 1);
		Numeric		shop_amount = ledger_row_numeric(&ctx, 2);
		char	   *shop_currency = ledger_row_text(&ctx, 3);

		if (!qiwi_same_money(shop_amount, shop_currency, bill->amount, bill->currency))
		{
			report_other_money("bill", bill->bill_id, bill->amount, bill->currency, bill->status,
							   shop_amount, shop_currency);
			bill->status = old_status;
		}
		else if (run(P_BILL_UPDATE, values, nulls, SPI_OK_UPDATE) > 0 &&
				 strcmp(old_status, bill->status) != 0)
		{
			ledger_event(&pull_bill_kind, bill->merchant, "bill", bill->bill_id, old_status,
						 bill->status, source);
			changed = true;
		}
		else if (strcmp(old_status, bill->status) != 0)
			bill->status = old_status;	/* final already: it stays */
	}
	ledger_end(&ctx);
	return changed;
}

/* Record what QIWI said about a refund, forward only; *refund then says what was recorded */
void
pull_store_refund(PullRefund *refund, const char *source)
{
	Datum		values[REFUND_NARGS];
	char		nulls[REFUND_NARGS + 1];
	OwnerContext ctx;
	char	   *id = psprintf("%s/%s", refund->bill_id, refund->refund_id);

	ledger_fill(refund_params, REFUND_NARGS, refund, values, nulls);
	ledger_begin_kind(&ctx, &pull_bill_kind);
	if (!ledger_lock_or_insert(&pull_bill_kind, P_REFUND_LOCK, values, NULL, P_REFUND_INSERT,
							   values, nulls))
		ledger_event(&pull_bill_kind, refund->merchant, "refund", id, NULL, refund->status, source);
	else
	{
		char	   *old_status = ledger_row_text(&ctx, 1);
		Numeric		shop_amount = ledger_row_numeric(&ctx, 2);

		if (!qiwi_same_money(shop_amount, "", refund->amount, ""))
		{
			report_other_money("refund", id, refund->amount, refund->currency, refund->status,
							   shop_amount, refund->currency);
			refund->status = old_status;
		}
		else if (run(P_REFUND_UPDATE, values, nulls, SPI_OK_UPDATE) > 0 &&
				 strcmp(old_status, refund->status) != 0)
			ledger_event(&pull_bill_kind, refund->merchant, "refund", id, old_status,
						 refund->status, source);
		else if (strcmp(old_status, refund->status) != 0)
			refund->status = old_status;
	}
	ledger_end(&ctx);
}

/* The currency of a bill the tables know, read without a lock (a standby answers it), or NULL */
char *
pull_store_bill_currency(const char *merchant, const char *bill_id)
{
	Datum		values[2] = {CStringGetTextDatum(merchant), CStringGetTextDatum(bill_id)};
	OwnerContext ctx;
	char	   *currency = NULL;

	ledger_begin_kind(&ctx, &pull_bill_kind);
	if (run(P_BILL_CURRENCY, values, NULL, SPI_OK_SELECT) > 0)
		currency = ledger_row_text(&ctx, 1);
	ledger_end(&ctx);
	return currency;
}

/* What the refunds of a bill other than refund_id took back or may take back (not failed) */
Numeric
pull_store_refunded(const char *merchant, const char *bill_id, const char *refund_id)
{
	Datum		values[3] = {CStringGetTextDatum(merchant), CStringGetTextDatum(bill_id),
	CStringGetTextDatum(refund_id)};
	OwnerContext ctx;
	Numeric		refunded;

	ledger_begin_kind(&ctx, &pull_bill_kind);
	run(P_REFUNDED, values, NULL, SPI_OK_SELECT);
	refunded = ledger_row_numeric(&ctx, 1);
	ledger_end(&ctx);
	return refunded;
}
