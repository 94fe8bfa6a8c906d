/*
 * wallet_wire.c
 *		The Wallet API on the wire: options, Bearer authorization, JSON bodies,
 *		the errors of QIWI's edge and payments service, the rate limit, the
 *		reader of a history item (false with *problem on a bad one, no raise).
 */
#include "core/core.h"
#include "wallet/wallet.h"

#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/numeric.h"

/* The options a merchant has for this API (merchant_define_option numbers) */
int			wallet_option_token;
int			wallet_option_number;
int			wallet_option_api_url;
int			wallet_option_token_issued;

/*
 * QIWI counts 100 history requests a minute per wallet and then blocks it
 * for 5 minutes (§9).  We count every request to the wallet, not only the
 * history's, and leave a margin: 95 in any 61 seconds.  The settings exist
 * so that a test (or a wallet QIWI limits otherwise) can shorten them.
 */
static int	wallet_rate_requests = 95;
static int	wallet_rate_window_ms = 61000;
static QiwiRateLimit wallet_limit = {.name = "Wallet"};

/*
 * The codes of the Wallet API's errors that have a class of their own:
 * the edge's errorCode and the payments service's QWPRC-<n> (seed 003's
 * error list); any other takes its class from the HTTP status.
 */
static const QiwiErrorCode wallet_codes[] = {
	{"auth.forbidden", ERRCODE_QIWI_FORBIDDEN, false},
	{"auth.unauthorized", ERRCODE_QIWI_AUTHENTICATION, false},
	{"QWPRC-4", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"QWPRC-5", ERRCODE_QIWI_NOT_FOUND, false},
	{"QWPRC-57", ERRCODE_QIWI_FORBIDDEN, false},
	{"QWPRC-220", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"QWPRC-241", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"QWPRC-242", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"QWPRC-300", ERRCODE_QIWI_SERVER_ERROR, true},
	{"QWPRC-408", ERRCODE_QIWI_INVALID_REQUEST, false},
	{NULL, 0, false}
};
static const char *const wallet_code_fields[] = {"errorCode", "code", NULL};

/*
 * What a refused Wallet call may mean: a token lives 180 days and QIWI
 * cannot be asked when it ends (401); "Access denied" without a scope
 * named is a wallet number that is not the token's (403, auth.forbidden)
 */
static void
wallet_explain(const QiwiOperation *op, const char *description, QiwiError *error)
{
	const char *issued = merchant_value(op->merchant, wallet_option_token_issued);
	int			year;
	int			month;
	int			day;

	if (error->sqlstate == ERRCODE_QIWI_AUTHENTICATION && issued == NULL)
		error->hint = psprintf("A Wallet token lives %d days: it may have expired (record when a token is issued in the server option wallet_token_issued). %s",
							   WALLET_TOKEN_LIFETIME_DAYS, error->hint);
	else if (error->sqlstate == ERRCODE_QIWI_AUTHENTICATION)
	{
		j2date(DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(issued))) +
			   POSTGRES_EPOCH_JDATE + WALLET_TOKEN_LIFETIME_DAYS, &year, &month, &day);
		error->hint = psprintf("A Wallet token lives %d days: it may have expired (wallet_token_issued %s: it expired on %04d-%02d-%02d). %s",
							   WALLET_TOKEN_LIFETIME_DAYS, issued, year, month, day, error->hint);
	}
	else if (error->sqlstate == ERRCODE_QIWI_FORBIDDEN &&
			 (description == NULL || strstr(description, "scope") == NULL))
	{
		error->message = psprintf("could not %s: QIWI refused access: wallet_number %s may not be the wallet of the token%s%s",
								  op->context, wallet_number(op->merchant), description ? ": " : "",
								  description ? description : "");
		error->hint = psprintf("Check that wallet_number of server %s is the wallet whose wallet_token it holds.",
							   quote_identifier(op->merchant->name));
	}
}
static const char *const wallet_text_fields[] = {"userMessage", "description", "message", NULL};

/* The edge's {serviceName, errorCode, userMessage, dateTime, traceId} and QWPRC's {code, message} */
static const QiwiErrorFormat wallet_errors = {
	.code_fields = wallet_code_fields,
	.text_fields = wallet_text_fields,
	.trace_field = "traceId",
	.codes = wallet_codes,
	.blocked_since_field = "dateTime",
	.block_seconds = WALLET_BLOCK_SECONDS,
	.explain = wallet_explain,
};

/* How Wallet calls go: Bearer token, JSON; the wallet number is in each path */
const WireFormat wallet_wire = {
	.api_name = "Wallet",
	.url_option = &wallet_option_api_url,
	.default_url = WALLET_DEFAULT_API_URL,
	.account_option = &wallet_option_number,	/* in each path, not after a fixed one */
	.auth = WIRE_AUTH_BEARER,
	.key_option = &wallet_option_token,
	.key_name = "wallet_token",
	.body = WIRE_BODY_JSON,
	.errors = &wallet_errors,
};

/* ---------- options and settings ---------- */

/* A wallet number: the wallet's phone number, digits only (79123456789) */
static bool
check_wallet_number(const char *value, char **why)
{
	size_t		len = strlen(value);

	if (len < 10 || len > 15 || strspn(value, "0123456789") != len)
	{
		*why = pstrdup("must be the wallet's number: 10 to 15 digits, without \"+\"");
		return false;
	}
	return true;
}

/* When the token was issued: a date or a timestamp PostgreSQL reads */
static bool
check_token_issued(const char *value, char **why)
{
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			tz;
	struct pg_tm tm;
	fsec_t		fsec;

	if (strlen(value) >= MAXDATELEN ||
		ParseDateTime(value, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf) != 0 ||
		DecodeDateTime(field, ftype, nf, &dtype, &tm, &fsec, &tz) != 0 ||
		dtype != DTK_DATE)
	{
		*why = pstrdup("must be the date the token was issued (YYYY-MM-DD)");
		return false;
	}
	return true;
}

/* Define the Wallet options a merchant's server and user mapping may carry */
void
wallet_define_merchant_options(void)
{
	MerchantOptionDef number = {"wallet_number", NULL, MERCHANT_ON_SERVER, NULL, NULL, check_wallet_number};
	MerchantOptionDef api_url = {"wallet_api_url", NULL, MERCHANT_ON_SERVER, NULL, NULL, merchant_check_url};
	MerchantOptionDef issued = {"wallet_token_issued", NULL, MERCHANT_ON_SERVER, NULL, NULL, check_token_issued};
	MerchantOptionDef token = {"wallet_token", NULL, MERCHANT_ON_USER_MAPPING, NULL, NULL, merchant_check_secret};

	wallet_option_number = merchant_define_option(&number);
	wallet_option_api_url = merchant_define_option(&api_url);
	wallet_option_token_issued = merchant_define_option(&issued);
	wallet_option_token = merchant_define_option(&token);
}

/* Define the settings of the Wallet API's rate limit */
void
wallet_define_settings(void)
{
	DefineCustomIntVariable("qiwi.wallet_rate_requests",
							"Requests to one wallet that may be sent in any window of qiwi.wallet_rate_window.",
							"QIWI blocks a wallet for 5 minutes after 100 history requests a minute.",
							&wallet_rate_requests, 95, 1, QIWI_RATE_MAX_REQUESTS,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qiwi.wallet_rate_window",
							"The window of qiwi.wallet_rate_requests.",
							NULL, &wallet_rate_window_ms, 61000, 1000, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* The rate limit every request to a wallet passes, as the settings give it now */
const QiwiRateLimit *
wallet_rate_limit(void)
{
	wallet_limit.requests = wallet_rate_requests;
	wallet_limit.window_ms = wallet_rate_window_ms;
	return &wallet_limit;
}

/* The merchant's wallet number; an error naming the option when it has none */
const char *
wallet_number(const Merchant *merchant)
{
	return wire_require_option(&wallet_wire, merchant, wallet_option_number);
}

/* Build a Wallet operation: the wire's, counted by the wallet's rate limit */
void
wallet_operation(QiwiOperation *op, const Merchant *merchant, HttpMethod method, char *url,
				 char *body, char *context, bool idempotent)
{
	wire_operation(op, &wallet_wire, merchant, method, url, body, context, NULL, idempotent);
	op->rate_limit = wallet_rate_limit();
	op->rate_account = wallet_number(merchant);
}

/* Send a reading call of a wallet whose answer goes into result as answer says */
void
wallet_read_call(const Merchant *merchant, char *url, char *context, const WireAnswer *answer,
				 void *result)
{
	QiwiOperation op;

	wallet_operation(&op, merchant, HTTP_GET, url, NULL, context, true);
	wire_read_call(&op, answer, result);
}

/* ---------- answers ---------- */

/* An amount {amount, currency} (currency an ISO number, as a number or a string); absent: NULL */
static bool
read_sum(JsonbContainer *item, const char *key, bool required, Numeric *amount,
		 char **currency, char **problem)
{
	JsonbContainer *sum;

	*amount = NULL;
	if (!json_member_object(item, key, required, &sum, NULL, problem))
		return false;
	return sum == NULL || json_coded_money(sum, key, amount, currency, problem);
}

/* The provider's id: an object {id, shortName, ...} in the history, a number in a webhook */
static bool
read_provider(JsonbContainer *item, int32 *provider, char **problem)
{
	JsonbContainer *object = json_object_member(item, "provider");
	int64		id;

	if (!json_integer(object ? object : item, object ? "id" : "provider", &id, problem))
		return false;
	*provider = (int32) id;
	return true;
}

/*
 * Read a history item (PaymentHistoryItem) or a webhook's payment into a
 * new WalletPayment (a QiwiItemReader); false with *problem, which names
 * the txnId when it could be read
 */
bool
wallet_read_payment(JsonbValue *element, void **item_out, char **problem)
{
	WalletPayment *payment = palloc0(sizeof(WalletPayment));
	JsonbContainer *item = element->type == jbvBinary && JsonContainerIsObject(element->val.binary.data) ?
		element->val.binary.data : NULL;
	int64		error_code;
	bool		present = false;

	*item_out = payment;
	*problem = NULL;
	if (item == NULL || !json_integer(item, "txnId", &payment->txn_id, problem) || payment->txn_id <= 0)
	{
		*problem = *problem ? *problem : pstrdup(item ? "field \"txnId\" is missing or not positive" :
												 "a payment is not an object");
		return false;
	}
	if (!json_identifier(item, "trmTxnId", &payment->trm_txn_id, problem) ||
		!json_timestamp(item, "date", NULL, &present, &payment->date, problem) ||
		!json_string(item, "type", true, &payment->type, problem) ||
		!json_string(item, "status", true, &payment->status, problem) ||
		!read_sum(item, "sum", true, &payment->amount, &payment->currency, problem) ||
		!read_sum(item, "commission", false, &payment->commission, NULL, problem) ||
		!read_sum(item, "total", false, &payment->total, NULL, problem) ||
		!read_provider(item, &payment->provider, problem) ||
		!json_identifier(item, "account", &payment->account, problem) ||
		!json_string(item, "comment", false, &payment->comment, problem) ||
		!json_integer(item, "errorCode", &error_code, problem) ||
		!json_string(item, "error", false, &payment->error, problem) || !present)
	{
		*problem = psprintf("txnId " INT64_FORMAT ": %s", payment->txn_id,
							*problem ? *problem : "field \"date\" is missing");
		return false;
	}
	payment->error_code = (int32) error_code;
	payment->item = JsonbValueToJsonb(element);
	return true;
}

/* Start the Wallet API: its options and settings; each part registers its own */
void
wallet_init(void)
{
	wallet_define_merchant_options();
	wallet_define_settings();
	wallet_transfer_init();
	wallet_webhook_init();

	wallet_sync_init();
}
