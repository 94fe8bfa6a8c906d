/*
 * payin_intent.c
 *		Payin captures and refunds, which QIWI does not promise to make
 *		once when repeated: each is recorded as its intent ('sending') with
 *		a commit of its own before its PUT (core/intent.c), and QIWI's
 *		answer recorded over it.  An intent whose outcome is not known (its
 *		answer lost, its caller rolled back, a crash, a promotion) stays
 *		'sending': its amount counts against the payment's refunds, a new
 *		call with its id asks QIWI for it before anything is sent, and the
 *		reconciler (its sweep at its start, then its rounds) asks QIWI for it
 *		by its id, never sending it.  One QIWI still does not have at a
 *		second look past the core's grace (qiwi.unsent_after,
 *		from the intent's commit) is UNSENT: QIWI never got it, it counts no
 *		more.  A new call with its id sends a 'sending' or UNSENT one again
 *		(QIWI not having it), its intent committed again first, which starts
 *		the grace afresh.  An intent QIWI refused is withdrawn.
 *
 * A capture or refund recorded from QIWI is final: a repeat only confirms
 * it.  QIWI's answer is recorded over an UNSENT one too: QIWI's word wins.  A refund also writes its payment's row: what the payment refunded
 * grows to the refunds recorded (reversals too, as QIWI counts them).
 */
#include "core/core.h"
#include "payin/payin.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/timestamp.h"

static const char *const sending_statuses[] = {"sending", NULL};
static const LedgerTable capture_table = {"qiwi_payin_captures", "status", sending_statuses, sending_statuses};
static const LedgerTable refund_table = {"qiwi_payin_refunds", "status", sending_statuses, sending_statuses};

/* The statements of each kind, in this order */
enum
{
	M_UPSERT, M_INTENT, M_RESEND, M_WITHDRAW, M_PAYMENT_MONEY, M_UNSENT
};

/* A capture or refund write: $1..$11 from the answer (or the intent) */
#define OPERATION_NARGS 11
static const LedgerParam operation_params[OPERATION_NARGS] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinOperationResult, merchant),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinOperationResult, payment_id),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinOperationResult, id),
	LEDGER_ARG(NUMERICOID, LEDGER_V_VARLENA, PayinOperationResult, amount),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinOperationResult, currency),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinOperationResult, status),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinOperationResult, comment),
	LEDGER_ARG(BOOLOID, LEDGER_V_BOOL, PayinOperationResult, reversal),
	LEDGER_ARG(TEXTARRAYOID, LEDGER_V_VARLENA, PayinOperationResult, flags),
	LEDGER_TIME_ARG(PayinOperationResult, created_at),
	LEDGER_TIME_ARG(PayinOperationResult, status_changed_at),
};

/* An intent's row ('sending', or UNSENT), which an answer fills */
#define INTENT(t) t ".status IN ('sending', 'UNSENT')"

/* A column an answer fills over an intent, and leaves as recorded otherwise */
#define ANSWERED(t, column) " " column " = CASE WHEN " INTENT(t) " THEN excluded." column " ELSE " t "." column " END,"

/*
 * An intent given up as never made (UNSENT), if its row is still as the
 * reconciler claimed it: its key, why, its intent's time and the last look
 */
typedef struct PayinUnsent
{
	const char *merchant;
	const char *payment_id;
	const char *id;
	char	   *why;
	TimestampTz intent_at;
	TimestampTz checked_at;
} PayinUnsent;

#define UNSENT_NARGS 6
static const LedgerParam unsent_params[UNSENT_NARGS] = {
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinUnsent, merchant),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinUnsent, payment_id),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinUnsent, id),
	LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, PayinUnsent, why),
	LEDGER_ARG(TIMESTAMPTZOID, LEDGER_V_TIMESTAMP, PayinUnsent, intent_at),
	LEDGER_ARG(TIMESTAMPTZOID, LEDGER_V_TIMESTAMP, PayinUnsent, checked_at),
};

/*
 * The statements about an intent of table (its id column id) that are the
 * same for both kinds, in enum order from M_RESEND (set: more of a new
 * intent's SET, after the status).  A new intent ('sending', again) is
 * timed by status_changed_at, and looked at afresh (the calls of one id
 * take turns: ledger_lock_id).  UNSENT only from the row as
 * the reconciler claimed it: a call that sent it again committed a new
 * intent first.
 */
#define INTENT_STATEMENTS(table, id, set) \
	[M_RESEND] = {"UPDATE %1$s." table " t SET status = 'sending'" set ", status_changed_at = clock_timestamp(),"	\
		" checked_at = NULL, check_count = 0, failures = 0, last_error = NULL, next_check_at = clock_timestamp(),"	\
		" scheduled_at = clock_timestamp() FROM (SELECT status FROM %1$s." table " WHERE merchant = $1"			\
		" AND payment_id = $2 AND " id " = $3 FOR UPDATE) o WHERE t.merchant = $1 AND t.payment_id = $2"			\
		" AND t." id " = $3 AND " INTENT("o") " RETURNING o.status", OPERATION_NARGS, operation_params, NULL},	\
	[M_WITHDRAW] = {"DELETE FROM %1$s." table " WHERE merchant = $1 AND payment_id = $2 AND " id " = $3"			\
		" AND status = 'sending' RETURNING status", OPERATION_NARGS, operation_params, NULL},						\
	[M_PAYMENT_MONEY] = {PAYMENT_MONEY, OPERATION_NARGS, operation_params, NULL},									\
	[M_UNSENT] = {"UPDATE %1$s." table " SET status = 'UNSENT', status_changed_at = clock_timestamp(),"			\
		" checked_at = clock_timestamp(), last_error = $4 WHERE merchant = $1 AND payment_id = $2 AND " id " = $3"	\
		" AND status = 'sending' AND coalesce(status_changed_at, first_seen_at) = $5 AND checked_at = $6"			\
		" RETURNING 'sending'::text", UNSENT_NARGS, unsent_params, NULL}

/* What the payment's row says of its money, locked (a write that counts money waits for it) */
#define PAYMENT_MONEY "SELECT amount, currency FROM %1$s.qiwi_payin_payments WHERE merchant = $1 AND payment_id = $2" \
	" FOR UPDATE"

/*
 * An answer over the row: a new one, or an intent's, recorded; a final
 * one only confirmed.  It returns whether the status changed, the status,
 * and the old one (was reads the row as the statement began).
 */
static const LedgerStatement capture_statements[] = {
	[M_UPSERT] = {"WITH was AS (SELECT status FROM %1$s.qiwi_payin_captures WHERE merchant = $1 AND payment_id = $2"
		"  AND capture_id = $3),"
		" c AS (INSERT INTO %1$s.qiwi_payin_captures AS c (merchant, payment_id, capture_id,"
		"  amount, currency, status, comment, created_at, status_changed_at, checked_at)"
		"  VALUES ($1, $2, $3, $4, $5, $6, $7, $10, $11, clock_timestamp())"
		"  ON CONFLICT (merchant, payment_id, capture_id) DO UPDATE SET checked_at = clock_timestamp(),"
		ANSWERED("c", "amount") ANSWERED("c", "currency") ANSWERED("c", "created_at") ANSWERED("c", "status_changed_at")
		"  comment = coalesce(c.comment, excluded.comment), last_error = NULL,"
		"  status = CASE WHEN " INTENT("c") " THEN excluded.status ELSE c.status END"
		"  RETURNING status, amount),"
		" p AS (UPDATE %1$s.qiwi_payin_payments p SET captured_amount = greatest(p.captured_amount, c.amount)"
		"  FROM c WHERE p.merchant = $1 AND p.payment_id = $2 AND c.status = 'COMPLETED' RETURNING 1)"
		" SELECT was.status IS DISTINCT FROM c.status, c.status, was.status FROM c LEFT JOIN was ON true",
	OPERATION_NARGS, operation_params, NULL},
	[M_INTENT] = {"INSERT INTO %1$s.qiwi_payin_captures (merchant, payment_id, capture_id, status, comment,"
		" status_changed_at) VALUES ($1, $2, $3, 'sending', $7, clock_timestamp()) ON CONFLICT DO NOTHING",
	OPERATION_NARGS, operation_params, NULL},
	INTENT_STATEMENTS("qiwi_payin_captures", "capture_id", ", comment = $7"),
};

/*
 * As for captures.  A refund waiting for its payment's row lock then sees
 * the write: with a fresh snapshot it counts this refund, in REPEATABLE
 * READ or SERIALIZABLE it fails with a serialization failure.
 */
static const LedgerStatement refund_statements[] = {
	[M_UPSERT] = {"WITH was AS (SELECT status FROM %1$s.qiwi_payin_refunds WHERE merchant = $1 AND payment_id = $2"
		"  AND refund_id = $3),"
		" r AS (INSERT INTO %1$s.qiwi_payin_refunds AS r (merchant, payment_id, refund_id, amount,"
		"  currency, status, comment, reversal, flags, created_at, status_changed_at, checked_at)"
		"  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, clock_timestamp())"
		"  ON CONFLICT (merchant, payment_id, refund_id) DO UPDATE SET checked_at = clock_timestamp(),"
		ANSWERED("r", "amount") ANSWERED("r", "currency") ANSWERED("r", "comment") ANSWERED("r", "reversal")
		ANSWERED("r", "flags") ANSWERED("r", "created_at") ANSWERED("r", "status_changed_at")
		"  last_error = NULL, status = CASE WHEN " INTENT("r") " THEN excluded.status ELSE r.status END"
		"  RETURNING status, amount),"
		" p AS (UPDATE %1$s.qiwi_payin_payments p SET refunded_amount = greatest(p.refunded_amount,"
		"   coalesce((SELECT sum(o.amount) FROM %1$s.qiwi_payin_refunds o WHERE o.merchant = $1"
		"    AND o.payment_id = $2 AND o.refund_id <> $3 AND o.status = 'COMPLETED'), 0)"
		"   + CASE WHEN r.status = 'COMPLETED' THEN r.amount ELSE 0 END)"
		"  FROM r WHERE p.merchant = $1 AND p.payment_id = $2 RETURNING 1)"
		" SELECT was.status IS DISTINCT FROM r.status, r.status, was.status FROM r LEFT JOIN was ON true",
	OPERATION_NARGS, operation_params, NULL},
	/* not a reversal until QIWI says so; it does not write the payment's row, which its caller holds */
	[M_INTENT] = {"INSERT INTO %1$s.qiwi_payin_refunds (merchant, payment_id, refund_id, amount, currency, status,"
		" reversal, status_changed_at) VALUES ($1, $2, $3, $4, $5, 'sending', false, clock_timestamp())"
		" ON CONFLICT DO NOTHING", OPERATION_NARGS, operation_params, NULL},
	INTENT_STATEMENTS("qiwi_payin_refunds", "refund_id", ""),
};

/*
 * Captures and refunds as ledger kinds, keyed by payment_id/id: followed
 * while 'sending' (a claim returns the payment, the id, what was asked,
 * then the intent's time and the last look: INTENT_AT), each swept at the
 * reconciler's start.  Their events go to qiwi_payin_events, as the other
 * Payin objects'.
 */
#define INTENT_AT "coalesce(t.status_changed_at, t.first_seen_at), t.checked_at"

const LedgerKind payin_capture_kind = {
	.table = &capture_table,
	.id_column = "capture_key",
	.followed = {NULL, true, "t.payment_id, t.capture_id, t.comment, " INTENT_AT, "", "WHEN false THEN NULL",
	"NULL::timestamptz"},
	.events = {"qiwi_payin_events", "object_id", "object", "qiwi_payin_status", "id", "capture"},
	.statements = capture_statements,
	.nstatements = lengthof(capture_statements),
	.unknown_outcome = "t.status = 'sending'",
};

const LedgerKind payin_refund_kind = {
	.table = &refund_table,
	.id_column = "refund_key",
	.followed = {NULL, true, "t.payment_id, t.refund_id, t.amount, t.currency, " INTENT_AT, "",
	"WHEN false THEN NULL", "NULL::timestamptz"},
	.events = {"qiwi_payin_events", "object_id", "object", "qiwi_payin_status", "id", "refund"},
	.statements = refund_statements,
	.nstatements = lengthof(refund_statements),
	.unknown_outcome = "t.status = 'sending'",
};

/* The kind of a capture or a refund */
static const LedgerKind *
kind_of(bool refund)
{
	return refund ? &payin_refund_kind : &payin_capture_kind;
}

/* A capture's or refund's key in its table (the kinds' id column) */
char *
payin_operation_key(const char *payment_id, const char *id)
{
	return psprintf("%s/%s", payment_id, id);
}

/*
 * Record a capture or refund QIWI answered, over its intent if any; an
 * event when its status changed here
 */
static void
store_operation(const PayinOperationResult *operation, bool refund, const char *source)
{
	const LedgerKind *kind = kind_of(refund);
	const char *what = kind->events.object;
	Datum		values[OPERATION_NARGS];
	char		nulls[OPERATION_NARGS + 1];
	OwnerContext ctx;

	ledger_fill(operation_params, OPERATION_NARGS, operation, values, nulls);
	ledger_begin_kind(&ctx, kind);
	/* other money than the payment's would be counted as captured or returned */
	if (ledger_run_plan(kind, M_PAYMENT_MONEY, values, nulls, SPI_OK_SELECT) > 0)
	{
		Numeric		amount = ledger_row_numeric(&ctx, 1);
		char	   *currency = ledger_row_text(&ctx, 2);

		if (!qiwi_money_within(operation->amount, operation->currency, amount, currency))
			ereport(ERROR,
					(errcode(ERRCODE_QIWI_MALFORMED),
					 errmsg("QIWI reports %s \"%s\" of Payin payment \"%s\" for %s %s, but the payment is for %s %s",
							what, operation->id, operation->payment_id,
							qiwi_format_amount(operation->amount), operation->currency,
							qiwi_format_amount(amount), currency),
					 errdetail("A capture or refund of more than its payment, or in another currency, is not recorded.")));
	}
	ledger_run_plan(kind, M_UPSERT, values, nulls, SPI_OK_SELECT);
	if (ledger_row_bool(1))
		ledger_event(kind, operation->merchant, what, operation->id, ledger_row_text(&ctx, 3),
					 operation->status, source);
	ledger_end(&ctx);
}

/* Record a capture; its payment's captured amount grows */
void
payin_store_capture(const PayinOperationResult *capture, const char *source)
{
	store_operation(capture, false, source);
}

/* Record a refund or reversal; its payment's refunded amount grows */
void
payin_store_refund(const PayinOperationResult *refund, const char *source)
{
	store_operation(refund, true, source);
}

/*
 * Commit the intent of a capture or refund (merchant, payment, id, and a
 * refund's money; status 'sending') before it is sent, durably, apart from
 * the caller's transaction (intent_commit); again: over its row, 'sending'
 * or UNSENT, QIWI not having it (the grace starts afresh); what: for
 * messages.  False if a row of that id was recorded meanwhile (again: if
 * it is no longer 'sending' or UNSENT).
 */
bool
payin_store_intent(const PayinOperationResult *intent, bool refund, bool again, const char *what)
{
	return intent_commit(kind_of(refund), again ? M_RESEND : M_INTENT, operation_params, OPERATION_NARGS, intent,
						 again ? SPI_OK_UPDATE_RETURNING : SPI_OK_INSERT, intent->merchant, intent->id, "sending",
						 LEDGER_BY_CALL, what);
}

/* Withdraw the intent of a capture or refund QIWI refused (nothing moved), committed as it was */
void
payin_store_withdraw(const PayinOperationResult *intent, bool refund, const char *what)
{
	intent_commit(kind_of(refund), M_WITHDRAW, operation_params, OPERATION_NARGS, intent, SPI_OK_DELETE_RETURNING,
				  intent->merchant, intent->id, "REFUSED", LEDGER_BY_CALL, what);
}

/* ---------- the reconciler ---------- */

/* The GET of due capture i, by its id (the sweep's and the rounds' alike: never its PUT) */
static void
due_capture_operation(LedgerDue *due, int i, QiwiOperation *op)
{
	due->answers[i] = palloc0(sizeof(PayinOperationResult));
	payin_capture_operation(due->merchants[i], ledger_due_text(due, i, 1), ledger_due_text(due, i, 2),
							ledger_due_text(due, i, 3), false, due->answers[i], op);
}

/* The GET of due refund i, by its id, for the money it asked */
static void
due_refund_operation(LedgerDue *due, int i, QiwiOperation *op)
{
	bool		isnull;

	due->answers[i] = palloc0(sizeof(PayinOperationResult));
	payin_refund_operation(due->merchants[i], ledger_due_text(due, i, 1), ledger_due_text(due, i, 2),
						   DatumGetNumericCopy(ledger_due_value(due, i, 3, &isnull)), ledger_due_text(due, i, 4),
						   false, due->answers[i], op);
}

/*
 * Give up due capture or refund i (what: "capture", "refund"), which QIWI
 * does not have, as never made: UNSENT if this look is the second past the
 * grace since its intent (ledger_due_past_grace; the due columns after
 * what it asked: INTENT_AT), and its row is still as claimed; true if so
 */
static bool
give_up(LedgerDue *due, int i, const char *what)
{
	bool		refund = due->kind == &payin_refund_kind;
	int			intent_at = refund ? 5 : 4;
	PayinUnsent unsent;
	bool		isnull;

	unsent.intent_at = DatumGetTimestampTz(ledger_due_value(due, i, intent_at, &isnull));
	if (!ledger_due_past_grace(due, i, unsent.intent_at, intent_at + 1))
		return false;
	unsent.checked_at = DatumGetTimestampTz(ledger_due_value(due, i, intent_at + 1, &isnull));
	unsent.merchant = due->merchant_names[i];
	unsent.payment_id = ledger_due_text(due, i, 1);
	unsent.id = ledger_due_text(due, i, 2);
	unsent.why = psprintf("QIWI does not have this %s (payin.resource.not.found) at two looks %d s or more after its intent was committed: it never got it, nothing moved; calling qiwi_payin_%s again with its id sends it",
						  what, qiwi_unsent_after_s, what);
	return ledger_write_change(due->kind, M_UNSENT, unsent_params, UNSENT_NARGS, &unsent, SPI_OK_UPDATE_RETURNING,
							   unsent.merchant, unsent.id, "UNSENT", LEDGER_BY_RECONCILER);
}

/*
 * Record QIWI's answer about due capture or refund i, in a transaction;
 * true if it changed.  One QIWI does not have (its documented 404
 * payin.resource.not.found) stays 'sending' (its caller may not have sent
 * it yet, or never did), with last_error saying so, until the second such
 * look past the grace makes it UNSENT.  Any other failure (another 404, a
 * 5xx, no answer, a malformed one) is a failed check: it is no look.
 */
static bool
record_operation(LedgerDue *due, int i, QiwiOperation *op, const HttpResponse *resp, bool *failed,
				 bool *key_refused)
{
	bool		refund = due->kind == &payin_refund_kind;
	const char *what = refund ? "refund" : "capture";
	QiwiError	error;

	*failed = false;
	if (!qiwi_exchange_answer(op, resp, &error))
	{
		if (!payin_not_found(&error))
		{
			ledger_add_failure(due, i, &error, failed, key_refused);
			return false;
		}
		ledger_add_check(due, i, false,
						 psprintf("QIWI does not have this %s: it stays 'sending', UNSENT at a second such look %d s after its intent; calling qiwi_payin_%s again with its id sends it, asking first",
								  what, qiwi_unsent_after_s, what));
		return give_up(due, i, what);
	}
	store_operation(due->answers[i], refund, LEDGER_BY_RECONCILER);
	ledger_add_check(due, i, false, NULL);
	return true;
}

static const ReconcileKind capture_reconcile_kind = {
	.what = "Payin captures",
	.ledger = &payin_capture_kind,
	.merchant_problem = payin_merchant_problem,
	.operation = due_capture_operation,
	.record = record_operation,
};

static const ReconcileKind refund_reconcile_kind = {
	.what = "Payin refunds",
	.ledger = &payin_refund_kind,
	.merchant_problem = payin_merchant_problem,
	.operation = due_refund_operation,
	.record = record_operation,
};

/* Register captures and refunds with the ledger and the reconciler (from _PG_init) */
void
payin_intent_init(void)
{
	ledger_add_kind(&payin_capture_kind);
	ledger_add_kind(&payin_refund_kind);
	reconciler_add_kind(&capture_reconcile_kind);
	reconciler_add_kind(&refund_reconcile_kind);
}
