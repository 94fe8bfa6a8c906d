/*
 * payin_wire.c
 *		The Payin API v1 on the wire (seed 004, qiwi-api.md §2 and §8): URLs
 *		under /partner/payin/v1/sites/{siteId}, request bodies, the readers
 *		of its answers (their objects: payin_parse.c), one operation per API
 *		call, and the options a merchant has for it.  Nothing here raises on a bad answer: a reader
 *		returns false with a QiwiError, for the caller to raise.
 */
#include "core/core.h"
#include "payin/payin.h"

#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* The limits of the Payin API's arguments */
const ArgLimits payin_limits = {
	.api_name = "Payin",
	.max_id_length = PAYIN_MAX_ID_LENGTH,
	.max_field_length = PAYIN_MAX_FIELD_LENGTH,
	.max_amount = PAYIN_MAX_AMOUNT,
	.max_lifetime_days = PAYIN_MAX_LIFETIME_DAYS,
};

/* The options a merchant has for this API (merchant_define_option numbers) */
int			payin_option_site_id;
int			payin_option_api_url;
int			payin_option_capture_hours;
int			payin_option_api_key;
int			payin_option_notification_key;

/* How Payin calls go: under the merchant's site, JSON, its API key as a Bearer token */
static const WireFormat payin_wire = {
	.api_name = "Payin",
	.url_option = &payin_option_api_url,
	.default_url = PAYIN_DEFAULT_API_URL,
	.account_path = "partner/payin/v1/sites",
	.account_option = &payin_option_site_id,
	.auth = WIRE_AUTH_BEARER,
	.key_option = &payin_option_api_key,
	.key_name = "payin_api_key",
	.body = WIRE_BODY_JSON,
};

/* The default merchant's Payin settings */
char	   *qiwi_payin_site_id = NULL;
char	   *qiwi_payin_api_url = NULL;

/* ---------- requests ---------- */

/* URL of a merchant's Payin resource: its site's, then the segments (word, id, ...) */
static char *
payin_url(const Merchant *merchant, int nsegments, const char *const *segments)
{
	return wire_url(&payin_wire, merchant, nsegments, segments);
}

/*
 * Start a Payin operation for a merchant; a capture or refund is sent again
 * only after asking (payin_sql.c)
 */
static void
payin_operation(QiwiOperation *op, const Merchant *merchant, HttpMethod method, char *url,
				char *body, char *context, const char *retry_hint, bool idempotent)
{
	wire_operation(op, &payin_wire, merchant, method, url, body, context, retry_hint, idempotent);
}

/* The JSON body of PUT bills/{billId}; absent optional members are omitted */
static char *
create_invoice_body(const PayinCreateArgs *args)
{
	StringInfoData buf;
	bool		first = true;
	bool		first_flag = true;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	/* QIWI's card check doc: "Do not specify invoice amount" */
	if (!args->check_card)
	{
		append_json_money(&buf, "amount", args->amount, args->currency);
		appendStringInfoChar(&buf, ',');
	}
	append_json_member(&buf, "expirationDateTime", format_qiwi_timestamp(args->expires_at), &first);
	if (args->comment != NULL)
		append_json_member(&buf, "comment", args->comment, &first);
	if (args->phone != NULL || args->email != NULL || args->account != NULL)
	{
		bool		first_customer = true;

		appendStringInfoString(&buf, ",\"customer\":{");
		if (args->account != NULL)
			append_json_member(&buf, "account", args->account, &first_customer);
		if (args->email != NULL)
			append_json_member(&buf, "email", args->email, &first_customer);
		if (args->phone != NULL)
			append_json_member(&buf, "phone", args->phone, &first_customer);
		appendStringInfoChar(&buf, '}');
	}
	if (args->custom_fields != NULL || args->callback_url != NULL)
	{
		Jsonb	   *fields = args->custom_fields;

		appendStringInfoString(&buf, ",\"customFields\":");
		if (args->callback_url != NULL)
		{
			/* callback_url is the invoice's invoice_callback_url custom field */
			JsonbParseState *state = NULL;
			JsonbValue	k = {.type = jbvString};
			JsonbValue	v = {.type = jbvString};
			JsonbValue *merged;

			k.val.string.val = "invoice_callback_url";
			k.val.string.len = strlen(k.val.string.val);
			v.val.string.val = (char *) args->callback_url;
			v.val.string.len = strlen(args->callback_url);
			pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
			if (fields != NULL)
			{
				JsonbIterator *it = JsonbIteratorInit(&fields->root);
				JsonbValue	e;
				JsonbIteratorToken tok;

				while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
					if (tok == WJB_KEY || tok == WJB_VALUE)
						pushJsonbValue(&state, tok, &e);
			}
			pushJsonbValue(&state, WJB_KEY, &k);
			pushJsonbValue(&state, WJB_VALUE, &v);
			merged = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
			fields = JsonbValueToJsonb(merged);
		}
		appendStringInfoString(&buf, JsonbToCString(NULL, &fields->root, VARSIZE(fields)));
	}
	if (args->payment_methods != NIL)
	{
		appendStringInfoString(&buf, ",\"billPaymentMethodsType\":[");
		foreach(lc, args->payment_methods)
		{
			if (lc != list_head(args->payment_methods))
				appendStringInfoChar(&buf, ',');
			escape_json(&buf, (const char *) lfirst(lc));
		}
		appendStringInfoChar(&buf, ']');
	}
	appendStringInfoString(&buf, ",\"flags\":[");
	if (args->sale || args->check_card)
	{
		escape_json(&buf, args->check_card ? "CHECK_CARD" : "SALE");
		first_flag = false;
	}
	if (args->bind_token)
	{
		if (!first_flag)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, "BIND_PAYMENT_TOKEN");
	}
	appendStringInfoString(&buf, "]}");
	return buf.data;
}

/* ---------- answers ---------- */

/* What an invoice operation checks its answer against */
typedef struct InvoiceAsked
{
	const char *bill_id;
	const PayinCreateArgs *create;	/* NULL when only read */
} InvoiceAsked;

/* Parser of an Invoice object answer (a WireObjectParser) */
static bool
read_invoice(JsonbContainer *root, void *result, char **problem)
{
	return payin_parse_invoice(root, (PayinInvoice *) result, problem);
}

/* Reader of an invoice answer: the invoice asked about (and for the money asked) */
static bool
read_invoice_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const InvoiceAsked *asked = (const InvoiceAsked *) op->args;
	PayinInvoice *invoice = (PayinInvoice *) op->result;
	ListCell   *lc;

	if (!wire_read_object(op, resp, read_invoice, invoice, error) ||
		!wire_answer_is_about(op, "invoice", invoice->bill_id, asked->bill_id, error))
		return false;
	invoice->merchant = op->merchant->name;
	if (invoice->site_id == NULL)
		invoice->site_id = pstrdup(merchant_value(op->merchant, payin_option_site_id));
	foreach(lc, invoice->payments)
	{
		PayinPayment *payment = (PayinPayment *) lfirst(lc);

		/* a payment listed under another invoice would be recorded for that one */
		if (payment->bill_id != NULL && strcmp(payment->bill_id, invoice->bill_id) != 0)
			return qiwi_malformed(error, op->context,
								  psprintf("payment \"%s\" of the answer is of invoice \"%s\"",
										   payment->payment_id, payment->bill_id));
		payment->merchant = op->merchant->name;
	}
	return asked->create == NULL ||
		qiwi_same_money_as_asked(invoice->amount, invoice->currency, asked->create->amount,
								 asked->create->currency, op->context, "invoice", error);
}

/* Parser of a Payment object answer (a WireObjectParser) */
static bool
read_payment(JsonbContainer *root, void *result, char **problem)
{
	return payin_parse_payment(root, false, (PayinPayment *) result, problem);
}

/* Reader of a payment answer: the payment asked about */
static bool
read_payment_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	PayinPayment *payment = (PayinPayment *) op->result;

	if (!wire_read_object(op, resp, read_payment, payment, error) ||
		!wire_answer_is_about(op, "payment", payment->payment_id, (const char *) op->args, error))
		return false;
	payment->merchant = op->merchant->name;
	return true;
}

/* What a capture or refund operation checks its answer against */
typedef struct OperationAsked
{
	WireObjectParser parse;		/* read_capture or read_refund */
	const char *what;			/* capture or refund */
	const char *id;
	Numeric		amount;			/* NULL: any (a capture takes what is held) */
	const char *currency;
} OperationAsked;

/* Parser of a Capture object answer (a WireObjectParser) */
static bool
read_capture(JsonbContainer *root, void *result, char **problem)
{
	return payin_parse_operation_result(root, false, "captureId", (PayinOperationResult *) result,
										problem);
}

/* Parser of a Refund object answer (a WireObjectParser) */
static bool
read_refund(JsonbContainer *root, void *result, char **problem)
{
	return payin_parse_operation_result(root, false, "refundId", (PayinOperationResult *) result,
										problem);
}

/* Reader of a capture or refund answer: the one asked about, for the money asked */
static bool
read_operation_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const OperationAsked *asked = (const OperationAsked *) op->args;
	PayinOperationResult *result = (PayinOperationResult *) op->result;
	char	   *payment_id = result->payment_id;

	memset(result, 0, sizeof(*result));
	if (!wire_read_object(op, resp, asked->parse, result, error))
		return false;
	result->payment_id = payment_id;
	result->merchant = op->merchant->name;
	return wire_answer_is_about(op, asked->what, result->id, asked->id, error) &&
		(asked->amount == NULL ||
		 qiwi_same_money_as_asked(result->amount, result->currency, asked->amount,
								  asked->currency, op->context, asked->what, error));
}

/* Reader of the refunds of a payment */
static bool
read_refunds_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	List	  **refunds = (List **) op->result;
	ListCell   *lc;

	if (!wire_read_list(op, resp, read_refund, sizeof(PayinOperationResult), refunds, error))
		return false;
	foreach(lc, *refunds)
	{
		PayinOperationResult *refund = (PayinOperationResult *) lfirst(lc);

		refund->merchant = op->merchant->name;
		refund->payment_id = (char *) op->args;
	}
	return true;
}

/* ---------- operations ---------- */

/*
 * PUT bills/{billId}: create an invoice, or get it back if it exists (a PUT
 * with the shop's billId is idempotent); other money is an error.
 */
void
payin_create_operation(const Merchant *merchant, const PayinCreateArgs *args,
					   PayinInvoice *invoice, QiwiOperation *op)
{
	const char *segments[] = {"bills", args->bill_id};
	InvoiceAsked *asked = palloc(sizeof(InvoiceAsked));

	payin_operation(op, merchant, HTTP_PUT, payin_url(merchant, 2, segments),
					create_invoice_body(args),
					psprintf("create Payin invoice \"%s\"", args->bill_id),
					QIWI_IDEMPOTENT_RETRY_HINT, true);
	*asked = (InvoiceAsked) {args->bill_id, args};
	op->read = read_invoice_answer;
	op->args = asked;
	op->result = invoice;
}

/* GET bills/{billId}/details: the invoice with its payments */
void
payin_details_operation(const Merchant *merchant, const char *bill_id, PayinInvoice *invoice,
						QiwiOperation *op)
{
	const char *segments[] = {"bills", bill_id, "details"};
	InvoiceAsked *asked = palloc(sizeof(InvoiceAsked));

	payin_operation(op, merchant, HTTP_GET, payin_url(merchant, 3, segments), NULL,
					psprintf("get Payin invoice \"%s\"", bill_id), QIWI_READ_RETRY_HINT, true);
	*asked = (InvoiceAsked) {bill_id, NULL};
	op->read = read_invoice_answer;
	op->args = asked;
	op->result = invoice;
}

/* GET payments/{paymentId} */
void
payin_payment_operation(const Merchant *merchant, const char *payment_id,
						PayinPayment *payment, QiwiOperation *op)
{
	const char *segments[] = {"payments", payment_id};

	payin_operation(op, merchant, HTTP_GET, payin_url(merchant, 2, segments), NULL,
					psprintf("get Payin payment \"%s\"", payment_id), QIWI_READ_RETRY_HINT, true);
	op->read = read_payment_answer;
	op->args = payment_id;
	op->result = payment;
}

/*
 * PUT (send) or GET payments/{paymentId}/captures|refunds/{id}: a capture
 * or refund asked about.  The PUT is never resent by the exchange: the
 * caller asks for it first (payin_sql.c), since a repeat that QIWI did not
 * take as the same one would be refused, or worse.
 */
static void
payment_operation(const Merchant *merchant, const char *payment_id, OperationAsked *asked,
				  char *body, PayinOperationResult *result, QiwiOperation *op)
{
	const char *segments[] = {"payments", payment_id, psprintf("%ss", asked->what), asked->id};
	bool		send = body != NULL;

	payin_operation(op, merchant, send ? HTTP_PUT : HTTP_GET, payin_url(merchant, 4, segments), body,
					psprintf("%s%s \"%s\" of Payin payment \"%s\"", send ? "" : "get ",
							 asked->what, asked->id, payment_id),
					send ? psprintf("QIWI may have made the %s. Its intent stays recorded: the reconciler asks QIWI for it by its id (as qiwi_payin_%s_status does), and a new call with the same id asks before it sends.",
									asked->what, asked->what) : QIWI_READ_RETRY_HINT, !send);
	result->payment_id = (char *) payment_id;
	op->read = read_operation_answer;
	op->args = asked;
	op->result = result;
}

/* PUT (send) or GET payments/{paymentId}/captures/{captureId} */
void
payin_capture_operation(const Merchant *merchant, const char *payment_id,
						const char *capture_id, const char *comment, bool send,
						PayinOperationResult *capture, QiwiOperation *op)
{
	OperationAsked *asked = palloc(sizeof(OperationAsked));
	StringInfoData body;
	bool		first = true;

	initStringInfo(&body);
	appendStringInfoChar(&body, '{');
	if (comment != NULL)
		append_json_member(&body, "comment", comment, &first);
	appendStringInfoChar(&body, '}');
	*asked = (OperationAsked) {read_capture, "capture", capture_id, NULL, NULL};
	payment_operation(merchant, payment_id, asked, send ? body.data : NULL, capture, op);
}

/* PUT (send) or GET payments/{paymentId}/refunds/{refundId} */
void
payin_refund_operation(const Merchant *merchant, const char *payment_id, const char *refund_id,
					   Numeric amount, const char *currency, bool send,
					   PayinOperationResult *refund, QiwiOperation *op)
{
	OperationAsked *asked = palloc(sizeof(OperationAsked));
	StringInfoData body;

	initStringInfo(&body);
	if (send)
	{
		appendStringInfoChar(&body, '{');
		append_json_money(&body, "amount", amount, currency);
		appendStringInfoChar(&body, '}');
	}
	*asked = (OperationAsked) {read_refund, "refund", refund_id, amount, currency};
	payment_operation(merchant, payment_id, asked, send ? body.data : NULL, refund, op);
}

/* GET payments/{paymentId}/refunds: every refund of a payment */
void
payin_refunds_operation(const Merchant *merchant, const char *payment_id, List **refunds,
						QiwiOperation *op)
{
	const char *segments[] = {"payments", payment_id, "refunds"};

	payin_operation(op, merchant, HTTP_GET, payin_url(merchant, 3, segments), NULL,
					psprintf("get the refunds of Payin payment \"%s\"", payment_id),
					QIWI_READ_RETRY_HINT, true);
	op->read = read_refunds_answer;
	op->args = payment_id;
	op->result = refunds;
}

/* Reader of the answer to DELETE tokens: 204, no body (any 2xx is taken as done) */
static bool
read_deleted_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	*(bool *) op->result = true;
	return true;
}

/*
 * DELETE tokens, body {customerAccountId, token}: the token no longer pays
 * for the buyer.  A DELETE is idempotent, so the exchange sends it again
 * after a failure; a repeat that reached QIWI after an earlier attempt
 * deleted the token is answered 404 (the caller's business).
 */
void
payin_delete_token_operation(const Merchant *merchant, const char *account, const char *token,
							 bool *deleted, QiwiOperation *op)
{
	const char *segments[] = {"tokens"};
	StringInfoData body;
	bool		first = true;

	initStringInfo(&body);
	appendStringInfoChar(&body, '{');
	append_json_member(&body, "customerAccountId", account, &first);
	append_json_member(&body, "token", token, &first);
	appendStringInfoChar(&body, '}');
	payin_operation(op, merchant, HTTP_DELETE, payin_url(merchant, 1, segments), body.data,
					psprintf("delete the Payin payment token of account \"%s\"", account),
					"Repeating the call is safe: a token deleted already is reported, not an error.",
					true);
	*deleted = false;
	op->read = read_deleted_answer;
	op->result = deleted;
}

/* Parser of a card check object answer (a WireObjectParser) */
static bool
read_card_check(JsonbContainer *root, void *result, char **problem)
{
	return payin_parse_card_check(root, false, (PayinCardCheck *) result, problem);
}

/* Reader of a card check answer: the check asked about */
static bool
read_card_check_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	PayinCardCheck *check = (PayinCardCheck *) op->result;

	memset(check, 0, sizeof(*check));
	if (!wire_read_object(op, resp, read_card_check, check, error) ||
		!wire_answer_is_about(op, "card check", check->request_uid, (const char *) op->args, error))
		return false;
	check->merchant = op->merchant->name;
	check->token.merchant = op->merchant->name;
	return true;
}

/*
 * GET validation/card/requests/{requestUid}: a card check (for one made on
 * QIWI's form, requestUid is its invoice's billId)
 */
void
payin_card_check_operation(const Merchant *merchant, const char *request_uid,
						   PayinCardCheck *check, QiwiOperation *op)
{
	const char *segments[] = {"validation", "card", "requests", request_uid};

	payin_operation(op, merchant, HTTP_GET, payin_url(merchant, 4, segments), NULL,
					psprintf("get Payin card check \"%s\"", request_uid), QIWI_READ_RETRY_HINT, true);
	op->read = read_card_check_answer;
	op->args = request_uid;
	op->result = check;
}

/* ---------- merchants ---------- */

/* Is this a siteId a URL path and a signed string can carry (payin_site_id)? */
static bool
check_site_id(const char *value, char **why)
{
	if (value[0] != '\0' && strlen(value) <= PAYIN_MAX_ID_LENGTH &&
		strpbrk(value, "|/\r\n\t") == NULL)
		return true;
	*why = pstrdup("payin_site_id must be non-empty, at most 200 bytes, without '|', '/' or control characters.");
	return false;
}

/* Is this a number of hours QIWI can hold money for (capture_hours)? */
static bool
check_capture_hours(const char *value, char **why)
{
	char	   *end;
	long		hours = strtol(value, &end, 10);

	if (value[0] != '\0' && *end == '\0' && hours >= 1 && hours <= PAYIN_MAX_CAPTURE_HOURS)
		return true;
	*why = psprintf("payin_capture_hours must be a whole number of hours from 1 to %d (QIWI holds money at most 5 days).",
					PAYIN_MAX_CAPTURE_HOURS);
	return false;
}

/* Is this QIWI's 404 payin.resource.not.found, its answer for what it does not have? */
bool
payin_not_found(const QiwiError *error)
{
	return error->sqlstate == ERRCODE_QIWI_NOT_FOUND && error->error_code != NULL &&
		strcmp(error->error_code, "payin.resource.not.found") == 0;
}

/* How long a merchant's holds last before QIWI captures or releases them */
int
payin_capture_hours(const Merchant *merchant)
{
	const char *value = merchant_value(merchant, payin_option_capture_hours);

	return value != NULL ? atoi(value) : PAYIN_DEFAULT_CAPTURE_HOURS;
}

/*
 * The options a merchant has for the Payin API; the default merchant's
 * site and URL are qiwi.payin_* settings, and it has no Payin keys.
 */
void
payin_define_merchant_options(void)
{
	MerchantOptionDef site_id = {"payin_site_id", NULL, MERCHANT_ON_SERVER, &qiwi_payin_site_id, "qiwi.payin_site_id", check_site_id};
	MerchantOptionDef api_url = {"payin_api_url", NULL, MERCHANT_ON_SERVER, &qiwi_payin_api_url, "qiwi.payin_api_url", merchant_check_url};
	MerchantOptionDef capture_hours = {"payin_capture_hours", "capture_hours", MERCHANT_ON_SERVER, NULL, NULL, check_capture_hours};
	MerchantOptionDef api_key = {"payin_api_key", NULL, MERCHANT_ON_USER_MAPPING, NULL, NULL, merchant_check_secret};
	MerchantOptionDef notification_key = {"payin_notification_key", NULL, MERCHANT_ON_USER_MAPPING, NULL, NULL, merchant_check_secret};

	payin_option_site_id = merchant_define_option(&site_id);
	payin_option_api_url = merchant_define_option(&api_url);
	payin_option_capture_hours = merchant_define_option(&capture_hours);
	payin_option_api_key = merchant_define_option(&api_key);
	payin_option_notification_key = merchant_define_option(&notification_key);
}
