/*
 * payin_parse.c
 *		The Payin API's objects (seed 004, qiwi-api.md §2 and §8): Invoice,
 *		Payment, Capture and Refund, payment tokens and card checks, as its
 *		answers and its notifications write them.  Nothing here raises on a
 *		bad object: a parser returns false with *problem.
 */
#include "core/core.h"
#include "payin/payin.h"

#include "catalog/pg_type_d.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

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
bool
payin_parse_payment(JsonbContainer *root, bool notice, PayinPayment *payment, char **problem)
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

/* Read a Payment object of an invoice's list (a WireObjectParser) */
static bool
read_listed_payment(JsonbContainer *root, void *result, char **problem)
{
	return payin_parse_payment(root, false, (PayinPayment *) result, problem);
}

/* Read an Invoice object, with its payments when it has them (details) */
bool
payin_parse_invoice(JsonbContainer *root, PayinInvoice *invoice, char **problem)
{
	static const char *const statuses[] = {"CREATED", "PAID", "EXPIRED", NULL};
	JsonbContainer *status;
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
		!qiwi_json_invoice_terms(root, &invoice->terms, problem) ||
		!json_string_array(root, "flags", &invoice->flags, problem))
		return false;
	if (!qiwi_name_in(invoice->status, statuses))
	{
		*problem = psprintf("unknown invoice status \"%s\"", invoice->status);
		return false;
	}
	payments = json_field(root, "payments");
	return payments == NULL || payments->type == jbvNull ||
		json_object_list(payments, "field \"payments\"", sizeof(PayinPayment), read_listed_payment,
						 &invoice->payments, problem);
}

/*
 * Read a Capture or Refund object (they share their shape), or the object
 * of a CAPTURE or REFUND notification (notice: status SUCCESS or DECLINE,
 * and the paymentId it belongs to)
 */
bool
payin_parse_operation_result(JsonbContainer *root, bool notice, const char *id_key,
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
bool
payin_parse_card_check(JsonbContainer *root, bool notification, PayinCardCheck *check, char **problem)
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
		return payin_parse_payment(object, true, &notice->payment, problem);
	if (notice->kind == PAYIN_NOTICE_TOKEN)
		return parse_token(object, &notice->token, problem);
	if (notice->kind == PAYIN_NOTICE_CHECK_CARD)
		return payin_parse_card_check(object, true, &notice->check, problem);
	return payin_parse_operation_result(object, true,
								  notice->kind == PAYIN_NOTICE_CAPTURE ? "captureId" : "refundId",
								  &notice->operation, problem);
}
