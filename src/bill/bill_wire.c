/*
 * bill_wire.c
 *		The Bill Payments API on the wire (seed 001): URLs, request bodies,
 *		the objects in its answers, and one operation per API call, which
 *		the SQL functions and the reconciler both hand to the exchange.
 *		Nothing here raises on a bad answer: a reader returns false with a
 *		QiwiError, for the caller to raise or record.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* The limits of the Bill Payments API's arguments (seed 001) */
/* QIWI's Bill Payments takes roubles, and tenge for P2P bills */
static const char *const bill_currencies[] = {"RUB", "KZT", NULL};

const ArgLimits bill_limits = {
	.api_name = "Bill Payments",
	.currencies = bill_currencies,
	.max_id_length = QIWI_MAX_ID_LENGTH,
	.max_field_length = QIWI_MAX_FIELD_LENGTH,
	.max_amount = QIWI_MAX_AMOUNT,
	.max_lifetime_days = QIWI_MAX_LIFETIME_DAYS,
};

/* The options a merchant has for this API (merchant_define_option numbers) */
int			bill_option_api_url;
int			bill_option_site_id;
int			bill_option_public_key;
int			bill_option_secret_key;

/* How Bill Payments calls go: JSON, the merchant's secret key as a Bearer token */
static const WireFormat bill_wire = {
	.api_name = "Bill Payments",
	.url_option = &bill_option_api_url,
	.default_url = QIWI_DEFAULT_API_URL,
	.auth = WIRE_AUTH_BEARER,
	.key_option = &bill_option_secret_key,
	.body = WIRE_BODY_JSON,
};

/* ---------- objects ---------- */

/* Is this one of the final bill statuses of seed 001? */
static bool
qiwi_status_is_final(const char *status)
{
	return strcmp(status, "PAID") == 0 ||
		strcmp(status, "REJECTED") == 0 ||
		strcmp(status, "EXPIRED") == 0;
}

/* Read a Bill object (an API answer, or "bill" of a notification) */
bool
qiwi_parse_bill_object(JsonbContainer *root, QiwiBill *bill, char **problem)
{
	JsonbContainer *status;

	memset(bill, 0, sizeof(*bill));
	if (!json_string(root, "billId", true, &bill->bill_id, problem) ||
		!json_identifier(root, "siteId", &bill->site_id, problem) ||
		!qiwi_json_amount(root, QIWI_MAX_AMOUNT, &bill->amount, &bill->currency, problem) ||
		!json_member_object(root, "status", true, &status, NULL, problem) ||
		!json_string(status, "value", true, &bill->status, problem) ||
		!json_timestamp(status, "changedDateTime", "datetime",
						&bill->has_status_changed_at, &bill->status_changed_at, problem) ||
		!json_timestamp(root, "creationDateTime", NULL,
						&bill->has_created_at, &bill->created_at, problem) ||
		!qiwi_json_invoice_terms(root, &bill->terms, problem))
		return false;

	if (strcmp(bill->status, "WAITING") != 0 && !qiwi_status_is_final(bill->status))
	{
		*problem = psprintf("unknown bill status \"%s\"", bill->status);
		return false;
	}
	return true;
}

/* Parser of a Bill object answer (a WireObjectParser) */
static bool
read_bill(JsonbContainer *root, void *result, char **problem)
{
	return qiwi_parse_bill_object(root, (QiwiBill *) result, problem);
}

/* Parser of a Refund object answer (a WireObjectParser) */
static bool
read_refund(JsonbContainer *root, void *result, char **problem)
{
	QiwiRefund *refund = (QiwiRefund *) result;

	if (!json_identifier(root, "refundId", &refund->refund_id, problem) ||
		!qiwi_json_amount(root, QIWI_MAX_AMOUNT, &refund->amount, &refund->currency, problem) ||
		!json_string(root, "status", true, &refund->status, problem) ||
		!json_timestamp(root, "dateTime", "datetime",
						&refund->has_created_at, &refund->created_at, problem))
		return false;
	if (refund->refund_id == NULL)
	{
		*problem = pstrdup("field \"refundId\" is missing");
		return false;
	}
	if (strcmp(refund->status, "PARTIAL") != 0 && strcmp(refund->status, "FULL") != 0)
	{
		*problem = psprintf("unknown refund status \"%s\"", refund->status);
		return false;
	}
	return true;
}

/* ---------- requests ---------- */

/* URL of a merchant's bill, or of one of its sub-resources (fixed word, id, ...) */
static char *
bill_url(const Merchant *merchant, const char *bill_id, const char *sub, const char *sub_id)
{
	const char *segments[] = {"partner/bill/v1/bills", bill_id, sub, sub_id};

	return wire_url(&bill_wire, merchant, sub == NULL ? 2 : sub_id == NULL ? 3 : 4, segments);
}

/* The JSON body of PUT bills/{billId}; absent optional members are omitted */
static char *
create_bill_body(const QiwiCreateBillArgs *args)
{
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_json_money(&buf, "amount", args->amount, args->currency);
	appendStringInfoChar(&buf, ',');
	append_json_member(&buf, "expirationDateTime",
					   format_qiwi_timestamp(args->expires_at), &first);
	if (args->comment != NULL)
		append_json_member(&buf, "comment", args->comment, &first);
	if (args->phone != NULL || args->email != NULL || args->account != NULL)
	{
		bool		first_customer = true;

		appendStringInfoString(&buf, ",\"customer\":{");
		if (args->phone != NULL)
			append_json_member(&buf, "phone", args->phone, &first_customer);
		if (args->email != NULL)
			append_json_member(&buf, "email", args->email, &first_customer);
		if (args->account != NULL)
			append_json_member(&buf, "account", args->account, &first_customer);
		appendStringInfoChar(&buf, '}');
	}
	if (args->custom_fields != NULL)
	{
		appendStringInfoString(&buf, ",\"customFields\":");
		appendStringInfoString(&buf, JsonbToCString(NULL, &args->custom_fields->root,
													VARSIZE(args->custom_fields)));
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Start a Bill Payments operation for a merchant.  GET and PUT with our own
 * ids are idempotent; a reject is made so (bill_reject).
 */
static void
bill_operation(QiwiOperation *op, const Merchant *merchant, HttpMethod method, char *url,
			   char *body, char *context, const char *retry_hint)
{
	wire_operation(op, &bill_wire, merchant, method, url, body, context, retry_hint, true);
}

/* ---------- answers ---------- */

/* Read the Bill object answered to op for its merchant's expected_bill_id */
static bool
parse_bill(QiwiOperation *op, const HttpResponse *resp, const char *expected_bill_id,
		   QiwiBill *bill, QiwiError *error)
{
	if (!wire_read_object(op, resp, read_bill, bill, error) ||
		!wire_answer_is_about(op, "bill", bill->bill_id, expected_bill_id, error))
		return false;
	bill->merchant = op->merchant->name;
	return true;
}

/* Reader of a bill answer: the Bill object of the bill asked about */
static bool
read_bill_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	return parse_bill(op, resp, (const char *) op->args, (QiwiBill *) op->result, error);
}

/* Reader of a create answer: the bill, for the money asked */
static bool
read_created_bill(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const QiwiCreateBillArgs *args = (const QiwiCreateBillArgs *) op->args;
	QiwiBill   *bill = (QiwiBill *) op->result;

	return parse_bill(op, resp, args->bill_id, bill, error) &&
		qiwi_same_money_as_asked(bill->amount, bill->currency, args->amount, args->currency,
								 op->context, "bill", error);
}

/* What a refund operation checks its answer against */
typedef struct RefundAsked
{
	const char *bill_id;
	const char *refund_id;
	Numeric		amount;			/* NULL when only its status is asked */
	const char *currency;
} RefundAsked;

/* Reader of a refund answer: the refund asked about, for the money asked */
static bool
read_refund_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const RefundAsked *asked = (const RefundAsked *) op->args;
	QiwiRefund *refund = (QiwiRefund *) op->result;

	memset(refund, 0, sizeof(*refund));
	refund->bill_id = pstrdup(asked->bill_id);
	refund->merchant = op->merchant->name;
	return wire_read_object(op, resp, read_refund, refund, error) &&
		wire_answer_is_about(op, "refund", refund->refund_id, asked->refund_id, error) &&
		(asked->amount == NULL ||
		 qiwi_same_money_as_asked(refund->amount, refund->currency, asked->amount, asked->currency,
								  op->context, "refund", error));
}

/* ---------- operations ---------- */

/* GET bills/{billId}: the merchant's bill as QIWI has it, into *bill */
void
bill_get_operation(const Merchant *merchant, const char *bill_id, QiwiBill *bill,
				   QiwiOperation *op)
{
	bill_operation(op, merchant, HTTP_GET, bill_url(merchant, bill_id, NULL, NULL), NULL,
				   psprintf("get the status of bill \"%s\"", bill_id), QIWI_READ_RETRY_HINT);
	op->read = read_bill_answer;
	op->args = bill_id;
	op->result = bill;
}

/*
 * PUT bills/{billId}: create a bill, or get it back if it already exists
 * (a PUT with our billId is idempotent).  With check_money, an existing
 * bill for other money is an error; the reconciler leaves that to the
 * bookkeeping, which records it as MISMATCH.
 */
void
bill_create_operation(const Merchant *merchant, const QiwiCreateBillArgs *args,
					  bool check_money, QiwiBill *bill, QiwiOperation *op)
{
	bill_operation(op, merchant, HTTP_PUT, bill_url(merchant, args->bill_id, NULL, NULL),
				   create_bill_body(args),
				   psprintf("create bill \"%s\"", args->bill_id), QIWI_IDEMPOTENT_RETRY_HINT);
	op->read = check_money ? read_created_bill : read_bill_answer;
	op->args = check_money ? (const void *) args : (const void *) args->bill_id;
	op->result = bill;
}

/*
 * PUT bills/{billId}/refunds/{refundId} (an amount: return money of a paid
 * bill), or GET it (amount NULL)
 */
static void
refund_operation(const Merchant *merchant, const char *bill_id, const char *refund_id,
				 Numeric amount, const char *currency, QiwiRefund *refund, QiwiOperation *op)
{
	RefundAsked *asked = palloc(sizeof(RefundAsked));
	StringInfoData body;

	initStringInfo(&body);
	if (amount != NULL)
	{
		appendStringInfoChar(&body, '{');
		append_json_money(&body, "amount", amount, currency);
		appendStringInfoChar(&body, '}');
	}
	bill_operation(op, merchant, amount ? HTTP_PUT : HTTP_GET,
				   bill_url(merchant, bill_id, "refunds", refund_id), amount ? body.data : NULL,
				   psprintf("%srefund \"%s\" of bill \"%s\"", amount ? "" : "get ", refund_id, bill_id),
				   amount ? QIWI_IDEMPOTENT_RETRY_HINT : QIWI_READ_RETRY_HINT);
	*asked = (RefundAsked) {bill_id, refund_id, amount, currency};
	op->read = read_refund_answer;
	op->args = asked;
	op->result = refund;
}

/* PUT bills/{billId}/refunds/{refundId}: return money of a paid bill */
void
bill_refund_operation(const Merchant *merchant, const char *bill_id, const char *refund_id,
					  Numeric amount, const char *currency, QiwiRefund *refund,
					  QiwiOperation *op)
{
	refund_operation(merchant, bill_id, refund_id, amount, currency, refund, op);
}

/* GET bills/{billId}/refunds/{refundId} */
void
bill_get_refund_operation(const Merchant *merchant, const char *bill_id, const char *refund_id,
						  QiwiRefund *refund, QiwiOperation *op)
{
	refund_operation(merchant, bill_id, refund_id, NULL, NULL, refund, op);
}

/*
 * POST bills/{billId}/reject, made idempotent: it is retried like the
 * idempotent calls, and when QIWI answers that the bill is no longer
 * WAITING (a retry, or libcurl's own resend on a dead kept-alive
 * connection, after the first attempt did it; or an earlier cancel), the
 * bill is asked for, and REJECTED counts as success.
 */
bool
bill_reject(const Merchant *merchant, const char *bill_id, QiwiBill *bill, QiwiError *error)
{
	QiwiOperation op;
	QiwiError	get_error;

	bill_operation(&op, merchant, HTTP_POST, bill_url(merchant, bill_id, "reject", NULL), NULL,
				   psprintf("cancel bill \"%s\"", bill_id),
				   "Check with qiwi_bill_status() whether the bill was cancelled before repeating the call.");
	op.read = read_bill_answer;
	op.args = bill_id;
	op.result = bill;
	if (qiwi_exchange(&op, error))
		return true;
	if (error->sqlstate != ERRCODE_QIWI_INVALID_REQUEST)
		return false;
	bill_get_operation(merchant, bill_id, bill, &op);
	return qiwi_exchange(&op, &get_error) && strcmp(bill->status, "REJECTED") == 0;
}

/* ---------- merchants ---------- */

/* Is this a siteId QIWI could sign (a merchant's bill_site_id)? */
static bool
check_site_id(const char *value, char **why)
{
	/* '|' separates the fields of the signed string: it would make two readings */
	if (value[0] != '\0' && strpbrk(value, "|\r\n\t") == NULL)
		return true;
	*why = pstrdup("bill_site_id must be non-empty, without '|' or control characters.");
	return false;
}

/*
 * The options a merchant has for the Bill Payments API; the default
 * merchant's are the qiwi.* settings (from _PG_init, after they exist).
 */
void
bill_define_merchant_options(void)
{
	MerchantOptionDef api_url = {"bill_api_url", "api_url", MERCHANT_ON_SERVER, &qiwi_api_url, "qiwi.api_url", merchant_check_url};
	MerchantOptionDef site_id = {"bill_site_id", "site_id", MERCHANT_ON_SERVER, &qiwi_site_id, "qiwi.site_id", check_site_id};
	MerchantOptionDef public_key = {"bill_public_key", "public_key", MERCHANT_ON_SERVER, &qiwi_public_key, "qiwi.public_key", merchant_check_key};
	MerchantOptionDef secret_key = {BILL_SECRET_KEY_OPTION, "secret_key", MERCHANT_ON_USER_MAPPING, &qiwi_secret_key, "qiwi.secret_key", merchant_check_secret};

	bill_option_api_url = merchant_define_option(&api_url);
	bill_option_site_id = merchant_define_option(&site_id);
	bill_option_public_key = merchant_define_option(&public_key);
	bill_option_secret_key = merchant_define_option(&secret_key);
}
