/*
 * payin_store.c
 *		Bookkeeping of Payin invoices, payments, payment tokens and card
 *		checks in the extension's tables, through the ledger (as the
 *		extension's owner); what is left to refund of a payment.
 *
 * An invoice or a payment only moves forward (LedgerTable): out of CREATED
 * or WAITING, never back, never from one final status to another.  An
 * invoice or payment that QIWI reports for other money than the shop's
 * invoice becomes MISMATCH, never PAID or COMPLETED.  Captures and refunds
 * are payin_intent.c's; what a payment captured and refunded only grows.
 * Tokens are recorded once; a token is deleted once, and its row stays.  A
 * card check moves forward out of INIT or WAITING_3DS (the form waits),
 * never back to INIT, never from a final status.  Each status change is a
 * row of qiwi_payin_events and a NOTIFY qiwi_payin_status.  An answer the
 * reconciler gets that repeats an invoice's row writes nothing to it: its
 * check is written with its chunk's, in one statement.
 */
#include "core/core.h"
#include "payin/payin.h"

#include "catalog/pg_type_d.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

static const char *const invoice_open_statuses[] = {"CREATED", NULL};
static const LedgerTable invoice_table = {
	.name = "qiwi_payin_invoices",
	.status_column = "status",
	.open_statuses = invoice_open_statuses,
	.reconciled_statuses = invoice_open_statuses,
};
static const char *const payment_open_statuses[] = {"WAITING", NULL};
static const LedgerTable payment_table = {
	.name = "qiwi_payin_payments",
	.status_column = "status",
	.open_statuses = payment_open_statuses,
	.reconciled_statuses = payment_open_statuses,
};

/* Where an invoice or payment recorded as MISMATCH keeps what QIWI said */
#define PAYIN_MISMATCH_KEPT "It is recorded as MISMATCH, never as paid; qiwi_status holds what QIWI said."

/* The statements, in the order of payin_statements */
enum
{
	P_INVOICE_INSERT, P_INVOICE_UPDATE, P_INVOICE_MISMATCH,
	P_PAYMENT_LOCK, P_PAYMENT_INSERT, P_PAYMENT_UPDATE, P_PAYMENT_MISMATCH,
	P_HEADROOM, P_INVOICE_NOTIFIED, P_TOKEN_INSERT,
	P_TOKEN_LOCK, P_TOKEN_DELETE, P_CARD_CHECK_INSERT, P_PAYMENT_MONEY, P_CARD_CHECK_LOCK,
	P_CARD_CHECK_UPDATE
};

/*
 * An invoice write: $1..$15 from the answer (those compared fill their
 * columns; an absent uid, site, link or time keeps the row's), $16 the source
 */
#define INVOICE_NARGS 16
static const LedgerParam invoice_params[INVOICE_NARGS] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinInvoice, merchant),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinInvoice, bill_id),
	LEDGER_COLUMN(TEXTOID, LEDGER_V_TEXT, PayinInvoice, invoice_uid, LEDGER_TEXT, true),
	LEDGER_COLUMN(TEXTOID, LEDGER_V_TEXT, PayinInvoice, site_id, LEDGER_TEXT, true),
	LEDGER_MONEY_COLUMNS(PayinInvoice, LEDGER_NUMERIC),
	LEDGER_COLUMN(TEXTARRAYOID, LEDGER_V_VARLENA, PayinInvoice, flags, LEDGER_TEXT_ARRAY, false),
	LEDGER_TERMS_COLUMNS(PayinInvoice, terms, true),
	LEDGER_TIME_COLUMN(PayinInvoice, created_at, true),
	LEDGER_TIME_ARG(PayinInvoice, status_changed_at),
	LEDGER_SET(TEXTOID),
};

/* A payment write: $1..$15 from the answer, $16 the merchant's capture hours */
#define PAYMENT_NARGS 16
static const LedgerParam payment_params[PAYMENT_NARGS] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinPayment, merchant),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinPayment, payment_id),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinPayment, bill_id),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinPayment, status),
	LEDGER_ARG(NUMERICOID, LEDGER_V_NUMERIC, PayinPayment, amount),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinPayment, currency),
	LEDGER_ARG(NUMERICOID, LEDGER_V_NUMERIC, PayinPayment, captured_amount),
	LEDGER_ARG(NUMERICOID, LEDGER_V_NUMERIC, PayinPayment, refunded_amount),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinPayment, method),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinPayment, masked_pan),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinPayment, reason_code),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinPayment, reason_message),
	LEDGER_TIME_ARG(PayinPayment, created_at),
	LEDGER_TIME_ARG(PayinPayment, status_changed_at),
	LEDGER_ARG(TEXTARRAYOID, LEDGER_V_VARLENA, PayinPayment, flags),
	LEDGER_SET(INT4OID),
};

/* A token write: $1..$6 from the answer, $7 recorded as deleted */
#define TOKEN_NARGS 7
static const LedgerParam token_params[TOKEN_NARGS] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinToken, merchant),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinToken, account),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinToken, token),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinToken, name),
	LEDGER_TIME_ARG(PayinToken, expires_at),
	LEDGER_TIME_ARG(PayinToken, bound_at),
	LEDGER_SET(BOOLOID),
};

/* A card check write: $1..$7 from the answer, $8 the token it bound */
#define CARD_CHECK_NARGS 8
static const LedgerParam card_check_params[CARD_CHECK_NARGS] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinCardCheck, merchant),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinCardCheck, request_uid),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinCardCheck, status),
	LEDGER_BOOL_ARG(PayinCardCheck, valid_card),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinCardCheck, three_ds_status),
	LEDGER_TIME_ARG(PayinCardCheck, operation_date),
	LEDGER_ARG(JSONBOID, LEDGER_V_VARLENA, PayinCardCheck, card_info),
	LEDGER_SET(TEXTOID),
};

static const LedgerParam two_text[3] = {LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID)};

static const LedgerStatement payin_statements[] = {
	[P_INVOICE_INSERT] = {"INSERT INTO %1$s.qiwi_payin_invoices (merchant, bill_id, invoice_uid, site_id, amount,"
		" currency, status, flags, capture, pay_url, comment, customer, custom_fields,"
		" created_at, expires_at, status_changed_at, checked_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
		/* only a card check is for 0.00 (QIWI's answer to one may carry no flags) */
		" CASE WHEN $5 = 0 THEN 'check' WHEN 'SALE' = ANY ($8) THEN 'auto' ELSE 'manual' END,"
		" $10, $11, $12, $13, $14, $9, coalesce($15, clock_timestamp()), clock_timestamp())"
		" ON CONFLICT (merchant, bill_id) DO NOTHING", INVOICE_NARGS, invoice_params, NULL},
	/* the shop's money: details refreshed, the status moved only forward */
	[P_INVOICE_UPDATE] = {"UPDATE %1$s.qiwi_payin_invoices SET invoice_uid = coalesce($3, invoice_uid),"
		" site_id = coalesce($4, site_id), flags = $8, pay_url = coalesce($10, pay_url),"
		" comment = $11, customer = $12, custom_fields = $13,"
		" created_at = coalesce($14, created_at), expires_at = coalesce($9, expires_at),"
		" status_changed_at = CASE WHEN status = $7 THEN status_changed_at"
		"  ELSE coalesce($15, clock_timestamp()) END,"
		" status = $7, checked_at = clock_timestamp(), notified_at = NULL"
		" WHERE merchant = $1 AND bill_id = $2 AND amount = $5 AND currency = $6"
		" AND (status = $7 OR (status IN %2$s AND $7 <> status))", INVOICE_NARGS, invoice_params, NULL},
	/* other money: never PAID; what QIWI said is kept beside the shop's */
	[P_INVOICE_MISMATCH] = {"UPDATE %1$s.qiwi_payin_invoices SET status = 'MISMATCH', qiwi_amount = $5,"
		" qiwi_currency = $6, qiwi_status = $7, checked_at = clock_timestamp(), notified_at = NULL,"
		" status_changed_at = CASE WHEN status = 'MISMATCH' THEN status_changed_at"
		"  ELSE clock_timestamp() END"
		" WHERE merchant = $1 AND bill_id = $2 AND (status IN %2$s OR status = 'MISMATCH')",
	INVOICE_NARGS, invoice_params, NULL},
	/* a payment's status and its invoice's money (NULL if the invoice is unknown) */
	[P_PAYMENT_LOCK] = {"SELECT (SELECT p.status FROM %1$s.qiwi_payin_payments p"
		"  WHERE p.merchant = $1 AND p.payment_id = $2 FOR UPDATE),"
		" (SELECT i.amount FROM %1$s.qiwi_payin_invoices i WHERE i.merchant = $1 AND i.bill_id = $3),"
		" (SELECT i.currency FROM %1$s.qiwi_payin_invoices i WHERE i.merchant = $1 AND i.bill_id = $3)",
	3, two_text, NULL},
	[P_PAYMENT_INSERT] = {"INSERT INTO %1$s.qiwi_payin_payments (merchant, payment_id, bill_id, status, amount,"
		" currency, captured_amount, refunded_amount, method, masked_pan, reason_code,"
		" reason_message, created_at, status_changed_at, flags, capture_deadline, checked_at)"
		" VALUES ($1, $2, $3, $4, $5, $6,"
		/* a capture told of before its payment counts */
		" greatest($7, (SELECT max(c.amount) FROM %1$s.qiwi_payin_captures c"
		"  WHERE c.merchant = $1 AND c.payment_id = $2 AND c.status = 'COMPLETED'"
		"  AND c.currency = $6 AND c.amount <= $5)),"
		" $8, $9, $10, $11, $12, $13,"
		" coalesce($14, clock_timestamp()), $15,"
		" CASE WHEN $4 = 'COMPLETED' AND NOT 'SALE' = ANY ($15)"
		"  THEN coalesce($14, clock_timestamp()) + make_interval(hours => $16) END,"
		" clock_timestamp())"
		" ON CONFLICT (merchant, payment_id) DO NOTHING", PAYMENT_NARGS, payment_params, NULL},
	[P_PAYMENT_UPDATE] = {"UPDATE %1$s.qiwi_payin_payments SET bill_id = coalesce($3, bill_id),"
		" captured_amount = greatest(captured_amount, $7),"
		" refunded_amount = greatest(refunded_amount, $8),"
		" method = coalesce($9, method), masked_pan = coalesce($10, masked_pan),"
		" reason_code = coalesce($11, reason_code), reason_message = coalesce($12, reason_message),"
		" created_at = coalesce($13, created_at), flags = $15,"
		" status_changed_at = CASE WHEN status = $4 THEN status_changed_at"
		"  ELSE coalesce($14, clock_timestamp()) END,"
		" capture_deadline = CASE WHEN $4 = 'COMPLETED' AND NOT 'SALE' = ANY ($15)"
		"  THEN coalesce(capture_deadline, coalesce($14, clock_timestamp()) + make_interval(hours => $16)) END,"
		" status = $4, checked_at = clock_timestamp()"
		" WHERE merchant = $1 AND payment_id = $2 AND (status = $4 OR (status IN %2$s AND $4 <> status))",
	PAYMENT_NARGS, payment_params, &payment_table},
	[P_PAYMENT_MISMATCH] = {"INSERT INTO %1$s.qiwi_payin_payments AS p (merchant, payment_id, bill_id, status, amount,"
		" currency, captured_amount, refunded_amount, method, masked_pan, reason_code,"
		" reason_message, created_at, status_changed_at, flags, qiwi_status, checked_at)"
		" VALUES ($1, $2, $3, 'MISMATCH', $5, $6, $7, $8, $9, $10, $11, $12, $13,"
		" clock_timestamp(), $15, $4, clock_timestamp())"
		" ON CONFLICT (merchant, payment_id) DO UPDATE SET"
		" status_changed_at = CASE WHEN p.status = 'MISMATCH' THEN p.status_changed_at"
		"  ELSE clock_timestamp() END,"
		" status = 'MISMATCH', qiwi_status = $4, amount = $5, currency = $6,"
		" captured_amount = greatest(p.captured_amount, $7),"
		" refunded_amount = greatest(p.refunded_amount, $8), checked_at = clock_timestamp()"
		" WHERE p.status IN %2$s OR p.status = 'MISMATCH'",
	PAYMENT_NARGS, payment_params, &payment_table},
	/*
	 * What is left to refund, read after the payment's row is locked (by
	 * P_PAYMENT_MONEY, in a statement of its own, so that this one's
	 * snapshot counts a refund committed while we waited): before the
	 * capture of a two-step payment the hold, less the reversals; after it
	 * (or for a one-step payment) what was captured, less the refunds that
	 * were not reversals (left_here), those sent whose outcome is not known
	 * ('sending') counted as made.  And never more than QIWI's amount
	 * less what QIWI said the payment refunded or released (a capture
	 * takes all that is still held, so this is what is left either way),
	 * the refund refund_id, if recorded, not counted.
	 */
	[P_HEADROOM] = {"SELECT p.status, m.captured, m.base, m.base - x.left_all, x.left_all, x.left_here, p.currency"
		" FROM %1$s.qiwi_payin_payments p,"
		" LATERAL (SELECT p.captured_amount > 0 OR 'SALE' = ANY (p.flags) AS captured) c,"
		" LATERAL (SELECT c.captured,"
		"  CASE WHEN c.captured THEN greatest(p.captured_amount, CASE WHEN 'SALE' = ANY (p.flags) THEN p.amount ELSE 0 END)"
		"   ELSE p.amount END AS base,"
		"  coalesce((SELECT sum(r.amount) FROM %1$s.qiwi_payin_refunds r"
		"   WHERE r.merchant = p.merchant AND r.payment_id = p.payment_id AND r.refund_id <> $3"
		"   AND r.status IN ('COMPLETED', 'sending') AND NOT (c.captured AND r.reversal)), 0) AS refunded,"
		"  p.refunded_amount - coalesce((SELECT r.amount FROM %1$s.qiwi_payin_refunds r"
		"   WHERE r.merchant = p.merchant AND r.payment_id = p.payment_id AND r.refund_id = $3"
		"   AND r.status = 'COMPLETED'), 0) AS reported) m,"
		" LATERAL (SELECT m.base - m.refunded AS left_here,"
		"  least(m.base - m.refunded, p.amount - greatest(m.reported, 0)) AS left_all) x"
		" WHERE p.merchant = $1 AND p.payment_id = $2", 3, two_text, NULL},
	/*
	 * A verified notification about a payment of invoice $3 (the invoice of
	 * payment $2 if the tables know it): the invoice is due for a check at
	 * once, and notified until QIWI's answer confirms it
	 */
	[P_INVOICE_NOTIFIED] = {"UPDATE %1$s.qiwi_payin_invoices i SET notified_at = clock_timestamp(),"
		" next_check_at = clock_timestamp()"
		" WHERE i.merchant = $1 AND i.status IN ('CREATED', 'PAID')"
		" AND i.bill_id = coalesce((SELECT p.bill_id FROM %1$s.qiwi_payin_payments p"
		"  WHERE p.merchant = $1 AND p.payment_id = $2), $3)"
		" RETURNING i.bill_id", 3, two_text, NULL},
	[P_TOKEN_INSERT] = {"INSERT INTO %1$s.qiwi_payin_tokens (merchant, account, token, card, expires_at, bound_at, deleted_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN clock_timestamp() END)"
		" ON CONFLICT (merchant, token) DO NOTHING", TOKEN_NARGS, token_params, NULL},
	[P_TOKEN_LOCK] = {"SELECT account, deleted_at IS NOT NULL FROM %1$s.qiwi_payin_tokens"
		" WHERE merchant = $1 AND token = $2 FOR UPDATE", 2, two_text, NULL},
	/* a token is deleted once; its row stays, for the history */
	[P_TOKEN_DELETE] = {"UPDATE %1$s.qiwi_payin_tokens SET deleted_at = clock_timestamp()"
		" WHERE merchant = $1 AND token = $2 AND deleted_at IS NULL", 2, two_text, NULL},
	[P_CARD_CHECK_INSERT] = {"INSERT INTO %1$s.qiwi_payin_card_checks (merchant, request_uid, status, is_valid_card,"
		" three_ds_status, check_operation_date, card_info, created_token)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (merchant, request_uid) DO NOTHING",
	CARD_CHECK_NARGS, card_check_params, NULL},
	[P_PAYMENT_MONEY] = {"SELECT amount, currency FROM %1$s.qiwi_payin_payments WHERE merchant = $1 AND payment_id = $2"
		" FOR UPDATE", 2, two_text, NULL},
	[P_CARD_CHECK_LOCK] = {"SELECT status FROM %1$s.qiwi_payin_card_checks WHERE merchant = $1 AND request_uid = $2"
		" FOR UPDATE", 2, two_text, NULL},
	[P_CARD_CHECK_UPDATE] = {"UPDATE %1$s.qiwi_payin_card_checks SET status = $3, is_valid_card = $4, three_ds_status = $5,"
		" check_operation_date = $6, card_info = $7, created_token = $8"
		" WHERE merchant = $1 AND request_uid = $2", CARD_CHECK_NARGS, card_check_params, NULL},
};

/*
 * Payin invoices as a ledger kind.  The reconciler follows an invoice
 * while it is CREATED, or PAID with money held (until it is captured or
 * released), or named by a notification QIWI's answer has not confirmed
 * yet.  It is due after base * 2^checks (or 2^failures after a failure),
 * capped, and at the latest just after its deadline: expires_at, or the
 * first capture deadline of its holds.  An answer confirms a notification
 * that came before the invoice was claimed ($7); a later one keeps the
 * invoice notified and due at once.  Every Payin object's events go to
 * qiwi_payin_events.
 */
const LedgerKind payin_invoice_kind = {
	.table = &invoice_table,
	.id_column = "bill_id",
	.followed = {"(t.status = 'CREATED' OR (t.status = 'PAID' AND (t.notified_at IS NOT NULL"
		" OR EXISTS (SELECT FROM %1$s.qiwi_payin_holds h"
		" WHERE h.merchant = t.merchant AND h.bill_id = t.bill_id))))", false, NULL,
		", notified_at = CASE WHEN u.failed OR t.notified_at > $7 THEN t.notified_at END",
		"WHEN NOT u.failed AND t.notified_at > $7 THEN clock_timestamp()",
		"(SELECT d.deadline + interval '1 second' FROM (SELECT CASE WHEN t.status = 'CREATED'"
		" THEN t.expires_at ELSE (SELECT min(h.capture_deadline) FROM %1$s.qiwi_payin_holds h"
		" WHERE h.merchant = t.merchant AND h.bill_id = t.bill_id) END AS deadline) d"
	" WHERE d.deadline > clock_timestamp())"},
	.answer = {invoice_params, INVOICE_NARGS, 0, 1, false},
	.events = {"qiwi_payin_events", "object_id", "object", "qiwi_payin_status", "id", NULL},
	.statements = payin_statements,
	.nstatements = lengthof(payin_statements),
};

/* Run one of the Payin statements */
static uint64
run(int plan, Datum *values, const char *nulls, int expected)
{
	return ledger_run_plan(&payin_invoice_kind, plan, values, nulls, expected);
}

/* Record a status change of a Payin object in qiwi_payin_events and announce it at commit */
static void
record_event(const char *merchant, const char *object, const char *id, const char *old_status,
			 const char *new_status, const char *source)
{
	ledger_event(&payin_invoice_kind, merchant, object, id, old_status, new_status, source);
}

/*
 * Does an answer calling the invoice PAID list a completed payment of the
 * invoice's money, and no payment for other money (*other_money)?
 */
static bool
paid_with_its_money(const PayinInvoice *invoice, bool *other_money)
{
	bool		paid = false;
	ListCell   *lc;

	*other_money = false;
	foreach(lc, invoice->payments)
	{
		PayinPayment *payment = (PayinPayment *) lfirst(lc);

		if (!qiwi_same_money(payment->amount, payment->currency, invoice->amount, invoice->currency))
			*other_money = true;
		else if (strcmp(payment->status, "COMPLETED") == 0)
			paid = true;
	}
	return paid && !*other_money;
}

/*
 * Write an answer that differs from the invoice's row (or has none) under
 * the row's lock, forward only; other money than the shop's makes the
 * invoice MISMATCH.  values, nulls: the answer's parameters.
 */
static void
record_invoice_row(PayinInvoice *invoice, const char *source, Datum *values, char *nulls)
{
	OwnerContext ctx;
	char	   *old_status;
	Numeric		shop_amount;
	char	   *shop_currency;

	ledger_begin_kind(&ctx, &payin_invoice_kind);
	if (!ledger_lock_or_insert(&payin_invoice_kind, LEDGER_ROW_LOCK, values, NULL,
							   P_INVOICE_INSERT, values, nulls))
	{
		record_event(invoice->merchant, "invoice", invoice->bill_id, NULL, invoice->status, source);
		ledger_end(&ctx);
		return;
	}
	old_status = ledger_row_text(&ctx, 1);
	shop_amount = ledger_row_numeric(&ctx, 2);
	shop_currency = ledger_row_text(&ctx, 3);
	if (!qiwi_same_money(shop_amount, shop_currency, invoice->amount, invoice->currency))
	{
		if (run(P_INVOICE_MISMATCH, values, nulls, SPI_OK_UPDATE) == 0)
			invoice->status = old_status;	/* final already: it stays, and is returned */
		else
		{
			if (strcmp(old_status, "MISMATCH") != 0)
			{
				record_event(invoice->merchant, "invoice", invoice->bill_id, old_status, "MISMATCH", source);
				ledger_report_mismatch(WARNING, "invoice", invoice->bill_id, invoice->amount,
									   invoice->currency, invoice->status, "invoice", shop_amount,
									   shop_currency, PAYIN_MISMATCH_KEPT);
			}
			invoice->status = "MISMATCH";
		}
		invoice->amount = shop_amount;
		invoice->currency = shop_currency;
	}
	else if (run(P_INVOICE_UPDATE, values, nulls, SPI_OK_UPDATE) > 0 &&
			 strcmp(old_status, invoice->status) != 0)
		record_event(invoice->merchant, "invoice", invoice->bill_id, old_status, invoice->status, source);
	else if (strcmp(old_status, invoice->status) != 0)
		invoice->status = old_status;	/* final already, or MISMATCH: it stays */
	ledger_end(&ctx);
}

/*
 * Record what QIWI said about an invoice (and the payments it came with),
 * forward only.  Other money than the shop's makes it MISMATCH, and so
 * does the invoice returned to the caller, now and later.  With
 * check_recorded (the reconciler, which writes checked_at with the check)
 * an answer that repeats the invoice's row writes nothing to it, and does
 * not even become the owner to find that out.
 */
void
payin_store_invoice(PayinInvoice *invoice, const char *source, bool check_recorded)
{
	Datum		values[INVOICE_NARGS];
	char		nulls[INVOICE_NARGS + 1];
	bool		paid_other_money = false;
	ListCell   *lc;

	ledger_fill(invoice_params, INVOICE_NARGS, invoice, values, nulls);
	values[15] = CStringGetTextDatum(source);

	/*
	 * QIWI's PAID is taken only with a completed payment of the invoice's
	 * money among the payments its answer lists: otherwise the invoice stays
	 * open here (a payment for other money makes it MISMATCH below).
	 */
	if (strcmp(invoice->status, "PAID") == 0 && !paid_with_its_money(invoice, &paid_other_money))
	{
		if (!paid_other_money)
			ereport(WARNING,
					(errcode(ERRCODE_QIWI_MALFORMED),
					 errmsg("QIWI calls Payin invoice \"%s\" PAID, but its answer lists no completed payment of %s %s",
							invoice->bill_id, qiwi_format_amount(invoice->amount), invoice->currency),
					 errdetail("An invoice is PAID here only with a completed payment of its money: QIWI's PAID is not recorded, and the reconciler keeps asking.")));
		invoice->status = "CREATED";
		values[6] = CStringGetTextDatum(invoice->status);
	}

	/* the reconciler's usual answer: nothing to write (its check writes checked_at) */
	if (!check_recorded || !ledger_row_unchanged(&payin_invoice_kind, values, nulls))
		record_invoice_row(invoice, source, values, nulls);

	foreach(lc, invoice->payments)
	{
		PayinPayment *payment = (PayinPayment *) lfirst(lc);

		if (payment->bill_id == NULL)
			payment->bill_id = invoice->bill_id;
		payin_store_payment(payment, source);
	}
	/* an open invoice became MISMATCH with that payment */
	if (paid_other_money && strcmp(invoice->status, "CREATED") == 0)
		invoice->status = "MISMATCH";
}

/*
 * Record what QIWI said about a payment, forward only; a payment for other
 * money than its invoice (when the invoice is known) is MISMATCH, and so is
 * its invoice.  *payment then says what was recorded.
 */
void
payin_store_payment(PayinPayment *payment, const char *source)
{
	Datum		values[PAYMENT_NARGS];
	char		nulls[PAYMENT_NARGS + 1];
	OwnerContext ctx;
	char	   *old_status;
	Numeric		invoice_amount;
	char	   *invoice_currency;
	const Merchant *merchant = merchant_by_name(payment->merchant);

	ledger_fill(payment_params, PAYMENT_NARGS, payment, values, nulls);
	values[15] = Int32GetDatum(merchant ? payin_capture_hours(merchant) : PAYIN_DEFAULT_CAPTURE_HOURS);

	ledger_begin_kind(&ctx, &payin_invoice_kind);
	/* its first three parameters: merchant, payment, invoice */
	run(P_PAYMENT_LOCK, values, nulls, SPI_OK_SELECT);
	old_status = ledger_row_text(&ctx, 1);
	invoice_amount = ledger_row_numeric(&ctx, 2);
	invoice_currency = ledger_row_text(&ctx, 3);
	if (invoice_amount != NULL &&
		!qiwi_same_money(invoice_amount, invoice_currency, payment->amount, payment->currency))
	{
		/* an invoice write of merchant, bill_id, amount, currency and what QIWI said */
		Datum		inv_values[INVOICE_NARGS] = {values[0], values[2], 0, 0, values[4], values[5],
		CStringGetTextDatum(psprintf("payment %s", payment->status))};
		char		inv_nulls[INVOICE_NARGS + 1] = "  nn   nnnnnnnnn";
		Datum		invoice_key[2] = {values[0], values[2]};
		char	   *invoice_status = "MISMATCH";

		if (run(P_PAYMENT_MISMATCH, values, nulls, SPI_OK_INSERT) > 0 &&
			(old_status == NULL || strcmp(old_status, "MISMATCH") != 0))
		{
			record_event(payment->merchant, "payment", payment->payment_id, old_status, "MISMATCH", source);
			ledger_report_mismatch(WARNING, "payment", payment->payment_id, payment->amount,
								   payment->currency, payment->status, "invoice", invoice_amount,
								   invoice_currency, PAYIN_MISMATCH_KEPT);
		}
		/* its invoice is not paid either */
		if (run(LEDGER_ROW_LOCK, invoice_key, NULL, SPI_OK_SELECT) > 0)
			invoice_status = ledger_row_text(&ctx, 1);
		if (run(P_INVOICE_MISMATCH, inv_values, inv_nulls, SPI_OK_UPDATE) > 0 &&
			strcmp(invoice_status, "MISMATCH") != 0)
			record_event(payment->merchant, "invoice", payment->bill_id, invoice_status, "MISMATCH", source);
		payment->status = "MISMATCH";
	}
	else if (old_status == NULL &&
			 run(P_PAYMENT_INSERT, values, nulls, SPI_OK_INSERT) > 0)
		record_event(payment->merchant, "payment", payment->payment_id, NULL, payment->status, source);
	else if (old_status == NULL || strcmp(old_status, payment->status) != 0)
	{
		if (run(P_PAYMENT_UPDATE, values, nulls, SPI_OK_UPDATE) > 0)
			record_event(payment->merchant, "payment", payment->payment_id, old_status, payment->status, source);
		else if (old_status != NULL)
			payment->status = old_status;	/* final already, or MISMATCH: it stays */
	}
	else
		run(P_PAYMENT_UPDATE, values, nulls, SPI_OK_UPDATE);
	ledger_end(&ctx);
}

/*
 * A verified notification about payment payment_id (of invoice bill_id,
 * as the notification says, when the tables do not know the payment):
 * mark its invoice notified and due at once.  The invoice's id, or NULL
 * if the tables have no such open or paid invoice.
 */
char *
payin_store_notified(const char *merchant, const char *payment_id, const char *bill_id)
{
	Datum		values[3];
	char		nulls[4] = {' ', ' ', ' ', '\0'};
	OwnerContext ctx;
	char	   *notified = NULL;

	values[0] = CStringGetTextDatum(merchant);
	values[1] = CStringGetTextDatum(payment_id);
	values[2] = ledger_text_or_null(bill_id, &nulls[2]);
	ledger_begin_kind(&ctx, &payin_invoice_kind);
	if (run(P_INVOICE_NOTIFIED, values, nulls, SPI_OK_UPDATE_RETURNING) > 0)
		notified = ledger_row_text(&ctx, 1);
	ledger_end(&ctx);
	return notified;
}

/*
 * Lock a payment's row, if the tables have it, before a capture is sent: a
 * concurrent capture, refund or reconciler check of it waits, and a
 * conflict shows before QIWI acts rather than when its answer is recorded.
 */
void
payin_store_lock_payment(const char *merchant, const char *payment_id)
{
	Datum		values[2] = {CStringGetTextDatum(merchant), CStringGetTextDatum(payment_id)};
	OwnerContext ctx;

	ledger_begin_kind(&ctx, &payin_invoice_kind);
	run(P_PAYMENT_MONEY, values, NULL, SPI_OK_SELECT);
	ledger_end(&ctx);
}

/*
 * What is left to refund of a payment as the tables know it (other refunds
 * than refund_id counted): its row is locked first, as
 * payin_store_lock_payment does, and what is left is read in a statement
 * of its own, whose snapshot counts a refund committed while the lock was
 * waited for.  False if the payment is unknown here.
 */
bool
payin_store_headroom(const char *merchant, const char *payment_id, const char *refund_id,
					 PayinHeadroom *headroom)
{
	Datum		values[3] = {CStringGetTextDatum(merchant), CStringGetTextDatum(payment_id),
	CStringGetTextDatum(refund_id)};
	OwnerContext ctx;
	bool		known;

	ledger_begin_kind(&ctx, &payin_invoice_kind);
	known = run(P_PAYMENT_MONEY, values, NULL, SPI_OK_SELECT) > 0;
	if (known && run(P_HEADROOM, values, NULL, SPI_OK_SELECT) != 1)
		elog(ERROR, "Payin payment \"%s\" is locked but its row was not read", payment_id);
	if (known)
	{
		headroom->status = ledger_row_text(&ctx, 1);
		headroom->captured = ledger_row_bool(2);
		headroom->base = ledger_row_numeric(&ctx, 3);
		headroom->refunded = ledger_row_numeric(&ctx, 4);
		headroom->left = ledger_row_numeric(&ctx, 5);
		headroom->left_here = ledger_row_numeric(&ctx, 6);
		headroom->currency = ledger_row_text(&ctx, 7);
	}
	ledger_end(&ctx);
	return known;
}

/*
 * Lock an invoice's row before a call that changes it at QIWI (a conflict
 * shows before anything is sent); false if it is unknown.
 */
bool
payin_store_lock_invoice(const char *merchant, const char *bill_id, Numeric *amount,
						 char **currency, char **status)
{
	return ledger_lock_item(&payin_invoice_kind, merchant, bill_id, status, amount, currency);
}

/* Tell the ledger about the invoices' and payments' tables and their open statuses (from _PG_init) */
void
payin_store_register_tables(void)
{
	ledger_add_kind(&payin_invoice_kind);
	ledger_add_table(&payment_table);
}

/* Fill the Datums of a token write; deleted: the token is recorded deleted now */
static void
token_values(const PayinToken *token, bool deleted, Datum *values, char *nulls)
{
	ledger_fill(token_params, TOKEN_NARGS, token, values, nulls);
	values[6] = BoolGetDatum(deleted);
}

/*
 * Record a payment token QIWI bound for a buyer's account (told of by a
 * notification, or a card check's answer); true if it is new here.  A
 * token deleted here stays deleted: a late word of its binding is a
 * duplicate.
 */
bool
payin_store_token(const PayinToken *token, const char *source)
{
	Datum		values[TOKEN_NARGS];
	char		nulls[TOKEN_NARGS + 1];
	OwnerContext ctx;
	bool		inserted;

	token_values(token, false, values, nulls);
	ledger_begin_kind(&ctx, &payin_invoice_kind);
	inserted = run(P_TOKEN_INSERT, values, nulls, SPI_OK_INSERT) > 0;
	if (inserted)
		record_event(token->merchant, "token", token->token, NULL, "CREATED", source);
	ledger_end(&ctx);
	return inserted;
}

/*
 * Record that a merchant's token no longer pays for account: confirmed
 * when QIWI deleted it now (204), else QIWI no longer knew it for that
 * account (404).  A confirmed deletion marks the token whatever account
 * the table has for it, and records a token the table never heard of (QIWI
 * said it existed); an unconfirmed one only marks the token recorded for
 * that account.  True if the table changed.
 */
bool
payin_store_token_deleted(const char *merchant, const char *account, const char *token,
						  bool confirmed)
{
	PayinToken	known = {.merchant = merchant, .account = (char *) account, .token = (char *) token};
	Datum		values[TOKEN_NARGS];
	char		nulls[TOKEN_NARGS + 1];
	Datum		key[2] = {CStringGetTextDatum(merchant), CStringGetTextDatum(token)};
	OwnerContext ctx;
	bool		changed = false;

	token_values(&known, true, values, nulls);
	ledger_begin_kind(&ctx, &payin_invoice_kind);
	/* only a confirmed deletion records a token the table never heard of */
	if (confirmed ? ledger_lock_or_insert(&payin_invoice_kind, P_TOKEN_LOCK, key, NULL,
										  P_TOKEN_INSERT, values, nulls) :
		run(P_TOKEN_LOCK, key, NULL, SPI_OK_SELECT) > 0)
	{
		if (!ledger_row_bool(2) &&
			(confirmed || strcmp(ledger_row_text(&ctx, 1), account) == 0) &&
			run(P_TOKEN_DELETE, key, NULL, SPI_OK_UPDATE) > 0)
		{
			record_event(merchant, "token", token, "CREATED", "DELETED", LEDGER_BY_CALL);
			changed = true;
		}
	}
	else if (confirmed)
	{
		record_event(merchant, "token", token, NULL, "DELETED", LEDGER_BY_CALL);
		changed = true;
	}
	ledger_end(&ctx);
	return changed;
}

/* The statuses of a card check that wait for the buyer (QIWI's card check doc) */
static const char *const card_check_open_statuses[] = {"INIT", "WAITING_3DS", NULL};

/* May a card check recorded as old move to new?  Out of a waiting status, not back to INIT */
static bool
card_check_may_move(const char *old, const char *new)
{
	return qiwi_name_in(old, card_check_open_statuses) && strcmp(old, new) != 0 &&
		strcmp(new, "INIT") != 0;
}

/*
 * Record a card check QIWI made or is making (a CHECK_CARD notification,
 * or GET validation/card/requests), forward only; true if it is new here
 * or moved forward.  The token it bound, if any, is recorded by the caller.
 */
bool
payin_store_card_check(const PayinCardCheck *check, const char *source)
{
	Datum		values[CARD_CHECK_NARGS];
	char		nulls[CARD_CHECK_NARGS + 1];
	OwnerContext ctx;
	bool		changed = false;

	ledger_fill(card_check_params, CARD_CHECK_NARGS, check, values, nulls);
	values[7] = ledger_text_or_null(check->has_token ? check->token.token : NULL, &nulls[7]);
	ledger_begin_kind(&ctx, &payin_invoice_kind);
	if (ledger_lock_or_insert(&payin_invoice_kind, P_CARD_CHECK_LOCK, values, NULL,
							  P_CARD_CHECK_INSERT, values, nulls))
	{
		char	   *old = ledger_row_text(&ctx, 1);

		if (card_check_may_move(old, check->status) &&
			run(P_CARD_CHECK_UPDATE, values, nulls, SPI_OK_UPDATE) > 0)
		{
			record_event(check->merchant, "card_check", check->request_uid, old, check->status,
						 source);
			changed = true;
		}
	}
	else
	{
		record_event(check->merchant, "card_check", check->request_uid, NULL, check->status,
					 source);
		changed = true;
	}
	ledger_end(&ctx);
	return changed;
}
