/*
 * payin_wire.c
 *		The Payin API v1 on the wire (seed 004, qiwi-api.md §2 and §8): URLs
 *		under /partner/payin/v1/sites/{siteId}, request bodies, the objects
 *		in its answers, one operation per API call, and the options a
 *		merchant has for it.  Nothing here raises on a bad answer: a reader
 *		returns false with a QiwiError, for the caller to raise.
 */
#include "core/core.h"
#include "payin/payin.h"

#include "catalog/pg_type_d.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#define PAYIN_SITES_PATH "/partner/payin/v1/sites/"

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

/* The default merchant's Payin settings */
char	   *qiwi_payin_site_id = NULL;
char	   *qiwi_payin_api_url = NULL;

/* ---------- objects ---------- */

/* Read an optional array of strings (flags) as text[]; absent is an empty array */
static bool
json_string_array(JsonbContainer *object, const char *key, ArrayType **out, char **problem)
{
	JsonbValue *v = json_field(object, key);
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;
	ArrayBuildState *build = initArrayResult(TEXTOID, CurrentMemoryContext, false);

	if (v != NULL && v->type == jbvNull)
		v = NULL;
	if (v != NULL && v->type != jbvBinary)
	{
		*problem = psprintf("field \"%s\" is not an array", key);
		return false;
	}
	if (v != NULL)
	{
		if (!JsonContainerIsArray(v->val.binary.data))
		{
			*problem = psprintf("field \"%s\" is not an array", key);
			return false;
		}
		it = JsonbIteratorInit(v->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (elem.type != jbvString)
			{
				*problem = psprintf("field \"%s\" has an element that is not a string", key);
				return false;
			}
			accumArrayResult(build,
							 PointerGetDatum(cstring_to_text_with_len(elem.val.string.val,
																	  elem.val.string.len)),
							 false, TEXTOID, CurrentMemoryContext);
		}
	}
	*out = DatumGetArrayTypeP(makeArrayResult(build, CurrentMemoryContext));
	return true;
}

/*
 * A notification's status (SUCCESS or DECLINE, §2) as the API writes it;
 * false with *problem for any other
 */
static bool
notice_status(char **status, char **problem)
{
	if (strcmp(*status, "SUCCESS") == 0)
		*status = "COMPLETED";
	else if (strcmp(*status, "DECLINE") != 0)
	{
		*problem = psprintf("unknown notification status \"%s\"", *status);
		return false;
	}
	return true;
}

/* Does a text[] hold value? */
static bool
array_has(ArrayType *array, const char *value)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && strcmp(TextDatumGetCString(elems[i]), value) == 0)
			return true;
	return false;
}

/*
 * Is what a payment captured or refunded (key) in its currency and at most
 * its amount?  Other money would count as money the shop received or
 * returned.
 */
static bool
within_payment(const PayinPayment *payment, const char *key, Numeric amount,
			   const char *currency, char **problem)
{
	if (qiwi_money_within(amount, currency, payment->amount, payment->currency))
		return true;
	*problem = psprintf("field \"%s\" (%s %s) is not within the payment's %s %s", key,
						qiwi_format_amount(amount), currency,
						qiwi_format_amount(payment->amount), payment->currency);
	return false;
}

/*
 * Read a Payment object (seed 004; §2's Payment), or a PAYMENT
 * notification's "payment" (notice: status SUCCESS or DECLINE, the reason
 * in reasonCode, no captured or refunded amount)
 */
static bool
parse_payment(JsonbContainer *root, bool notice, PayinPayment *payment, char **problem)
{
	static const char *const statuses[] = {"WAITING", "COMPLETED", "DECLINED", NULL};
	JsonbContainer *status;
	JsonbContainer *method;
	char	   *currency;

	memset(payment, 0, sizeof(*payment));
	if (!json_identifier(root, "paymentId", &payment->payment_id, problem) ||
		!json_string(root, "billId", false, &payment->bill_id, problem) ||
		!qiwi_json_money(root, "amount", false, PAYIN_MAX_AMOUNT, &payment->amount,
						 &payment->currency, problem) ||
		!json_member_object(root, "status", true, &status, NULL, problem) ||
		!json_string(status, "value", true, &payment->status, problem) ||
		!json_string(status, notice ? "reasonCode" : "reason", false, &payment->reason_code, problem) ||
		!json_string(status, "reasonMessage", false, &payment->reason_message, problem) ||
		!json_timestamp(status, "changedDateTime", NULL, &payment->has_status_changed_at,
						&payment->status_changed_at, problem) ||
		!json_timestamp(root, "createdDateTime", NULL, &payment->has_created_at,
						&payment->created_at, problem) ||
		!json_member_object(root, "paymentMethod", false, &method, NULL, problem) ||
		!json_string_array(root, "flags", &payment->flags, problem))
		return false;
	if (payment->payment_id == NULL)
	{
		*problem = pstrdup("field \"paymentId\" is missing");
		return false;
	}
	if (method != NULL &&
		(!json_string(method, "type", false, &payment->method, problem) ||
		 !json_string(method, "maskedPan", false, &payment->masked_pan, problem)))
		return false;
	if (notice && !notice_status(&payment->status, problem))
		return false;
	/* older answers write DECLINE (§2) */
	if (strcmp(payment->status, "DECLINE") == 0)
		payment->status = "DECLINED";
	if (!qiwi_name_in(payment->status, statuses))
	{
		*problem = psprintf("unknown payment status \"%s\"", payment->status);
		return false;
	}
	/* nothing captured or refunded yet may be written 0.00 or left out */
	if (json_field(root, "capturedAmount") == NULL)
		payment->captured_amount = qiwi_numeric_constant("0.00");
	else if (!qiwi_json_money(root, "capturedAmount", true, PAYIN_MAX_AMOUNT,
							  &payment->captured_amount, &currency, problem) ||
			 !within_payment(payment, "capturedAmount", payment->captured_amount, currency, problem))
		return false;
	/* a one-step payment authorised is captured; a notification does not say so */
	if (notice && strcmp(payment->status, "COMPLETED") == 0 && array_has(payment->flags, "SALE"))
		payment->captured_amount = payment->amount;
	if (json_field(root, "refundedAmount") == NULL)
		payment->refunded_amount = qiwi_numeric_constant("0.00");
	else if (!qiwi_json_money(root, "refundedAmount", true, PAYIN_MAX_AMOUNT,
							  &payment->refunded_amount, &currency, problem) ||
			 !within_payment(payment, "refundedAmount", payment->refunded_amount, currency, problem))
		return false;
	return true;
}

/* Read an Invoice object, with its payments when it has them (details) */
static bool
parse_invoice(JsonbContainer *root, PayinInvoice *invoice, char **problem)
{
	static const char *const statuses[] = {"CREATED", "PAID", "EXPIRED", NULL};
	JsonbContainer *status;
	JsonbContainer *ignored;
	JsonbValue *payments;

	memset(invoice, 0, sizeof(*invoice));
	if (!json_string(root, "billId", true, &invoice->bill_id, problem) ||
		!json_string(root, "invoiceUid", false, &invoice->invoice_uid, problem) ||
		!json_string(root, "siteId", false, &invoice->site_id, problem) ||
		/* 0.00 is a card check's (CHECK_CARD) */
		!qiwi_json_money(root, "amount", true, PAYIN_MAX_AMOUNT, &invoice->amount,
						 &invoice->currency, problem) ||
		!json_member_object(root, "status", true, &status, NULL, problem) ||
		!json_string(status, "value", true, &invoice->status, problem) ||
		!json_timestamp(status, "changedDateTime", NULL, &invoice->has_status_changed_at,
						&invoice->status_changed_at, problem) ||
		!json_timestamp(root, "createdDateTime", "creationDateTime",
						&invoice->has_created_at, &invoice->created_at, problem) ||
		!json_timestamp(root, "expirationDateTime", NULL,
						&invoice->has_expires_at, &invoice->expires_at, problem) ||
		!json_string(root, "payUrl", false, &invoice->pay_url, problem) ||
		!json_string(root, "comment", false, &invoice->comment, problem) ||
		!json_member_object(root, "customer", false, &ignored, &invoice->customer, problem) ||
		!json_member_object(root, "customFields", false, &ignored, &invoice->custom_fields,
							problem) ||
		!json_string_array(root, "flags", &invoice->flags, problem))
		return false;
	if (!qiwi_name_in(invoice->status, statuses))
	{
		*problem = psprintf("unknown invoice status \"%s\"", invoice->status);
		return false;
	}
	payments = json_field(root, "payments");
	if (payments != NULL && payments->type == jbvBinary &&
		JsonContainerIsArray(payments->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(payments->val.binary.data);
		JsonbValue	elem;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			PayinPayment *payment = palloc(sizeof(PayinPayment));

			if (tok != WJB_ELEM)
				continue;
			if (elem.type != jbvBinary || !JsonContainerIsObject(elem.val.binary.data))
			{
				*problem = pstrdup("field \"payments\" has an element that is not an object");
				return false;
			}
			if (!parse_payment(elem.val.binary.data, false, payment, problem))
				return false;
			invoice->payments = lappend(invoice->payments, payment);
		}
	}
	else if (payments != NULL && payments->type != jbvNull)
	{
		*problem = pstrdup("field \"payments\" is not an array");
		return false;
	}
	return true;
}

/*
 * Read a Capture or Refund object (they share their shape), or the object
 * of a CAPTURE or REFUND notification (notice: status SUCCESS or DECLINE,
 * and the paymentId it belongs to)
 */
static bool
parse_operation_result(JsonbContainer *root, bool notice, const char *id_key,
					   PayinOperationResult *result, char **problem)
{
	static const char *const statuses[] = {"COMPLETED", "DECLINED", NULL};
	JsonbContainer *status;

	if (!json_identifier(root, id_key, &result->id, problem) ||
		!qiwi_json_money(root, "amount", false, PAYIN_MAX_AMOUNT, &result->amount,
						 &result->currency, problem) ||
		!json_member_object(root, "status", true, &status, NULL, problem) ||
		!json_string(status, "value", true, &result->status, problem) ||
		!json_timestamp(status, "changedDateTime", NULL, &result->has_status_changed_at,
						&result->status_changed_at, problem) ||
		!json_timestamp(root, "createdDateTime", NULL, &result->has_created_at,
						&result->created_at, problem) ||
		!json_string(root, "comment", false, &result->comment, problem) ||
		!json_string_array(root, "flags", &result->flags, problem))
		return false;
	if (result->id == NULL)
	{
		*problem = psprintf("field \"%s\" is missing", id_key);
		return false;
	}
	if (notice &&
		(!notice_status(&result->status, problem) ||
		 !json_identifier(root, "paymentId", &result->payment_id, problem)))
		return false;
	if (notice && result->payment_id == NULL)
	{
		*problem = pstrdup("field \"paymentId\" is missing");
		return false;
	}
	if (strcmp(result->status, "DECLINE") == 0)
		result->status = "DECLINED";
	if (!qiwi_name_in(result->status, statuses))
	{
		*problem = psprintf("unknown status \"%s\"", result->status);
		return false;
	}
	result->reversal = array_has(result->flags, "REVERSAL");
	return true;
}

/* Read the "token" object of a TOKEN notification (§8) */
static bool
parse_token(JsonbContainer *root, PayinToken *token, char **problem)
{
	static const char *const statuses[] = {"CREATED", "REJECTED", NULL};
	JsonbContainer *status;

	if (!json_string(root, "account", true, &token->account, problem) ||
		!json_member_object(root, "status", true, &status, NULL, problem) ||
		!json_string(status, "value", true, &token->status, problem) ||
		!json_timestamp(status, "changedDateTime", NULL, &token->has_bound_at,
						&token->bound_at, problem) ||
		!json_string(root, "token", false, &token->token, problem) ||
		!json_string(root, "name", false, &token->name, problem) ||
		!json_timestamp(root, "expiredDate", NULL, &token->has_expires_at,
						&token->expires_at, problem))
		return false;
	if (!qiwi_name_in(token->status, statuses))
	{
		*problem = psprintf("unknown token status \"%s\"", token->status);
		return false;
	}
	if (strcmp(token->status, "CREATED") == 0 && token->token == NULL)
	{
		*problem = pstrdup("field \"token\" is missing");
		return false;
	}
	return true;
}

/*
 * Read a card check (documented statuses INIT, WAITING_3DS, SUCCESS, ERROR;
 * kept as written): the "checkPaymentMethod" object of a CHECK_CARD
 * notification, which always carries its signed checkOperationDate, or the
 * answer of GET validation/card/requests/{requestUid}, which has none while
 * the form waits for the buyer.  A createdToken is the token the check
 * bound, and must name it and its account.
 */
static bool
parse_card_check(JsonbContainer *root, bool notification, PayinCardCheck *check, char **problem)
{
	JsonbValue *valid = json_field(root, "isValidCard");
	JsonbContainer *ignored;
	JsonbContainer *token;

	if (!json_identifier(root, "requestUid", &check->request_uid, problem) ||
		!json_string(root, "status", true, &check->status, problem) ||
		!json_string(root, "threeDsStatus", false, &check->three_ds_status, problem) ||
		!json_timestamp(root, "checkOperationDate", NULL, &check->has_operation_date,
						&check->operation_date, problem) ||
		!json_member_object(root, "cardInfo", false, &ignored, &check->card_info, problem) ||
		!json_member_object(root, "createdToken", false, &token, NULL, problem))
		return false;
	if (check->request_uid == NULL || (notification && !check->has_operation_date))
	{
		*problem = psprintf("field \"%s\" is missing",
							check->request_uid == NULL ? "requestUid" : "checkOperationDate");
		return false;
	}
	if (valid != NULL && valid->type != jbvNull && valid->type != jbvBool)
	{
		*problem = pstrdup("field \"isValidCard\" is not a boolean");
		return false;
	}
	check->has_valid_card = valid != NULL && valid->type == jbvBool;
	check->valid_card = check->has_valid_card && valid->val.boolean;
	if (token == NULL)
		return true;
	check->has_token = true;
	check->token.status = "CREATED";
	check->token.has_bound_at = check->has_operation_date;
	check->token.bound_at = check->operation_date;
	if (!json_string(token, "token", true, &check->token.token, problem) ||
		!json_string(token, "account", true, &check->token.account, problem) ||
		!json_string(token, "name", false, &check->token.name, problem) ||
		!json_timestamp(token, "expiredDate", NULL, &check->token.has_expires_at,
						&check->token.expires_at, problem))
	{
		*problem = psprintf("createdToken: %s", *problem);
		return false;
	}
	return true;
}

/*
 * Read the object of a PAYMENT, CAPTURE, REFUND, TOKEN or CHECK_CARD
 * notification into *notice; false with *problem if it is not one, or not
 * a valid one
 */
bool
payin_parse_notification(Jsonb *body, PayinNotice *notice, char **problem)
{
	char	   *type = NULL;
	JsonbContainer *object;

	memset(notice, 0, sizeof(*notice));
	if (!JB_ROOT_IS_OBJECT(body) || !json_string(&body->root, "type", true, &type, problem))
		return false;
	if (strcmp(type, "PAYMENT") == 0)
		notice->kind = PAYIN_NOTICE_PAYMENT;
	else if (strcmp(type, "CAPTURE") == 0)
		notice->kind = PAYIN_NOTICE_CAPTURE;
	else if (strcmp(type, "REFUND") == 0)
		notice->kind = PAYIN_NOTICE_REFUND;
	else if (strcmp(type, "TOKEN") == 0)
		notice->kind = PAYIN_NOTICE_TOKEN;
	else if (strcmp(type, "CHECK_CARD") == 0)
		notice->kind = PAYIN_NOTICE_CHECK_CARD;
	else
	{
		*problem = psprintf("%s notifications are not recorded", type);
		return false;
	}
	notice->type = type;
	if (!json_member_object(&body->root, notice->kind == PAYIN_NOTICE_PAYMENT ? "payment" :
							notice->kind == PAYIN_NOTICE_CAPTURE ? "capture" :
							notice->kind == PAYIN_NOTICE_REFUND ? "refund" :
							notice->kind == PAYIN_NOTICE_TOKEN ? "token" : "checkPaymentMethod",
							true, &object, NULL, problem))
		return false;
	if (notice->kind == PAYIN_NOTICE_PAYMENT)
		return parse_payment(object, true, &notice->payment, problem);
	if (notice->kind == PAYIN_NOTICE_TOKEN)
		return parse_token(object, &notice->token, problem);
	if (notice->kind == PAYIN_NOTICE_CHECK_CARD)
		return parse_card_check(object, true, &notice->check, problem);
	return parse_operation_result(object, true,
								  notice->kind == PAYIN_NOTICE_CAPTURE ? "captureId" : "refundId",
								  &notice->operation, problem);
}

/* ---------- requests ---------- */

/* A merchant's option that a call cannot go without, or a 55000 error */
static const char *
require_option(const Merchant *merchant, int option, const char *name)
{
	const char *value = merchant_value(merchant, option);

	if (value != NULL)
		return value;
	/* a Payin call needs a key, which only a merchant's user mapping holds */
	if (merchant->server == InvalidOid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the default merchant cannot make Payin calls: it has no Payin %s", name),
				 errdetail("Payin keys are options of a merchant's user mapping; the qiwi.* settings hold none."),
				 errhint("Create a merchant: CREATE SERVER name FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id '...'); CREATE USER MAPPING FOR PUBLIC SERVER name OPTIONS (payin_api_key '...'); and name it in the call's merchant argument.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("merchant \"%s\" has no %s", merchant->name, name),
			 errhint(option == payin_option_api_key ?
					 "A superuser gives it with CREATE USER MAPPING FOR PUBLIC SERVER %s OPTIONS (payin_api_key '...'); a mapping for a single role is not used." :
					 "Its owner gives it with ALTER SERVER %s OPTIONS (ADD payin_site_id '...').",
					 quote_identifier(merchant->name))));
	pg_unreachable();
}

/* URL of a merchant's Payin resource: the site's base, then each segment escaped */
static char *
payin_url(const Merchant *merchant, int nsegments, const char *const *segments)
{
	StringInfoData url;
	const char *base = merchant_value(merchant, payin_option_api_url);
	const char *site_id = require_option(merchant, payin_option_site_id, "payin_site_id");
	size_t		base_len;

	if (base == NULL)
		base = PAYIN_DEFAULT_API_URL;
	base_len = strlen(base);
	while (base_len > 0 && base[base_len - 1] == '/')
		base_len--;
	initStringInfo(&url);
	appendBinaryStringInfo(&url, base, base_len);
	appendStringInfoString(&url, PAYIN_SITES_PATH);
	appendStringInfoString(&url, http_escape_path_segment(site_id));
	for (int i = 0; i < nsegments; i++)
	{
		appendStringInfoChar(&url, '/');
		/* fixed words pass through; ids are escaped */
		appendStringInfoString(&url, i % 2 == 0 ? segments[i] : http_escape_path_segment(segments[i]));
	}
	return url.data;
}

/*
 * Start an operation for a merchant: its request, with the headers every
 * Payin call carries (JSON, and the merchant's API key as a Bearer token).
 */
static void
payin_operation(QiwiOperation *op, const Merchant *merchant, HttpMethod method, char *url,
				char *body, char *context, const char *retry_hint, bool idempotent)
{
	const char **headers = palloc(sizeof(char *) * 2);

	memset(op, 0, sizeof(*op));
	headers[0] = "Accept: application/json";
	headers[1] = psprintf("Authorization: Bearer %s",
						  require_option(merchant, payin_option_api_key, "payin_api_key"));
	op->merchant = merchant;
	op->request.method = method;
	op->request.url = url;
	op->request.body = body;
	op->request.content_type = method == HTTP_GET ? NULL : "application/json;charset=UTF-8";
	op->request.headers = headers;
	op->request.nheaders = 2;
	op->context = context;
	op->retry_hint = retry_hint;
	/* a capture or refund is sent again only after asking (payin_sql.c) */
	op->idempotent = idempotent;
	op->key_option = "payin_api_key";
}

/* Append "key":{"currency":..,"value":..} with exactly two decimals */
static void
append_money(StringInfo buf, const char *key, Numeric amount, const char *currency)
{
	bool		first = true;

	escape_json(buf, key);
	appendStringInfoString(buf, ":{");
	append_json_member(buf, "currency", currency, &first);
	append_json_member(buf, "value", qiwi_format_amount(amount), &first);
	appendStringInfoChar(buf, '}');
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
		append_money(&buf, "amount", args->amount, args->currency);
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

/* Reader of an Invoice object answer (a QiwiAnswerReader) */
static bool
read_invoice(const HttpResponse *resp, void *result, char **problem)
{
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	return jb != NULL && parse_invoice(&jb->root, (PayinInvoice *) result, problem);
}

/* Reader of an invoice answer: the invoice asked about (and for the money asked) */
static bool
read_invoice_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const InvoiceAsked *asked = (const InvoiceAsked *) op->args;
	PayinInvoice *invoice = (PayinInvoice *) op->result;
	char	   *problem = NULL;
	ListCell   *lc;

	if (!qiwi_read_answer(read_invoice, resp, invoice, &problem))
		return qiwi_malformed(error, op->context, problem);
	if (strcmp(invoice->bill_id, asked->bill_id) != 0)
		return qiwi_malformed(error, op->context,
							  psprintf("the answer is about invoice \"%s\"", invoice->bill_id));
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

/* Reader of a Payment object answer (a QiwiAnswerReader) */
static bool
read_payment(const HttpResponse *resp, void *result, char **problem)
{
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	return jb != NULL && parse_payment(&jb->root, false, (PayinPayment *) result, problem);
}

/* Reader of a payment answer: the payment asked about */
static bool
read_payment_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	PayinPayment *payment = (PayinPayment *) op->result;
	char	   *problem = NULL;

	if (!qiwi_read_answer(read_payment, resp, payment, &problem))
		return qiwi_malformed(error, op->context, problem);
	if (strcmp(payment->payment_id, (const char *) op->args) != 0)
		return qiwi_malformed(error, op->context,
							  psprintf("the answer is about payment \"%s\"", payment->payment_id));
	payment->merchant = op->merchant->name;
	return true;
}

/* What a capture or refund operation checks its answer against */
typedef struct OperationAsked
{
	QiwiAnswerReader reader;	/* read_capture or read_refund */
	const char *what;			/* capture or refund */
	const char *id;
	Numeric		amount;			/* NULL: any (a capture takes what is held) */
	const char *currency;
} OperationAsked;

/* Reader of a Capture object answer (a QiwiAnswerReader) */
static bool
read_capture(const HttpResponse *resp, void *result, char **problem)
{
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	return jb != NULL &&
		parse_operation_result(&jb->root, false, "captureId", (PayinOperationResult *) result, problem);
}

/* Reader of a Refund object answer (a QiwiAnswerReader) */
static bool
read_refund(const HttpResponse *resp, void *result, char **problem)
{
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	return jb != NULL &&
		parse_operation_result(&jb->root, false, "refundId", (PayinOperationResult *) result, problem);
}

/* Reader of a capture or refund answer: the one asked about, for the money asked */
static bool
read_operation_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const OperationAsked *asked = (const OperationAsked *) op->args;
	PayinOperationResult *result = (PayinOperationResult *) op->result;
	char	   *problem = NULL;
	char	   *payment_id = result->payment_id;

	memset(result, 0, sizeof(*result));
	if (!qiwi_read_answer(asked->reader, resp, result, &problem))
		return qiwi_malformed(error, op->context, problem);
	result->payment_id = payment_id;
	result->merchant = op->merchant->name;
	if (strcmp(result->id, asked->id) != 0)
		return qiwi_malformed(error, op->context,
							  psprintf("the answer is about %s \"%s\"", asked->what, result->id));
	return asked->amount == NULL ||
		qiwi_same_money_as_asked(result->amount, result->currency, asked->amount, asked->currency,
								 op->context, asked->what, error);
}

/* Reader of an array of Refund objects (a QiwiAnswerReader) */
static bool
read_refund_list(const HttpResponse *resp, void *result, char **problem)
{
	List	  **refunds = (List **) result;
	char	   *wrapped;
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;

	if (resp->body_len > 0 && resp->body[0] != '[')
	{
		*problem = pstrdup("the answer is not a JSON array");
		return false;
	}
	/* parse_json_object (depth, encoding) reads objects: the array becomes a member */
	wrapped = psprintf("{\"refunds\":%s}", resp->body);
	jb = parse_json_object(wrapped, strlen(wrapped), NULL, problem);
	if (jb == NULL)
		return false;
	elem = *json_field(&jb->root, "refunds");
	if (elem.type != jbvBinary || !JsonContainerIsArray(elem.val.binary.data))
	{
		*problem = pstrdup("the answer is not a JSON array");
		return false;
	}
	it = JsonbIteratorInit(elem.val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		PayinOperationResult *refund = palloc0(sizeof(PayinOperationResult));

		if (tok != WJB_ELEM)
			continue;
		if (elem.type != jbvBinary || !JsonContainerIsObject(elem.val.binary.data))
		{
			*problem = pstrdup("an element of the array is not an object");
			return false;
		}
		if (!parse_operation_result(elem.val.binary.data, false, "refundId", refund, problem))
			return false;
		*refunds = lappend(*refunds, refund);
	}
	return true;
}

/* Reader of the refunds of a payment */
static bool
read_refunds_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	List	  **refunds = (List **) op->result;
	char	   *problem = NULL;
	ListCell   *lc;

	*refunds = NIL;
	if (!qiwi_read_answer(read_refund_list, resp, refunds, &problem))
		return qiwi_malformed(error, op->context, problem);
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
 * PUT (send) or GET payments/{paymentId}/captures/{captureId}.  The PUT is
 * never resent by the exchange: the caller asks for the capture first
 * (payin_sql.c), since a repeat that QIWI did not take as the same capture
 * would be refused, or worse.
 */
void
payin_capture_operation(const Merchant *merchant, const char *payment_id,
						const char *capture_id, const char *comment, bool send,
						PayinOperationResult *capture, QiwiOperation *op)
{
	const char *segments[] = {"payments", payment_id, "captures", capture_id};
	OperationAsked *asked = palloc(sizeof(OperationAsked));
	StringInfoData body;
	bool		first = true;

	initStringInfo(&body);
	appendStringInfoChar(&body, '{');
	if (comment != NULL)
		append_json_member(&body, "comment", comment, &first);
	appendStringInfoChar(&body, '}');
	payin_operation(op, merchant, send ? HTTP_PUT : HTTP_GET, payin_url(merchant, 4, segments),
					send ? body.data : NULL,
					psprintf("%s \"%s\" of Payin payment \"%s\"",
							 send ? "capture" : "get capture", capture_id, payment_id),
					send ? "Repeating the same call is safe: it asks QIWI for the capture before sending it again." :
					QIWI_READ_RETRY_HINT, !send);
	*asked = (OperationAsked) {read_capture, "capture", capture_id, NULL, NULL};
	capture->payment_id = (char *) payment_id;
	op->read = read_operation_answer;
	op->args = asked;
	op->result = capture;
}

/*
 * PUT (send) or GET payments/{paymentId}/refunds/{refundId}; the PUT is
 * never resent by the exchange (see payin_capture_operation).
 */
void
payin_refund_operation(const Merchant *merchant, const char *payment_id, const char *refund_id,
					   Numeric amount, const char *currency, bool send,
					   PayinOperationResult *refund, QiwiOperation *op)
{
	const char *segments[] = {"payments", payment_id, "refunds", refund_id};
	OperationAsked *asked = palloc(sizeof(OperationAsked));
	StringInfoData body;

	initStringInfo(&body);
	if (send)
	{
		appendStringInfoChar(&body, '{');
		append_money(&body, "amount", amount, currency);
		appendStringInfoChar(&body, '}');
	}
	payin_operation(op, merchant, send ? HTTP_PUT : HTTP_GET, payin_url(merchant, 4, segments),
					send ? body.data : NULL,
					psprintf("%s \"%s\" of Payin payment \"%s\"",
							 send ? "refund" : "get refund", refund_id, payment_id),
					send ? "Repeating the same call is safe: it asks QIWI for the refund before sending it again." :
					QIWI_READ_RETRY_HINT, !send);
	*asked = (OperationAsked) {read_refund, "refund", refund_id, amount, currency};
	refund->payment_id = (char *) payment_id;
	op->read = read_operation_answer;
	op->args = asked;
	op->result = refund;
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

/* Reader of a card check object answer (a QiwiAnswerReader) */
static bool
read_card_check(const HttpResponse *resp, void *result, char **problem)
{
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	return jb != NULL && parse_card_check(&jb->root, false, (PayinCardCheck *) result, problem);
}

/* Reader of a card check answer: the check asked about */
static bool
read_card_check_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	PayinCardCheck *check = (PayinCardCheck *) op->result;
	char	   *problem = NULL;

	memset(check, 0, sizeof(*check));
	if (!qiwi_read_answer(read_card_check, resp, check, &problem))
		return qiwi_malformed(error, op->context, problem);
	if (strcmp(check->request_uid, (const char *) op->args) != 0)
		return qiwi_malformed(error, op->context,
							  psprintf("the answer is about card check \"%s\"", check->request_uid));
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
