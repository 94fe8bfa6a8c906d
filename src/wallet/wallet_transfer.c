/*
 * wallet_transfer.c
 *		Transfers from the merchant's wallet (provider 99), never doubled: the
 *		intent ('sending') committed before the POST (intent.c for a call, a
 *		commit step for the worker's queued ones), a lost answer looked for in
 *		the history by the client id (trmTxnId), never sent again; UNSENT only
 *		past a grace (QIWI may list it late).
 */
#include "core/core.h"
#include "wallet/wallet.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#define TRANSFER_MAX_COMMENT	255
#define TRANSFER_MIN_AMOUNT		"1.00"
/* The ask's window around the intent: wide enough for clocks that differ */
#define TRANSFER_ASK_MARGIN		((int64) SECS_PER_DAY * USECS_PER_SEC)

PG_FUNCTION_INFO_V1(qiwi_wallet_transfer);
PG_FUNCTION_INFO_V1(qiwi_wallet_transfer_after_commit);

/* A transfer: what was asked, and what QIWI said of it */
typedef struct WalletTransfer
{
	const Merchant *merchant;
	const char *merchant_name;
	char	   *client_txn_id;
	char	   *to_wallet;		/* digits */
	Numeric		amount;
	char	   *comment;
	TimestampTz created_at;		/* the intent's: the ask's window */
	bool		asking;			/* the operation is the search of the history */
	bool		unsent_if_absent;	/* 'sending', looked for once already past the grace */
	char	   *status;			/* sent, SUCCESS, ERROR; NULL: not found */
	int64		txn_id;
	int32		error_code;
	char	   *error;
	const char *why;			/* the last_error to record, or NULL */
	bool		more;			/* the ask: the history has more pages */
} WalletTransfer;

/* QIWI's least and greatest transfer (docs/sandbox.md: QIWI's defaults) */
static const ArgLimits transfer_limits = {.api_name = "Wallet", .max_amount = "99999.00"};

static const char *const open_statuses[] = {"queued", "sending", "sent", NULL};
static const LedgerTable transfer_table = {"qiwi_wallet_transfers", "status", open_statuses, open_statuses};

enum TransferStatement {T_INSERT, T_ADVANCE};

/* Every statement's parameters, $1 to $11 */
#define NPARAMS 11
#define TEXT_ARG(field) LEDGER_ARG(TEXTOID, LEDGER_V_TEXT, WalletTransfer, field)
static const LedgerParam params[NPARAMS] = {
	TEXT_ARG(merchant_name), TEXT_ARG(client_txn_id), TEXT_ARG(status),
	LEDGER_ARG(INT8OID, LEDGER_V_INT64, WalletTransfer, txn_id),
	LEDGER_ARG(INT4OID, LEDGER_V_INT32, WalletTransfer, error_code),
	TEXT_ARG(error), TEXT_ARG(why), TEXT_ARG(to_wallet),
	LEDGER_ARG(NUMERICOID, LEDGER_V_VARLENA, WalletTransfer, amount), TEXT_ARG(comment),
	LEDGER_ARG(TIMESTAMPTZOID, LEDGER_V_TIMESTAMP, WalletTransfer, created_at)
};

static const LedgerStatement transfer_statements[] = {
	[T_INSERT] = {"INSERT INTO %1$s.qiwi_wallet_transfers (merchant, client_txn_id, status, to_wallet,"
		" amount, comment, created_at) VALUES ($1, $2, $3, $8, $9, $10, $11)", NPARAMS, params, NULL},
	/* forward only, out of an open status to another; it returns the old one */
	[T_ADVANCE] = {"UPDATE %1$s.qiwi_wallet_transfers t SET status = $3, txn_id = coalesce($4, t.txn_id),"
		" error_code = $5, error = $6, last_error = coalesce($7, t.last_error),"
		" sent_at = CASE WHEN $3 IN ('queued', 'sending') THEN t.sent_at ELSE coalesce(t.sent_at, pg_catalog.clock_timestamp()) END,"
		" status_changed_at = pg_catalog.clock_timestamp(), checked_at = pg_catalog.clock_timestamp()"
		" FROM (SELECT status FROM %1$s.qiwi_wallet_transfers WHERE merchant = $1 AND client_txn_id = $2"
		"  FOR UPDATE) o WHERE t.merchant = $1 AND t.client_txn_id = $2 AND o.status IN %2$s"
		" AND o.status <> $3 RETURNING o.status", NPARAMS, params, NULL},
};

/*
 * Transfers as a ledger kind, followed until final; of a merchant's queued
 * ones only the lowest id (QIWI takes ids increasing), sent at once.  The
 * sweep looks for queued ones too: their move to 'sending' may be lost.
 */
static const LedgerKind transfer_kind = {&transfer_table, "client_txn_id",
	{"(t.status IN ('sending', 'sent') OR t.status = 'queued' AND NOT EXISTS (SELECT FROM %1$s.qiwi_wallet_transfers p"
		" WHERE p.merchant = t.merchant AND p.status = 'queued'"
		" AND p.client_txn_id::pg_catalog.numeric < t.client_txn_id::pg_catalog.numeric))",
		true, "t.to_wallet, t.amount, t.comment, t.created_at, t.checked_at", "",
	"WHEN t.status = 'queued' AND NOT u.failed THEN pg_catalog.clock_timestamp()", "NULL::timestamptz"},
	{0}, {"qiwi_wallet_transfer_events", "client_txn_id", NULL, "qiwi_wallet_transfer_status", "client_txn_id", NULL},
transfer_statements, lengthof(transfer_statements), "t.status IN ('queued', 'sending')"};

/* Give a transfer its client id: the one given, checked, or a new one */
static void
take_client_id(WalletTransfer *t)
{
	t->client_txn_id = ledger_increasing_id(&transfer_kind, t->merchant_name, t->client_txn_id, "client_txn_id",
											"QIWI takes a wallet's transfer ids once each, in increasing order. Nothing was sent to QIWI.");
}

/* Move a transfer forward to status, with why (or NULL); true if it moved */
static bool
store_advance(WalletTransfer *t, char *status, const char *why, const char *source)
{
	t->status = status;
	t->why = why;
	return ledger_write_change(&transfer_kind, T_ADVANCE, params, NPARAMS, t, SPI_OK_UPDATE_RETURNING,
							   t->merchant_name, t->client_txn_id, status, source);
}

/* Take a history item if it is this transfer (OUT, under its client id); false then */
static bool
take_item(void *arg, const WalletPayment *p)
{
	WalletTransfer *t = (WalletTransfer *) arg;

	if (strcmp(p->type, "OUT") != 0 || p->trm_txn_id == NULL || strcmp(p->trm_txn_id, t->client_txn_id) != 0)
		return true;
	t->txn_id = p->txn_id;
	t->status = strcmp(p->status, "WAITING") == 0 ? "sent" : p->status;
	t->error_code = p->error_code;
	t->error = p->error;
	return false;
}

/* Look for the transfer on a history page (a WireObjectParser); note whether more follow */
static bool
parse_history(JsonbContainer *root, void *result, char **problem)
{
	WalletTransfer *t = (WalletTransfer *) result;
	JsonbValue *next = json_field(root, "nextTxnId");
	QiwiPage	page;

	if (!qiwi_page_read_array(&page, root, "data", wallet_read_payment, problem))
		return false;
	for (int i = 0; i < page.nitems && t->status == NULL; i++)
		take_item(t, page.items[i]);
	t->more = t->status == NULL && next != NULL && next->type != jbvNull;
	return true;
}

/* Read QIWI's answer to a transfer: Accepted, for the id and money asked (a WireObjectParser) */
static bool
parse_accepted(JsonbContainer *root, void *result, char **problem)
{
	WalletTransfer *t = (WalletTransfer *) result;
	JsonbContainer *txn = json_object_member(root, "transaction");
	JsonbValue *amount = json_field(json_object_member(root, "sum"), "amount");
	char	   *id;
	char	   *txn_id;
	char	   *code;

	if (!json_identifier(root, "id", &id, problem) || !json_identifier(txn, "id", &txn_id, problem) ||
		!json_string(json_object_member(txn, "state"), "code", true, &code, problem))
		return false;
	if (id == NULL || strcmp(id, t->client_txn_id) != 0 || txn_id == NULL || strcmp(code, "Accepted") != 0 ||
		amount == NULL || amount->type != jbvNumeric || !qiwi_same_money(amount->val.numeric, "", t->amount, ""))
	{
		*problem = psprintf("the answer is not transfer %s of %s accepted", t->client_txn_id,
							qiwi_format_amount(t->amount));
		return false;
	}
	t->txn_id = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(txn_id)));
	t->status = "sent";
	return true;
}

/* Read QIWI's answer: the transfer accepted, or found in the history (all pages), else QK404 */
static bool
read_transfer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	WalletTransfer *t = (WalletTransfer *) op->result;

	t->status = NULL;
	t->more = false;
	if (!wire_read_object(op, resp, t->asking ? parse_history : parse_accepted, t, error) ||
		(t->status == NULL && t->more &&
		 !wallet_history_each(t->merchant, t->created_at - TRANSFER_ASK_MARGIN,
							  GetCurrentTimestamp() + TRANSFER_ASK_MARGIN, "OUT", take_item, NULL, t, error)))
		return false;
	if (t->status == NULL)
		*error = (QiwiError) {.sqlstate = ERRCODE_QIWI_NOT_FOUND,
			.message = psprintf("could not %s: the wallet's history has no such transfer", op->context)};
	return t->status != NULL;
}

/* Build a transfer's POST, or (ask) its search in the history around its intent */
static void
transfer_operation(void *arg, bool ask, QiwiOperation *op)
{
	WalletTransfer *t = (WalletTransfer *) arg;
	const char *send_path[3] = {"sinap/api/v2/terms", WALLET_TRANSFER_PROVIDER, "payments"};
	const char *ask_path[3] = {"payment-history/v2/persons", wallet_number(t->merchant), "payments"};
	StringInfoData body;
	char	   *url;

	t->asking = ask;
	if (!ask)
	{
		/* WALD Payment; fields.account a string (§8); the id and the wallet are digits */
		initStringInfo(&body);
		appendStringInfo(&body, "{\"id\":\"%s\",\"sum\":{\"amount\":%s,\"currency\":\"643\"},\"paymentMethod\":"
						 "{\"type\":\"Account\",\"accountId\":\"643\"},\"fields\":{\"account\":\"+%s\"}",
						 t->client_txn_id, qiwi_format_amount(t->amount), t->to_wallet);
		if (t->comment != NULL)
		{
			appendStringInfoString(&body, ",\"comment\":");
			escape_json(&body, t->comment);
		}
		appendStringInfoChar(&body, '}');
		wallet_operation(op, t->merchant, HTTP_POST, wire_url(&wallet_wire, t->merchant, 3, send_path),
						 body.data, psprintf("transfer %s", t->client_txn_id), false);
	}
	else
	{
		url = http_append_query(http_append_query(wire_url(&wallet_wire, t->merchant, 3, ask_path), "rows",
												   CppAsString2(WALLET_MAX_ROWS)), "operation", "OUT");
		url = http_append_query(url, "startDate", format_qiwi_timestamp(t->created_at - TRANSFER_ASK_MARGIN));
		url = http_append_query(url, "endDate", format_qiwi_timestamp(GetCurrentTimestamp() + TRANSFER_ASK_MARGIN));
		wallet_operation(op, t->merchant, HTTP_GET, url, NULL,
						 psprintf("find transfer %s in the wallet's history", t->client_txn_id), true);
	}
	op->read = read_transfer;
	op->result = op->rebuild_arg = t;
	op->rebuild = transfer_operation;
}

/* ---------- the SQL functions ---------- */

/* Check and collect a transfer's arguments (0-4), all before anything is sent */
static void
transfer_arguments(FunctionCallInfo fcinfo, WalletTransfer *t)
{
	char	   *to = arg_required_text(fcinfo, 0, "to_wallet");

	memset(t, 0, sizeof(*t));
	t->to_wallet = to + (to[0] == '+');
	if (!qiwi_all_digits(t->to_wallet, 10, 15))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("to_wallet must be a wallet number: 10 to 15 digits, \"+\" allowed first")));
	t->amount = arg_required_amount(fcinfo, 1, "amount", &transfer_limits);
	if (!qiwi_money_within(qiwi_numeric_constant(TRANSFER_MIN_AMOUNT), "", t->amount, ""))
		ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						errmsg("amount is below QIWI's least transfer of %s", TRANSFER_MIN_AMOUNT)));
	t->comment = arg_optional_limited_text(fcinfo, 2, "comment", TRANSFER_MAX_COMMENT);
	t->client_txn_id = arg_optional_text(fcinfo, 3, "client_txn_id");
	if (t->client_txn_id &&
		(!qiwi_all_digits(t->client_txn_id, 1, WALLET_MAX_CLIENT_ID_DIGITS) || t->client_txn_id[0] == '0'))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("client_txn_id must be 1 to %d digits, not starting with 0", WALLET_MAX_CLIENT_ID_DIGITS)));
	t->merchant = arg_merchant(fcinfo, 4);
	t->merchant_name = t->merchant->name;
	t->created_at = GetCurrentTimestamp();
	if (strcmp(wallet_number(t->merchant), t->to_wallet) == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("to_wallet is the merchant's own wallet")));
}

/* The qiwi_wallet_transfer row of a transfer */
static Datum
transfer_datum(FunctionCallInfo fcinfo, const WalletTransfer *t)
{
	ResultColumn columns[] = {
		result_text(t->client_txn_id), result_text(t->to_wallet), result_datum(NumericGetDatum(t->amount)),
		result_text("RUB"), result_text(t->comment), result_text(t->status),
		{Int64GetDatum(t->txn_id), t->txn_id <= 0}, {Int32GetDatum(t->error_code), t->error_code == 0}, result_text(t->error)
	};

	return qiwi_result_row(fcinfo, "qiwi_wallet_transfer", columns, lengthof(columns));
}

/* The HINTs of QIWI's refusals of a transfer, by code (seed 003's error list) */
static const char *const refusal_hints[][2] = {{"QWPRC-220", "Insufficient funds in the wallet."},
	{"QWPRC-241", "The amount is below the wallet's limit."}, {"QWPRC-242", "The amount is above the wallet's limit."},
	{"QWPRC-408", "QIWI has a transfer under this client_txn_id for another body: a reused id."}};

/* A send QIWI refused made nothing: REFUSED, committed as its intent was (intent_send's refused) */
static void
refuse_transfer(void *arg, const QiwiError *error)
{
	WalletTransfer *t = (WalletTransfer *) arg;

	t->status = "REFUSED";
	t->error = error->detail;
	t->why = error->message;
	intent_commit(&transfer_kind, T_ADVANCE, params, NPARAMS, t, SPI_OK_UPDATE_RETURNING, t->merchant_name,
				  t->client_txn_id, t->status, LEDGER_BY_CALL, psprintf("refuse transfer %s", t->client_txn_id));
}

/*
 * qiwi_wallet_transfer(to_wallet, amount, comment, client_txn_id, merchant):
 * its intent ('sending') committed apart, then sent, QIWI's answer recorded
 * in the caller's transaction
 */
Datum
qiwi_wallet_transfer(PG_FUNCTION_ARGS)
{
	WalletTransfer t;
	QiwiOperation op;

	transfer_arguments(fcinfo, &t);
	ledger_require_writable("transfer money from a wallet", "qiwi_wallet_transfers");
	take_client_id(&t);
	t.status = "sending";
	transfer_operation(&t, false, &op);
	intent_commit(&transfer_kind, T_INSERT, params, NPARAMS, &t, SPI_OK_INSERT, t.merchant_name, t.client_txn_id,
				  t.status, LEDGER_BY_CALL, op.context);
	if (intent_send(&transfer_kind, t.merchant_name, t.client_txn_id, "sending", &op, refusal_hints,
					lengthof(refusal_hints), "It stays 'sending': the worker looks for it in the wallet's history.",
					refuse_transfer, &t))
		store_advance(&t, t.status, NULL, LEDGER_BY_CALL);
	else
		t.status = "sending";
	PG_RETURN_DATUM(transfer_datum(fcinfo, &t));
}

/* qiwi_wallet_transfer_after_commit(...): queue it for the worker, which sends it after commit */
Datum
qiwi_wallet_transfer_after_commit(PG_FUNCTION_ARGS)
{
	WalletTransfer t;

	transfer_arguments(fcinfo, &t);
	ledger_require_writable("queue a transfer from a wallet", "qiwi_wallet_transfers");
	guard_require_reconciler("qiwi_wallet_transfer_after_commit", "the transfer would stay queued, never sent");
	take_client_id(&t);
	t.status = "queued";
	ledger_write_change(&transfer_kind, T_INSERT, params, NPARAMS, &t, SPI_OK_INSERT, t.merchant_name,
						t.client_txn_id, t.status, LEDGER_BY_CALL);
	reconciler_wake_at_commit();
	PG_RETURN_DATUM(transfer_datum(fcinfo, &t));
}

/* ---------- the worker ---------- */

/* Why the worker cannot send or follow a merchant's transfers, or NULL */
static char *
merchant_problem(const Merchant *merchant)
{
	return merchant_value(merchant, wallet_option_number) && merchant_value(merchant, wallet_option_token) ? NULL :
		psprintf("merchant \"%s\" has no wallet_number or wallet_token", merchant->name);
}

/* Move a claimed queued transfer to 'sending' (a ledger_commit_step); true if it moved */
static bool
move_to_sending(void *arg)
{
	return store_advance((WalletTransfer *) arg, "sending", NULL, LEDGER_BY_RECONCILER);
}

/*
 * The operation for due transfer i: a queued one's send, once its move to
 * 'sending' is committed (a worker that dies after the POST leaves it to be
 * looked for, never sent again); else its search in the history
 */
static void
due_transfer_operation(LedgerDue *due, int i, QiwiOperation *op)
{
	WalletTransfer *t = palloc0(sizeof(WalletTransfer));
	bool		isnull;

	due->answers[i] = t;
	t->merchant = due->merchants[i];
	t->merchant_name = due->merchant_names[i];
	t->client_txn_id = (char *) due->ids[i];
	t->to_wallet = ledger_due_text(due, i, 1);
	t->amount = DatumGetNumericCopy(ledger_due_value(due, i, 2, &isnull));
	t->comment = ledger_due_text(due, i, 3);
	t->created_at = DatumGetTimestampTz(ledger_due_value(due, i, 4, &isnull));
	t->unsent_if_absent = ledger_due_past_grace(due, i, t->created_at, 5);
	transfer_operation(t, due->sweeping || strcmp(due->statuses[i], "queued") != 0 ||
					   !ledger_commit_step(move_to_sending, t), op);
}

/*
 * Record QIWI's answer about due transfer i, in a transaction; true if it
 * moved.  A queued one the sweep found is recorded with a WARNING.  A
 * 'sending' one the history has not is UNSENT only at the second look past
 * the grace; a refused send is REFUSED, and so is a "technical error"
 * (QWPRC-300) once QIWI accepted a greater id of the merchant's (ids go
 * increasing); a send that made no connection is queued again.
 */
static bool
record_transfer(LedgerDue *due, int i, QiwiOperation *op, const HttpResponse *resp, bool *failed, bool *key_refused)
{
	WalletTransfer *t = due->answers[i];
	QiwiError	error;
	char	   *greater = NULL;

	if (!t->asking)
		reconciler_wake_at_commit();	/* the merchant's next queued one, in the next round */
	if (qiwi_exchange_answer(op, resp, &error))
	{
		ledger_add_check(due, i, false, NULL);
		if (due->sweeping && strcmp(due->statuses[i], "queued") == 0)
			ereport(WARNING,
					(errmsg("Wallet transfer %s of merchant \"%s\" is queued here but QIWI has it: recorded from the history, not sent again",
							t->client_txn_id, t->merchant_name),
					 errdetail("Its move to 'sending' was lost, as with a promoted asynchronous standby.")));
		return store_advance(t, t->status, NULL, LEDGER_BY_RECONCILER);
	}
	if (t->asking && error.sqlstate == ERRCODE_QIWI_NOT_FOUND && strcmp(due->statuses[i], "sent") != 0)
	{
		/* a queued one the sweep found absent is sent by the next round */
		ledger_add_check(due, i, false, NULL);
		return t->unsent_if_absent && strcmp(due->statuses[i], "sending") == 0 &&
			store_advance(t, "UNSENT", psprintf("%s, %d s after it was recorded", error.message, qiwi_unsent_after_s),
						  LEDGER_BY_RECONCILER);
	}
	if (!t->asking && error.error_code != NULL && strcmp(error.error_code, "QWPRC-300") == 0)
		greater = ledger_id_overtaken(&transfer_kind, t->merchant_name, t->client_txn_id, "('sent', 'SUCCESS', 'ERROR')");
	if (!t->asking && (error.sqlstate == ERRCODE_QIWI_INVALID_REQUEST || greater != NULL))
	{
		t->error = greater ? psprintf("client id %s is not above %s, which QIWI accepted first", t->client_txn_id,
									  greater) : error.detail;
		return store_advance(t, "REFUSED", greater ? t->error : error.message, LEDGER_BY_RECONCILER);
	}
	ledger_add_failure(due, i, &error, failed, key_refused);
	return !t->asking && resp->failure == HTTP_FAIL_CONNECT &&
		store_advance(t, "queued", error.message, LEDGER_BY_RECONCILER);
}

static const ReconcileKind transfer_reconcile_kind = {"Wallet transfers", NULL, 0, &transfer_kind,
merchant_problem, due_transfer_operation, record_transfer};

/* Register transfers with the ledger and the worker (from _PG_init) */
void
wallet_transfer_init(void)
{
	ledger_add_kind(&transfer_kind);
	reconciler_add_kind(&transfer_reconcile_kind);
}
