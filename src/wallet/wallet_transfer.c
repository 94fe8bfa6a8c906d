/*
 * wallet_transfer.c
 *		Transfers from the merchant's wallet to another (provider 99), never
 *		doubled, and those sent by the worker after the caller commits.
 *
 * Every transfer is a row of qiwi_wallet_transfers, written through the
 * ledger before anything is sent: 'queued' (after commit, not sent),
 * 'sending' (the intent; left so only when the send's outcome is unknown),
 * 'sent' (QIWI answered Accepted), then SUCCESS or ERROR as the history
 * says, or REFUSED (QIWI refused it; nothing moved).  in_doubt marks a row
 * whose send may have reached QIWI unanswered: it is looked for in the
 * history by its client id (trmTxnId) before it is ever sent again.
 *
 * qiwi_wallet_transfer records the intent in the caller's transaction (no
 * transaction can commit before a SQL function returns): a caller that
 * rolls back after QIWI accepted leaves the transfer only in QIWI's history,
 * where qiwi_wallet_payments keeps its OUT item under the client id.  A
 * caller that must never be in that case uses the _after_commit form,
 * whose intent is committed before the worker sends it.
 *
 * Client ids (at most 20 digits, unique, increasing): a generated one is the
 * greater of the clock in microseconds and the merchant's greatest id + 1,
 * under the merchant's transaction lock.  It never goes backwards: the
 * table's ids travel with restores and to a promoted standby, and a row a
 * restore lost held an id no greater than the clock of its time, which the
 * clock has passed since.
 */
#include "core/core.h"
#include "wallet/wallet.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"

#define TRANSFER_TABLES "qiwi_wallet_transfers"
#define TRANSFER_MAX_COMMENT	255
/* The ask's window around the intent: wide enough for clocks that differ */
#define TRANSFER_ASK_MARGIN		((int64) SECS_PER_DAY * USECS_PER_SEC)

PG_FUNCTION_INFO_V1(qiwi_wallet_transfer);
PG_FUNCTION_INFO_V1(qiwi_wallet_transfer_after_commit);

/* A transfer: what was asked, and what QIWI said of it */
typedef struct WalletTransfer
{
	const Merchant *merchant;
	char	   *client_txn_id;
	char	   *to_wallet;		/* digits */
	Numeric		amount;
	char	   *comment;
	TimestampTz created_at;		/* the intent's: the ask's window */
	char	   *status;			/* sent, SUCCESS, ERROR */
	int64		txn_id;
	int32		error_code;
	char	   *error;
	TimestampTz until;			/* the ask: the end of what is left to read */
	bool		more;			/* the ask: the history has more pages */
} WalletTransfer;

static const char *const open_statuses[] = {"queued", "sending", "sent", NULL};
static const LedgerTable transfer_table = {
	.name = "qiwi_wallet_transfers",
	.status_column = "status",
	.open_statuses = open_statuses,
	.reconciled_statuses = open_statuses,
};

enum
{
	T_LOCK_IDS, T_NEXT_ID, T_USED, T_INSERT, T_ADVANCE, T_DOUBT
};

static const LedgerParam text_params[7] = {
	LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID), LEDGER_SET(NUMERICOID),
	LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID), LEDGER_SET(TIMESTAMPTZOID)
};
static const LedgerParam advance_params[7] = {
	LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID), LEDGER_SET(INT8OID),
	LEDGER_SET(INT4OID), LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID)
};
static const LedgerParam doubt_params[4] = {
	LEDGER_SET(TEXTOID), LEDGER_SET(TEXTOID), LEDGER_SET(BOOLOID), LEDGER_SET(TEXTOID)
};

static const LedgerStatement transfer_statements[] = {
	/* one generator of a merchant's ids at a time, to its commit */
	[T_LOCK_IDS] = {"SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('qiwi_wallet_transfers'),"
		" pg_catalog.hashtext($1))", 1, text_params, NULL},
	[T_NEXT_ID] = {"SELECT GREATEST(pg_catalog.floor(EXTRACT(EPOCH FROM pg_catalog.clock_timestamp())"
		" OPERATOR(pg_catalog.*) 1000000), max(client_txn_id::pg_catalog.numeric) OPERATOR(pg_catalog.+) 1)::text"
		" FROM %1$s.qiwi_wallet_transfers WHERE merchant = $1", 1, text_params, NULL},
	[T_USED] = {"SELECT max(client_txn_id::pg_catalog.numeric)::text,"
		" pg_catalog.bool_or(client_txn_id = $2) FROM %1$s.qiwi_wallet_transfers WHERE merchant = $1",
	2, text_params, NULL},
	[T_INSERT] = {"INSERT INTO %1$s.qiwi_wallet_transfers (merchant, client_txn_id, to_wallet, amount,"
		" comment, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, text_params, NULL},
	/* forward only: the caller locked the row and read its open status */
	[T_ADVANCE] = {"UPDATE %1$s.qiwi_wallet_transfers SET status = $3, txn_id = coalesce($4, txn_id),"
		" error_code = $5, error = $6, last_error = coalesce($7, last_error), in_doubt = false,"
		" sent_at = coalesce(sent_at, pg_catalog.clock_timestamp()),"
		" status_changed_at = pg_catalog.clock_timestamp(), checked_at = pg_catalog.clock_timestamp()"
		" WHERE merchant = $1 AND client_txn_id = $2 AND status IN %2$s", 7, advance_params, NULL},
	[T_DOUBT] = {"UPDATE %1$s.qiwi_wallet_transfers SET in_doubt = $3, last_error = $4"
		" WHERE merchant = $1 AND client_txn_id = $2", 4, doubt_params, NULL},
};

/* Transfers as a ledger kind: followed until final; a claim returns what to send or ask */
static const LedgerKind transfer_kind = {
	.table = &transfer_table,
	.id_column = "client_txn_id",
	.followed = {NULL, true, "t.to_wallet, t.amount, t.comment, t.in_doubt, t.txn_id, t.created_at", "",
		"WHEN t.status IN ('queued', 'sending') AND NOT t.in_doubt THEN pg_catalog.clock_timestamp()",
	"NULL::timestamptz"},
	.events = {"qiwi_wallet_transfer_events", "client_txn_id", NULL, "qiwi_wallet_transfer_status",
	"client_txn_id"},
	.statements = transfer_statements,
	.nstatements = lengthof(transfer_statements),
};

/* ---------- the store ---------- */

/*
 * Record a transfer's intent with status (queued or sending); a client id
 * not given is generated.  Refuses a given id that is used or not above
 * the merchant's greatest, before anything is sent.
 */
static void
store_intent(WalletTransfer *t, const char *status)
{
	Datum		values[7];
	char		nulls[8] = "       ";
	OwnerContext ctx;

	values[0] = CStringGetTextDatum(t->merchant->name);
	ledger_begin_kind(&ctx, &transfer_kind);
	ledger_run_plan(&transfer_kind, T_LOCK_IDS, values, NULL, SPI_OK_SELECT);
	if (t->client_txn_id == NULL)
	{
		ledger_run_plan(&transfer_kind, T_NEXT_ID, values, NULL, SPI_OK_SELECT);
		t->client_txn_id = ledger_row_text(&ctx, 1);
	}
	else
	{
		char	   *greatest;

		values[1] = CStringGetTextDatum(t->client_txn_id);
		ledger_run_plan(&transfer_kind, T_USED, values, NULL, SPI_OK_SELECT);
		greatest = ledger_row_text(&ctx, 1);
		if (ledger_row_bool(2))
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("client_txn_id \"%s\" is already in qiwi_wallet_transfers", t->client_txn_id),
					 errdetail("Nothing was sent to QIWI."),
					 errhint("Use a new client_txn_id, or none to have one generated.")));
		/* digits without leading zeros: the longer is the greater */
		if (greatest != NULL && (strlen(t->client_txn_id) < strlen(greatest) ||
								 (strlen(t->client_txn_id) == strlen(greatest) &&
								  strcmp(t->client_txn_id, greatest) < 0)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("client_txn_id must be greater than %s, this merchant's greatest", greatest),
					 errdetail("QIWI takes a wallet's transfer ids only in increasing order. Nothing was sent to QIWI.")));
	}
	values[1] = CStringGetTextDatum(t->client_txn_id);
	values[2] = CStringGetTextDatum(t->to_wallet);
	values[3] = NumericGetDatum(t->amount);
	values[4] = ledger_text_or_null(t->comment, &nulls[4]);
	values[5] = CStringGetTextDatum(status);
	values[6] = TimestampTzGetDatum(t->created_at);
	ledger_run_plan(&transfer_kind, T_INSERT, values, nulls, SPI_OK_INSERT);
	ledger_event(&transfer_kind, t->merchant->name, NULL, t->client_txn_id, NULL, status,
				 LEDGER_BY_CALL);
	ledger_end(&ctx);
}

/* Move a transfer forward to status (sent, SUCCESS, ERROR, REFUSED); false if final already */
static bool
store_advance(const char *merchant, WalletTransfer *t, const char *status, const char *last_error,
			  const char *source)
{
	Datum		values[7];
	char		nulls[8] = "       ";
	OwnerContext ctx;
	char	   *old;
	Numeric		amount;
	char	   *currency;
	bool		moved = false;

	if (!ledger_lock_item(&transfer_kind, merchant, t->client_txn_id, &old, &amount, &currency))
		return false;
	values[0] = CStringGetTextDatum(merchant);
	values[1] = CStringGetTextDatum(t->client_txn_id);
	values[2] = CStringGetTextDatum(status);
	values[3] = Int64GetDatum(t->txn_id);
	nulls[3] = t->txn_id > 0 ? ' ' : 'n';
	values[4] = Int32GetDatum(t->error_code);
	nulls[4] = t->error_code != 0 ? ' ' : 'n';
	values[5] = ledger_text_or_null(t->error, &nulls[5]);
	values[6] = ledger_text_or_null(last_error, &nulls[6]);
	ledger_begin_kind(&ctx, &transfer_kind);
	if (strcmp(old, status) != 0 &&
		ledger_run_plan(&transfer_kind, T_ADVANCE, values, nulls, SPI_OK_UPDATE) > 0)
	{
		ledger_event(&transfer_kind, merchant, NULL, t->client_txn_id, old, status, source);
		moved = true;
	}
	ledger_end(&ctx);
	return moved;
}

/* Mark whether a transfer's send may have reached QIWI unanswered, and why */
static void
store_doubt(const char *merchant, const char *client_txn_id, bool in_doubt, const char *why)
{
	Datum		values[4] = {CStringGetTextDatum(merchant), CStringGetTextDatum(client_txn_id),
	BoolGetDatum(in_doubt), 0};
	char		nulls[5] = "    ";
	OwnerContext ctx;

	values[3] = ledger_text_or_null(why, &nulls[3]);
	ledger_begin_kind(&ctx, &transfer_kind);
	ledger_run_plan(&transfer_kind, T_DOUBT, values, nulls, SPI_OK_UPDATE);
	ledger_end(&ctx);
}

/* ---------- the wire ---------- */

/* A time as the history's parameters take it: Moscow time, +03:00 */
static char *
moscow_time(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(t + (int64) WALLET_MOSCOW_OFFSET_SECS * USECS_PER_SEC, NULL, &tm, &fsec,
					 NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d+03:00", tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Is a history item this transfer (an OUT item under its client id)?  Takes what it says */
static bool
take_item(void *arg, const WalletPayment *p)
{
	WalletTransfer *t = (WalletTransfer *) arg;

	if (strcmp(p->type, "OUT") != 0 || p->trm_txn_id == NULL ||
		strcmp(p->trm_txn_id, t->client_txn_id) != 0)
		return true;
	t->txn_id = p->txn_id;
	t->status = strcmp(p->status, "WAITING") == 0 ? "sent" : p->status;
	t->error_code = p->error_code;
	t->error = p->error;
	return false;
}

/* The ask's first page: the transfer's item, or whether more pages follow (a WireObjectParser) */
static bool
parse_history_page(JsonbContainer *root, void *result, char **problem)
{
	WalletTransfer *t = (WalletTransfer *) result;
	JsonbValue *data = json_field(root, "data");
	JsonbValue *next = json_field(root, "nextTxnId");
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (data == NULL || data->type != jbvBinary || !JsonContainerIsArray(data->val.binary.data))
	{
		*problem = pstrdup("field \"data\" is not an array");
		return false;
	}
	it = JsonbIteratorInit(data->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		WalletPayment p;

		if (tok != WJB_ELEM)
			continue;
		if (!wallet_parse_payment(&v, &p, problem))
			return false;
		if (!take_item(t, &p))
			return true;
		t->until = Min(t->until, p.date);	/* the rest is older */
	}
	t->more = next != NULL && next->type != jbvNull;
	return true;
}

/*
 * Read the ask's answer: the transfer found in the history (on the first
 * page, or on the following ones), or QK404 when the history has it not
 */
static bool
read_ask(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	WalletTransfer *t = (WalletTransfer *) op->result;
	TimestampTz since = t->created_at - TRANSFER_ASK_MARGIN;

	t->status = NULL;
	if (!wire_read_object(op, resp, parse_history_page, t, error))
		return false;
	if (t->status == NULL && t->more &&
		!wallet_history_each(t->merchant, since, t->until, "OUT", take_item, t, error))
		return false;
	if (t->status != NULL)
		return true;
	memset(error, 0, sizeof(*error));
	error->sqlstate = ERRCODE_QIWI_NOT_FOUND;
	error->message = psprintf("could not %s: the wallet's history has no such transfer", op->context);
	return false;
}

/* Read QIWI's answer to a transfer: Accepted, for the id and money asked */
static bool
parse_accepted(JsonbContainer *root, void *result, char **problem)
{
	WalletTransfer *t = (WalletTransfer *) result;
	JsonbContainer *txn = json_object_member(root, "transaction");
	JsonbContainer *state = json_object_member(txn, "state");
	JsonbContainer *sum = json_object_member(root, "sum");
	JsonbValue *amount = json_field(sum, "amount");
	char	   *id;
	char	   *txn_id;
	char	   *code;

	if (!json_identifier(root, "id", &id, problem) || !json_identifier(txn, "id", &txn_id, problem) ||
		!json_string(state, "code", true, &code, problem))
		return false;
	if (id == NULL || strcmp(id, t->client_txn_id) != 0 || txn_id == NULL ||
		strcmp(code, "Accepted") != 0 || amount == NULL || amount->type != jbvNumeric ||
		!qiwi_same_money(amount->val.numeric, "", t->amount, ""))
	{
		*problem = psprintf("the answer is not transfer %s of %s accepted", t->client_txn_id,
							qiwi_format_amount(t->amount));
		return false;
	}
	t->txn_id = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(txn_id)));
	t->status = "sent";
	return true;
}

/* Read the answer to a transfer (a QiwiOperationReader) */
static bool
read_accepted(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	return wire_read_object(op, resp, parse_accepted, op->result, error);
}

/*
 * Build a transfer's POST, or (ask) the search of the wallet's history for
 * its client id, in a window around its intent (a QiwiOperationBuilder)
 */
static void
transfer_operation(void *arg, bool ask, QiwiOperation *op)
{
	WalletTransfer *t = (WalletTransfer *) arg;
	const char *number = wallet_number(t->merchant);

	if (ask)
	{
		const char *path[3] = {"payment-history/v2/persons", number, "payments"};
		char	   *url = wire_url(&wallet_wire, t->merchant, 3, path);

		url = http_append_query(url, "rows", CppAsString2(WALLET_MAX_ROWS));
		url = http_append_query(url, "operation", "OUT");
		url = http_append_query(url, "startDate", moscow_time(t->created_at - TRANSFER_ASK_MARGIN));
		url = http_append_query(url, "endDate", moscow_time(GetCurrentTimestamp() + TRANSFER_ASK_MARGIN));
		t->until = GetCurrentTimestamp() + TRANSFER_ASK_MARGIN;
		wallet_operation(op, t->merchant, HTTP_GET, url, NULL,
						 psprintf("find transfer %s in the wallet's history", t->client_txn_id), true);
		op->read = read_ask;
	}
	else
	{
		const char *path[3] = {"sinap/api/v2/terms", WALLET_TRANSFER_PROVIDER, "payments"};
		StringInfoData body;

		initStringInfo(&body);
		appendStringInfoString(&body, "{\"id\":");
		escape_json(&body, t->client_txn_id);
		appendStringInfo(&body, ",\"sum\":{\"amount\":%s,\"currency\":\"643\"},"
						 "\"paymentMethod\":{\"type\":\"Account\",\"accountId\":\"643\"},",
						 qiwi_format_amount(t->amount));
		if (t->comment != NULL)
		{
			appendStringInfoString(&body, "\"comment\":");
			escape_json(&body, t->comment);
			appendStringInfoChar(&body, ',');
		}
		appendStringInfoString(&body, "\"fields\":{\"account\":");
		escape_json(&body, psprintf("+%s", t->to_wallet));
		appendStringInfoString(&body, "}}");
		wallet_operation(op, t->merchant, HTTP_POST, wire_url(&wallet_wire, t->merchant, 3, path),
						 body.data, psprintf("transfer %s", t->client_txn_id), false);
		op->read = read_accepted;
	}
	op->result = t;
	op->rebuild = transfer_operation;
	op->rebuild_arg = t;
}

/* ---------- the SQL functions ---------- */

/* QIWI's least and greatest transfer (sandbox docs: QIWI's defaults) */
static const ArgLimits transfer_limits = {.api_name = "Wallet", .max_amount = "99999.00"};
#define TRANSFER_MIN_AMOUNT "1.00"

/* A digits-only argument of at most max digits ('+' first allowed if plus), or NULL */
static char *
digits_argument(FunctionCallInfo fcinfo, int argno, const char *argname, bool plus, size_t min,
				size_t max)
{
	char	   *value = arg_optional_text(fcinfo, argno, argname);
	char	   *digits = value && plus && value[0] == '+' ? value + 1 : value;
	size_t		len = digits ? strlen(digits) : 0;

	if (value != NULL &&
		(len < min || len > max || strspn(digits, "0123456789") != len || (!plus && digits[0] == '0')))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 plus ? errmsg("%s must be a wallet number: %zu to %zu digits, \"+\" allowed first",
							   argname, min, max) :
				 errmsg("%s must be 1 to %zu digits, not starting with 0", argname, max)));
	return digits;
}

/* Check and collect a transfer's arguments (0-4), all before anything is sent */
static void
transfer_arguments(FunctionCallInfo fcinfo, WalletTransfer *t)
{
	memset(t, 0, sizeof(*t));
	(void) arg_required_text(fcinfo, 0, "to_wallet");
	t->to_wallet = digits_argument(fcinfo, 0, "to_wallet", true, 10, 15);
	t->amount = arg_required_amount(fcinfo, 1, "amount", &transfer_limits);
	if (!qiwi_money_within(qiwi_numeric_constant(TRANSFER_MIN_AMOUNT), "", t->amount, ""))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount is below QIWI's least transfer of %s", TRANSFER_MIN_AMOUNT)));
	t->comment = arg_optional_limited_text(fcinfo, 2, "comment", TRANSFER_MAX_COMMENT);
	t->client_txn_id = digits_argument(fcinfo, 3, "client_txn_id", false, 1,
									   WALLET_MAX_CLIENT_ID_DIGITS);
	t->merchant = arg_merchant(fcinfo, 4);
	if (strcmp(wallet_number(t->merchant), t->to_wallet) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("to_wallet is the merchant's own wallet")));
	t->created_at = GetCurrentTimestamp();
}

/* The qiwi_wallet_transfer row of a transfer */
static Datum
transfer_datum(FunctionCallInfo fcinfo, const WalletTransfer *t)
{
	ResultColumn columns[] = {
		result_text(t->client_txn_id), result_text(t->to_wallet),
		result_datum(NumericGetDatum(t->amount)), result_text("RUB"), result_text(t->comment),
		result_text(t->status), {Int64GetDatum(t->txn_id), t->txn_id <= 0},
		{Int32GetDatum(t->error_code), t->error_code == 0}, result_text(t->error)
	};

	return qiwi_result_row(fcinfo, "qiwi_wallet_transfer", columns, lengthof(columns));
}

/* What QIWI's refusal of a transfer means, by its code */
static const char *
refusal_hint(const char *code)
{
	if (code == NULL)
		return NULL;
	if (strcmp(code, "QWPRC-220") == 0)
		return "The wallet's balance is below the amount (insufficient funds).";
	if (strcmp(code, "QWPRC-241") == 0 || strcmp(code, "QWPRC-242") == 0)
		return "The amount is outside the wallet's transfer limits.";
	if (strcmp(code, "QWPRC-408") == 0)
		return "QIWI has a transfer under this client_txn_id for other money or to another wallet: a reused id.";
	return NULL;
}

/*
 * qiwi_wallet_transfer(to_wallet, amount, comment, client_txn_id, merchant):
 * the intent recorded, then sent; a lost answer is looked for in the
 * history before it is sent again.  An outcome still unknown leaves the row
 * 'sending', in doubt, for the worker, with a WARNING.
 */
Datum
qiwi_wallet_transfer(PG_FUNCTION_ARGS)
{
	WalletTransfer t;
	QiwiOperation op;
	QiwiError	error;

	transfer_arguments(fcinfo, &t);
	ledger_require_writable("transfer money from a wallet", TRANSFER_TABLES);
	store_intent(&t, "sending");
	transfer_operation(&t, false, &op);
	if (qiwi_exchange(&op, &error))
		store_advance(t.merchant->name, &t, t.status, NULL, LEDGER_BY_CALL);
	else if (error.retry_safe || error.sqlstate == ERRCODE_QIWI_MALFORMED)
	{
		store_doubt(t.merchant->name, t.client_txn_id, true, error.message);
		ereport(WARNING,
				(errcode(error.sqlstate),
				 errmsg("%s", error.message),
				 errdetail("%s Transfer %s stays 'sending' in qiwi_wallet_transfers: the worker looks for it in the wallet's history before it sends it again.",
						   error.detail ? error.detail : "", t.client_txn_id)));
		t.status = "sending";
	}
	else
	{
		if (error.hint == NULL)
			error.hint = (char *) refusal_hint(error.error_code);
		qiwi_raise(&error);
	}
	PG_RETURN_DATUM(transfer_datum(fcinfo, &t));
}

/*
 * qiwi_wallet_transfer_after_commit(to_wallet, amount, comment,
 * client_txn_id, merchant): the transfer queued; the worker sends it once
 * this transaction commits, so a rollback sends nothing
 */
Datum
qiwi_wallet_transfer_after_commit(PG_FUNCTION_ARGS)
{
	WalletTransfer t;

	transfer_arguments(fcinfo, &t);
	ledger_require_writable("queue a transfer from a wallet", TRANSFER_TABLES);
	guard_require_reconciler("qiwi_wallet_transfer_after_commit",
							 "the transfer would stay queued, never sent");
	store_intent(&t, "queued");
	reconciler_wake_at_commit();
	t.status = "queued";
	PG_RETURN_DATUM(transfer_datum(fcinfo, &t));
}

/* ---------- the worker ---------- */

/* Why the worker cannot send or follow a merchant's transfers, or NULL */
static char *
merchant_problem(const Merchant *merchant)
{
	if (merchant_value(merchant, wallet_option_number) == NULL ||
		merchant_value(merchant, wallet_option_token) == NULL)
		return psprintf("merchant \"%s\" has no wallet_number or wallet_token", merchant->name);
	return NULL;
}

/* Read a sent transfer's history item (GET transactions/{txnId}?type=OUT) */
static bool
parse_item(JsonbContainer *root, void *result, char **problem)
{
	JsonbValue	v = {.type = jbvBinary};
	WalletPayment p;

	v.val.binary.data = root;
	if (!wallet_parse_payment(&v, &p, problem))
		return false;
	(void) take_item(result, &p);
	return true;
}

/* Read the answer about a sent transfer (a QiwiOperationReader) */
static bool
read_item(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	WalletTransfer *t = (WalletTransfer *) op->result;

	t->status = NULL;
	if (!wire_read_object(op, resp, parse_item, t, error))
		return false;
	if (t->status != NULL)
		return true;
	return qiwi_malformed(error, op->context, "the item is not this transfer");
}

/*
 * The operation for due transfer i: a sent one's item asked for; one in
 * doubt looked for in the history; a queued one (or one found absent) sent
 */
static void
due_transfer_operation(LedgerDue *due, int i, QiwiOperation *op)
{
	WalletTransfer *t = palloc0(sizeof(WalletTransfer));
	bool		isnull;
	Datum		comment = ledger_due_value(due, i, 3, &isnull);

	due->answers[i] = t;
	t->merchant = due->merchants[i];
	t->client_txn_id = (char *) due->ids[i];
	t->to_wallet = TextDatumGetCString(ledger_due_value(due, i, 1, &isnull));
	t->amount = DatumGetNumericCopy(ledger_due_value(due, i, 2, &isnull));
	t->comment = isnull ? NULL : TextDatumGetCString(comment);
	t->created_at = DatumGetTimestampTz(ledger_due_value(due, i, 6, &isnull));
	if (strcmp(due->statuses[i], "sent") == 0)
	{
		const char *path[2] = {"payment-history/v2/transactions",
		psprintf(INT64_FORMAT, DatumGetInt64(ledger_due_value(due, i, 5, &isnull)))};

		wallet_operation(op, t->merchant, HTTP_GET,
						 http_append_query(wire_url(&wallet_wire, t->merchant, 2, path), "type", "OUT"),
						 NULL, psprintf("check transfer %s", t->client_txn_id), true);
		op->read = read_item;
		op->result = t;
	}
	else
		transfer_operation(t, DatumGetBool(ledger_due_value(due, i, 4, &isnull)), op);
}

/* Record QIWI's answer about due transfer i, in a transaction; true if it moved */
static bool
record_transfer(LedgerDue *due, int i, QiwiOperation *op, const HttpResponse *resp,
				bool *failed, bool *key_refused)
{
	WalletTransfer *t = due->answers[i];
	const char *merchant = due->merchant_names[i];
	QiwiError	error;

	*failed = false;
	if (qiwi_exchange_answer(op, resp, &error))
	{
		ledger_add_check(due, i, false, NULL);
		return store_advance(merchant, t, t->status, NULL, LEDGER_BY_RECONCILER);
	}
	if (op->read == read_ask && error.sqlstate == ERRCODE_QIWI_NOT_FOUND)
	{
		/* QIWI never made it: it is sent at once */
		store_doubt(merchant, t->client_txn_id, false, error.message);
		ledger_add_check(due, i, false, NULL);
		return false;
	}
	if (op->read == read_accepted && error.sqlstate == ERRCODE_QIWI_INVALID_REQUEST)
	{
		t->error = error.detail;
		return store_advance(merchant, t, "REFUSED", error.message, LEDGER_BY_RECONCILER);
	}
	if (op->read == read_accepted && (error.retry_safe || error.sqlstate == ERRCODE_QIWI_MALFORMED))
		store_doubt(merchant, t->client_txn_id, true, error.message);
	ledger_add_failure(due, i, &error, failed, key_refused);
	return false;
}

static const ReconcileKind transfer_reconcile_kind = {
	.what = "Wallet transfers",
	.ledger = &transfer_kind,
	.merchant_problem = merchant_problem,
	.operation = due_transfer_operation,
	.record = record_transfer,
};

/* Register transfers with the ledger and the worker (from _PG_init) */
void
wallet_transfer_init(void)
{
	ledger_add_kind(&transfer_kind);
	reconciler_add_kind(&transfer_reconcile_kind);
}
