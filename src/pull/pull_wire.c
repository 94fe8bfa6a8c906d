/*
 * pull_wire.c
 *		The Pull REST API 2.1 on the wire (seed 002, qiwi-api.md §3, §8,
 *		§9): the merchant's options, URLs under /api/v2/prv/{prv_id}, form
 *		bodies, the result codes of its envelope, the readers of its answers
 *		and one operation per API call.  Nothing here raises on a bad
 *		answer: a reader returns false with a QiwiError, for the caller.
 */
#include "core/core.h"
#include "pull/pull.h"

#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/numeric.h"

/* Pull takes the currencies of the shop's contract: the four §3 lists */
static const char *const pull_currencies[] = {"RUB", "EUR", "USD", "KZT", NULL};

/* The limits of the Pull API's arguments */
const ArgLimits pull_limits = {
	.api_name = "Pull",
	.currencies = pull_currencies,
	.max_id_length = PULL_MAX_ID_LENGTH,
	.max_field_length = PULL_MAX_COMMENT_LENGTH,
	.max_amount = PULL_MAX_AMOUNT,
	.max_lifetime_days = PULL_MAX_LIFETIME_DAYS,
};

/* The options a merchant has for this API (merchant_define_option numbers) */
int			pull_option_api_id;
int			pull_option_api_password;
int			pull_option_prv_id;
int			pull_option_api_url;
int			pull_option_notification_password;

/*
 * Every result code of the documents' list (§3) with its class; the
 * temporary ones (13, 152, 300, 316, 319, 1003) are retried like a 5xx.
 * 774 is fatal in the EN list: a blocked wallet is not waited for.
 */
static const QiwiErrorCode pull_codes[] = {
	{"5", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"13", ERRCODE_QIWI_SERVER_ERROR, true},
	{"78", ERRCODE_QIWI_FORBIDDEN, false},
	{"150", ERRCODE_QIWI_AUTHENTICATION, false},
	{"152", ERRCODE_QIWI_FORBIDDEN, true},
	{"155", ERRCODE_QIWI_AUTHENTICATION, false},
	{"210", ERRCODE_QIWI_NOT_FOUND, false},
	{"215", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"241", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"242", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"298", ERRCODE_QIWI_NOT_FOUND, false},
	{"300", ERRCODE_QIWI_SERVER_ERROR, true},
	{"303", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"316", ERRCODE_QIWI_FORBIDDEN, true},
	{"319", ERRCODE_QIWI_FORBIDDEN, true},
	{"339", ERRCODE_QIWI_FORBIDDEN, false},
	{"341", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"700", ERRCODE_QIWI_FORBIDDEN, false},
	{"774", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"934", ERRCODE_QIWI_FORBIDDEN, false},
	{"1001", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"1003", ERRCODE_QIWI_SERVER_ERROR, true},
	{"1018", ERRCODE_QIWI_FORBIDDEN, false},
	{"1019", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"1419", ERRCODE_QIWI_INVALID_REQUEST, false},
	{NULL, 0, false}
};
static const char *const pull_code_fields[] = {"result_code", NULL};
static const char *const pull_text_fields[] = {"description", NULL};

/* Pull's envelope: {"response":{"result_code":N,"description":...}}, on every status */
static const QiwiErrorFormat pull_errors = {
	.envelope = "response",
	.code_fields = pull_code_fields,
	.text_fields = pull_text_fields,
	.success_code = "0",
	.codes = pull_codes,
};

/* How Pull calls go: under the merchant's project, Basic API_ID:API_PASSWORD, form bodies */
static const WireFormat pull_wire = {
	.api_name = "Pull",
	.url_option = &pull_option_api_url,
	.default_url = PULL_DEFAULT_API_URL,
	.account_path = "api/v2/prv",
	.account_option = &pull_option_prv_id,
	.auth = WIRE_AUTH_BASIC,
	.user_option = &pull_option_api_id,
	.key_option = &pull_option_api_password,
	.key_name = "pull_api_password",
	.body = WIRE_BODY_FORM,
	.errors = &pull_errors,
};

/* ---------- answers ---------- */

/* Read a required amount written as "10.00" */
static bool
read_amount(JsonbContainer *object, const char *key, bool required, Numeric *out,
			char **problem)
{
	char	   *text;

	*out = NULL;
	if (!json_string(object, key, required, &text, problem))
		return false;
	if (text == NULL)
		return true;
	/* numeric_in's error is a data exception: the guarded reader makes it *problem */
	*out = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(text),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	if (!qiwi_amount_has_cents_only(*out) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(*out),
										  NumericGetDatum(qiwi_numeric_constant("0")))) < 0)
	{
		*problem = psprintf("field \"%s\" is not an amount: \"%s\"", key, text);
		return false;
	}
	return true;
}

/* The object member of the answer's envelope, or false with *problem */
static bool
envelope_member(JsonbContainer *root, const char *key, JsonbContainer **member, char **problem)
{
	JsonbContainer *response = json_object_member(root, "response");

	if (response == NULL)
	{
		*problem = pstrdup("the answer has no \"response\" object");
		return false;
	}
	return json_member_object(response, key, true, member, NULL, problem);
}

/* Parser of a bill answer (a WireObjectParser) */
static bool
read_bill(JsonbContainer *root, void *result, char **problem)
{
	PullBill   *bill = (PullBill *) result;
	JsonbContainer *b;
	static const char *const statuses[] = {"waiting", "paid", "rejected", "unpaid", "expired", NULL};

	memset(bill, 0, sizeof(*bill));
	if (!envelope_member(root, "bill", &b, problem) ||
		!json_identifier(b, "bill_id", &bill->bill_id, problem) ||
		!read_amount(b, "amount", true, &bill->amount, problem) ||
		!json_string(b, "ccy", true, &bill->currency, problem) ||
		!json_string(b, "status", true, &bill->status, problem) ||
		!json_string(b, "user", false, &bill->user, problem) ||
		!json_string(b, "comment", false, &bill->comment, problem) ||
		!read_amount(b, "originAmount", false, &bill->origin_amount, problem) ||
		!json_string(b, "originCcy", false, &bill->origin_currency, problem) ||
		!json_identifier(b, "error", &bill->error, problem))
		return false;
	if (bill->bill_id == NULL)
	{
		*problem = pstrdup("field \"bill_id\" is missing");
		return false;
	}
	if (!qiwi_name_in(bill->status, statuses))
	{
		*problem = psprintf("unknown bill status \"%s\"", bill->status);
		return false;
	}
	return true;
}

/* Parser of a refund answer (a WireObjectParser) */
static bool
read_refund(JsonbContainer *root, void *result, char **problem)
{
	PullRefund *refund = (PullRefund *) result;
	JsonbContainer *r;
	static const char *const statuses[] = {"processing", "success", "fail", NULL};

	if (!envelope_member(root, "refund", &r, problem) ||
		!json_identifier(r, "refund_id", &refund->refund_id, problem) ||
		!read_amount(r, "amount", true, &refund->amount, problem) ||
		!json_string(r, "status", true, &refund->status, problem) ||
		!json_identifier(r, "error", &refund->error, problem))
		return false;
	if (refund->refund_id == NULL)
	{
		*problem = pstrdup("field \"refund_id\" is missing");
		return false;
	}
	if (!qiwi_name_in(refund->status, statuses))
	{
		*problem = psprintf("unknown refund status \"%s\"", refund->status);
		return false;
	}
	return true;
}

/* What an operation checks its answer against */
typedef struct PullAsked
{
	const char *bill_id;
	const char *refund_id;		/* a refund's, or NULL */
	Numeric		amount;			/* what a create or refund asked for, or NULL */
	const char *currency;		/* a create's, or NULL */
} PullAsked;

/* Reader of a bill answer: the bill asked about, for the money asked */
static bool
read_bill_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const PullAsked *asked = (const PullAsked *) op->args;
	PullBill   *bill = (PullBill *) op->result;

	if (!wire_read_object(op, resp, read_bill, bill, error) ||
		!wire_answer_is_about(op, "bill", bill->bill_id, asked->bill_id, error))
		return false;
	bill->merchant = op->merchant->name;
	return asked->amount == NULL ||
		qiwi_same_money_as_asked(bill->amount, bill->currency, asked->amount, asked->currency,
								 op->context, "bill", error);
}

/* Reader of a refund answer: the refund asked about, for the amount asked */
static bool
read_refund_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const PullAsked *asked = (const PullAsked *) op->args;
	PullRefund *refund = (PullRefund *) op->result;
	char	   *currency = refund->currency;

	memset(refund, 0, sizeof(*refund));
	if (!wire_read_object(op, resp, read_refund, refund, error) ||
		!wire_answer_is_about(op, "refund", refund->refund_id, asked->refund_id, error))
		return false;
	refund->merchant = op->merchant->name;
	refund->bill_id = pstrdup(asked->bill_id);
	refund->currency = currency;
	return asked->amount == NULL ||
		qiwi_same_money_as_asked(refund->amount, "", asked->amount, "", op->context, "refund",
								 error);
}

/* ---------- requests ---------- */

/* URL of a merchant's bill, or of one of its refunds */
static char *
pull_url(const Merchant *merchant, const char *bill_id, const char *refund_id)
{
	const char *segments[] = {"bills", bill_id, "refund", refund_id};

	return wire_url(&pull_wire, merchant, refund_id == NULL ? 2 : 4, segments);
}

/* A lifetime as the documents write it: YYYY-MM-DDThh:mm:ss in Moscow time */
static char *
moscow_time(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(ts + (int64) PULL_MOSCOW_OFFSET_SECS * USECS_PER_SEC, NULL, &tm, &fsec,
					 NULL, NULL) != 0)
		elog(ERROR, "lifetime out of range");
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The form body of PUT bills/{bill_id} */
static char *
create_bill_body(const PullCreateArgs *args)
{
	StringInfoData form;

	initStringInfo(&form);
	http_append_form_field(&form, "user", psprintf("tel:+%s", args->phone));
	http_append_form_field(&form, "amount", qiwi_format_amount(args->amount));
	http_append_form_field(&form, "ccy", args->currency);
	http_append_form_field(&form, "comment", args->comment);
	http_append_form_field(&form, "lifetime", moscow_time(args->lifetime));
	if (args->pay_source != NULL)
		http_append_form_field(&form, "pay_source", args->pay_source);
	if (args->prv_name != NULL)
		http_append_form_field(&form, "prv_name", args->prv_name);
	return form.data;
}

/*
 * Start a Pull operation for a merchant.  Every Pull call is idempotent:
 * the same project, bill id and amount give the same result (§3), and a
 * PATCH to rejected leaves a rejected bill as it is.
 */
static void
pull_operation(QiwiOperation *op, const Merchant *merchant, HttpMethod method, char *url,
			   char *body, char *context, const char *retry_hint, PullAsked *asked)
{
	wire_operation(op, &pull_wire, merchant, method, url, body, context, retry_hint, true);
	op->args = asked;
}

/* ---------- operations ---------- */

/* PUT bills/{bill_id}: create a bill, or get it back when it exists for the same amount */
void
pull_create_operation(const Merchant *merchant, const PullCreateArgs *args, PullBill *bill,
					  QiwiOperation *op)
{
	PullAsked  *asked = palloc0(sizeof(PullAsked));

	*asked = (PullAsked) {args->bill_id, NULL, args->amount, args->currency};
	pull_operation(op, merchant, HTTP_PUT, pull_url(merchant, args->bill_id, NULL),
				   create_bill_body(args), psprintf("create Pull bill \"%s\"", args->bill_id),
				   QIWI_IDEMPOTENT_RETRY_HINT, asked);
	op->read = read_bill_answer;
	op->result = bill;
}

/* GET bills/{bill_id}, or (cancel) PATCH it with status=rejected */
void
pull_bill_operation(const Merchant *merchant, const char *bill_id, bool cancel, PullBill *bill,
					QiwiOperation *op)
{
	PullAsked  *asked = palloc0(sizeof(PullAsked));

	asked->bill_id = bill_id;
	pull_operation(op, merchant, cancel ? HTTP_PATCH : HTTP_GET, pull_url(merchant, bill_id, NULL),
				   cancel ? pstrdup("status=rejected") : NULL,
				   psprintf(cancel ? "cancel Pull bill \"%s\"" : "get the status of Pull bill \"%s\"",
							bill_id),
				   cancel ? QIWI_IDEMPOTENT_RETRY_HINT : QIWI_READ_RETRY_HINT, asked);
	op->read = read_bill_answer;
	op->result = bill;
}

/*
 * PUT bills/{bill_id}/refund/{refund_id} with an amount, or GET it (amount
 * NULL); refund->currency, if set, is kept for the row
 */
void
pull_refund_operation(const Merchant *merchant, const char *bill_id, const char *refund_id,
					  Numeric amount, PullRefund *refund, QiwiOperation *op)
{
	PullAsked  *asked = palloc0(sizeof(PullAsked));
	StringInfoData form;

	initStringInfo(&form);
	if (amount != NULL)
		http_append_form_field(&form, "amount", qiwi_format_amount(amount));
	*asked = (PullAsked) {bill_id, refund_id, amount, NULL};
	pull_operation(op, merchant, amount ? HTTP_PUT : HTTP_GET,
				   pull_url(merchant, bill_id, refund_id), amount ? form.data : NULL,
				   psprintf("%srefund \"%s\" of Pull bill \"%s\"", amount ? "" : "get ", refund_id,
							bill_id),
				   amount ? QIWI_IDEMPOTENT_RETRY_HINT : QIWI_READ_RETRY_HINT, asked);
	op->read = read_refund_answer;
	op->result = refund;
}

/*
 * The payment form's URL for a merchant's bill (§3, "Redirect to
 * checkout"): shop is the project id; the parameters escaped by libcurl
 */
char *
pull_form_url(const Merchant *merchant, const char *bill_id, const char *success_url,
			  const char *fail_url, const char *pay_source)
{
	char	   *url = http_append_query(PULL_FORM_URL, "shop",
										wire_require_option(&pull_wire, merchant, pull_option_prv_id));

	url = http_append_query(url, "transaction", bill_id);
	if (success_url != NULL)
		url = http_append_query(url, "successUrl", success_url);
	if (fail_url != NULL)
		url = http_append_query(url, "failUrl", fail_url);
	if (pay_source != NULL)
		url = http_append_query(url, "pay_source", pay_source);
	return url;
}

/* ---------- merchants ---------- */

/* Is this a project id (prv_id): the numeric Shop ID? */
static bool
check_prv_id(const char *value, char **why)
{
	size_t		len = strlen(value);

	if (len > 0 && len <= 20 && strspn(value, "0123456789") == len)
		return true;
	*why = pstrdup("pull_prv_id must be the project's numeric id: 1 to 20 digits.");
	return false;
}

/* Is this an API_ID: a Basic login, so no ':' and no control characters? */
static bool
check_api_id(const char *value, char **why)
{
	if (value[0] != '\0' && strlen(value) <= 64 && strpbrk(value, ":\r\n\t") == NULL)
		return true;
	*why = pstrdup("pull_api_id must be 1 to 64 characters, without ':' or control characters.");
	return false;
}

/* The options a merchant has for the Pull API; the default merchant has none */
void
pull_define_merchant_options(void)
{
	MerchantOptionDef prv_id = {"pull_prv_id", NULL, MERCHANT_ON_SERVER, NULL, NULL, check_prv_id};
	MerchantOptionDef api_id = {"pull_api_id", NULL, MERCHANT_ON_SERVER, NULL, NULL, check_api_id};
	MerchantOptionDef api_url = {"pull_api_url", NULL, MERCHANT_ON_SERVER, NULL, NULL, merchant_check_url};
	MerchantOptionDef api_password = {"pull_api_password", NULL, MERCHANT_ON_USER_MAPPING, NULL, NULL, merchant_check_secret};
	MerchantOptionDef notification_password = {"pull_notification_password", NULL, MERCHANT_ON_USER_MAPPING, NULL, NULL, merchant_check_secret};

	pull_option_prv_id = merchant_define_option(&prv_id);
	pull_option_api_id = merchant_define_option(&api_id);
	pull_option_api_url = merchant_define_option(&api_url);
	pull_option_api_password = merchant_define_option(&api_password);
	pull_option_notification_password = merchant_define_option(&notification_password);
}
