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

#define QIWI_BILLS_PATH "/partner/bill/v1/bills/"

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
	JsonbContainer *ignored;

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
		!json_timestamp(root, "expirationDateTime", NULL,
						&bill->has_expires_at, &bill->expires_at, problem) ||
		!json_string(root, "payUrl", false, &bill->pay_url, problem) ||
		!json_string(root, "comment", false, &bill->comment, problem) ||
		!json_member_object(root, "customer", false, &ignored, &bill->customer, problem) ||
		!json_member_object(root, "customFields", false, &ignored, &bill->custom_fields, problem))
		return false;

	if (strcmp(bill->status, "WAITING") != 0 && !qiwi_status_is_final(bill->status))
	{
		*problem = psprintf("unknown bill status \"%s\"", bill->status);
		return false;
	}
	return true;
}

/* Reader of a Bill object answer (a QiwiAnswerReader) */
static bool
read_bill(const HttpResponse *resp, void *result, char **problem)
{
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	return jb != NULL && qiwi_parse_bill_object(&jb->root, (QiwiBill *) result, problem);
}

/* Reader of a Refund object answer (a QiwiAnswerReader) */
static bool
read_refund(const HttpResponse *resp, void *result, char **problem)
{
	QiwiRefund *refund = (QiwiRefund *) result;
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	if (jb == NULL ||
		!json_identifier(&jb->root, "refundId", &refund->refund_id, problem) ||
		!qiwi_json_amount(&jb->root, QIWI_MAX_AMOUNT, &refund->amount, &refund->currency, problem) ||
		!json_string(&jb->root, "status", true, &refund->status, problem) ||
		!json_timestamp(&jb->root, "dateTime", "datetime",
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

/* A merchant's secret key, or an error if it has none */
static const char *
require_secret_key(const Merchant *merchant)
{
	const char *key = merchant_value(merchant, bill_option_secret_key);

	if (key == NULL && merchant->server == InvalidOid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("qiwi.secret_key is not set"),
				 errhint("Put the key in a file readable only by the server's user and name it in qiwi.secret_key_file (see \"Holding keys\" in the README).")));
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("merchant \"%s\" has no bill_secret_key", merchant->name),
				 errhint("A superuser gives it with CREATE USER MAPPING FOR PUBLIC SERVER %s OPTIONS (bill_secret_key '...'); a mapping for a single role is not used.",
						 quote_identifier(merchant->name))));
	return key;
}

/* URL of a merchant's bill, or of one of its sub-resources when suffix is given */
static char *
bill_url(const Merchant *merchant, const char *bill_id, const char *suffix)
{
	StringInfoData url;
	const char *base = merchant_value(merchant, bill_option_api_url);
	size_t		base_len;

	if (base == NULL)
		base = QIWI_DEFAULT_API_URL;
	base_len = strlen(base);
	while (base_len > 0 && base[base_len - 1] == '/')
		base_len--;
	initStringInfo(&url);
	appendBinaryStringInfo(&url, base, base_len);
	appendStringInfoString(&url, QIWI_BILLS_PATH);
	appendStringInfoString(&url, http_escape_path_segment(bill_id));
	if (suffix != NULL)
		appendStringInfoString(&url, suffix);
	return url.data;
}

/* URL of one refund of a merchant's bill */
static char *
refund_url(const Merchant *merchant, const char *bill_id, const char *refund_id)
{
	return bill_url(merchant, bill_id, psprintf("/refunds/%s", http_escape_path_segment(refund_id)));
}

/* The JSON body of PUT bills/{billId}; absent optional members are omitted */
static char *
create_bill_body(const QiwiCreateBillArgs *args)
{
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"amount\":{");
	append_json_member(&buf, "currency", args->currency, &first);
	append_json_member(&buf, "value", qiwi_format_amount(args->amount), &first);
	appendStringInfoString(&buf, "},");
	first = true;
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
 * Start an operation for a merchant: its request, with the headers every
 * Bill Payments call carries (JSON, and the merchant's key as a Bearer
 * token), and what it does.
 */
static void
bill_operation(QiwiOperation *op, const Merchant *merchant, HttpMethod method, char *url,
			   char *body, char *context, const char *retry_hint)
{
	const char **headers = palloc(sizeof(char *) * 2);

	memset(op, 0, sizeof(*op));
	headers[0] = "Accept: application/json";
	headers[1] = psprintf("Authorization: Bearer %s", require_secret_key(merchant));
	op->merchant = merchant;
	op->request.method = method;
	op->request.url = url;
	op->request.body = body;
	op->request.content_type = method == HTTP_GET ? NULL : "application/json;charset=UTF-8";
	op->request.headers = headers;
	op->request.nheaders = 2;
	op->context = context;
	op->retry_hint = retry_hint;
	/* GET and PUT with our own ids are idempotent; a reject is made so */
	op->idempotent = true;
}

/* ---------- answers ---------- */

/* Parse the Bill object answered for a merchant's expected_bill_id */
static bool
parse_bill(const HttpResponse *resp, const char *expected_bill_id, const char *merchant,
		   const char *context, QiwiBill *bill, QiwiError *error)
{
	char	   *problem = NULL;

	if (!qiwi_read_answer(read_bill, resp, bill, &problem))
		return qiwi_malformed(error, context, problem);
	if (strcmp(bill->bill_id, expected_bill_id) != 0)
		return qiwi_malformed(error, context,
						 psprintf("the answer is about bill \"%s\"", bill->bill_id));
	bill->merchant = merchant;
	return true;
}

/* Parse a Refund object answered for bill_id / expected_refund_id */
static bool
parse_refund(const HttpResponse *resp, const char *bill_id, const char *merchant,
			 const char *expected_refund_id, const char *context,
			 QiwiRefund *refund, QiwiError *error)
{
	char	   *problem = NULL;

	memset(refund, 0, sizeof(*refund));
	refund->bill_id = pstrdup(bill_id);
	refund->merchant = merchant;
	if (!qiwi_read_answer(read_refund, resp, refund, &problem))
		return qiwi_malformed(error, context, problem);
	if (strcmp(refund->refund_id, expected_refund_id) != 0)
		return qiwi_malformed(error, context,
						 psprintf("the answer is about refund \"%s\"", refund->refund_id));
	return true;
}

/* Reader of a bill answer: the Bill object of the bill asked about */
static bool
read_bill_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	return parse_bill(resp, (const char *) op->args, op->merchant->name, op->context,
					  (QiwiBill *) op->result, error);
}

/* Reader of a create answer: the bill, for the money asked */
static bool
read_created_bill(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const QiwiCreateBillArgs *args = (const QiwiCreateBillArgs *) op->args;
	QiwiBill   *bill = (QiwiBill *) op->result;

	return parse_bill(resp, args->bill_id, op->merchant->name, op->context, bill, error) &&
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

	return parse_refund(resp, asked->bill_id, op->merchant->name, asked->refund_id, op->context,
						refund, error) &&
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
	bill_operation(op, merchant, HTTP_GET, bill_url(merchant, bill_id, NULL), NULL,
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
	bill_operation(op, merchant, HTTP_PUT, bill_url(merchant, args->bill_id, NULL),
				   create_bill_body(args),
				   psprintf("create bill \"%s\"", args->bill_id), QIWI_IDEMPOTENT_RETRY_HINT);
	op->read = check_money ? read_created_bill : read_bill_answer;
	op->args = check_money ? (const void *) args : (const void *) args->bill_id;
	op->result = bill;
}

/* PUT bills/{billId}/refunds/{refundId}: return money of a paid bill */
void
bill_refund_operation(const Merchant *merchant, const char *bill_id, const char *refund_id,
					  Numeric amount, const char *currency, QiwiRefund *refund,
					  QiwiOperation *op)
{
	RefundAsked *asked = palloc(sizeof(RefundAsked));
	StringInfoData body;
	bool		first = true;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"amount\":{");
	append_json_member(&body, "currency", currency, &first);
	append_json_member(&body, "value", qiwi_format_amount(amount), &first);
	appendStringInfoString(&body, "}}");
	bill_operation(op, merchant, HTTP_PUT, refund_url(merchant, bill_id, refund_id), body.data,
				   psprintf("refund \"%s\" of bill \"%s\"", refund_id, bill_id),
				   QIWI_IDEMPOTENT_RETRY_HINT);
	*asked = (RefundAsked) {bill_id, refund_id, amount, currency};
	op->read = read_refund_answer;
	op->args = asked;
	op->result = refund;
}

/* GET bills/{billId}/refunds/{refundId} */
void
bill_get_refund_operation(const Merchant *merchant, const char *bill_id, const char *refund_id,
						  QiwiRefund *refund, QiwiOperation *op)
{
	RefundAsked *asked = palloc(sizeof(RefundAsked));

	bill_operation(op, merchant, HTTP_GET, refund_url(merchant, bill_id, refund_id), NULL,
				   psprintf("get refund \"%s\" of bill \"%s\"", refund_id, bill_id),
				   QIWI_READ_RETRY_HINT);
	*asked = (RefundAsked) {bill_id, refund_id, NULL, NULL};
	op->read = read_refund_answer;
	op->args = asked;
	op->result = refund;
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

	bill_operation(&op, merchant, HTTP_POST, bill_url(merchant, bill_id, "/reject"), NULL,
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
	MerchantOptionDef secret_key = {MERCHANT_SECRET_KEY, "secret_key", MERCHANT_ON_USER_MAPPING, &qiwi_secret_key, "qiwi.secret_key", merchant_check_secret};

	bill_option_api_url = merchant_define_option(&api_url);
	bill_option_site_id = merchant_define_option(&site_id);
	bill_option_public_key = merchant_define_option(&public_key);
	bill_option_secret_key = merchant_define_option(&secret_key);
}
