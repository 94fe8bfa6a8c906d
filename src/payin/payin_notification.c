/*
 * payin_notification.c
 *		The signatures of Payin notifications (qiwi-api.md §2 and §8): hex
 *		HMAC-SHA256, keyed with the merchant's notification key, over the
 *		documented fields of the notification's object joined by '|', the
 *		amount written with exactly two decimals and dates exactly as
 *		received.
 */
#include "core/core.h"
#include "payin/payin.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(qiwi_payin_verify_signature);

/* The length of a signature: the hex of an HMAC-SHA256 */
#define PAYIN_SIGNATURE_LENGTH 64

/* The object member of a notification type, and the id it signs first */
typedef struct SignedType
{
	const char *type;
	const char *member;
	const char *id_key;			/* NULL: not id|createdDateTime|amount */
} SignedType;

static const SignedType signed_types[] = {
	{"PAYMENT", "payment", "paymentId"},
	{"CAPTURE", "capture", "captureId"},
	{"REFUND", "refund", "refundId"},
	{"TOKEN", "token", NULL},
	{"CHECK_CARD", "checkPaymentMethod", NULL},
};

/* Append a string field of object and a '|'; false with *problem if it cannot be signed */
static bool
append_field(StringInfo buf, JsonbContainer *object, const char *key, const char *path,
			 char **problem)
{
	JsonbValue	found;
	JsonbValue *v = object ? getKeyJsonValueFromContainer(object, key, strlen(key), &found) : NULL;

	if (v == NULL || v->type != jbvString)
	{
		*problem = psprintf(v == NULL ? "%s is missing" : "%s is not a string", path);
		return false;
	}
	/* '|' separates the fields: x|1 + y would read as x + 1|y */
	if (memchr(v->val.string.val, '|', v->val.string.len) != NULL)
	{
		*problem = psprintf("%s contains \"|\", which makes the signed string ambiguous", path);
		return false;
	}
	signature_append_utf8(buf, v->val.string.val, v->val.string.len);
	appendStringInfoChar(buf, '|');
	return true;
}

/* An object member of object, or NULL */
static JsonbContainer *
object_member(JsonbContainer *object, const char *key)
{
	JsonbValue	found;
	JsonbValue *v = object ? getKeyJsonValueFromContainer(object, key, strlen(key), &found) : NULL;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

/* Build the string QIWI signs for a notification; false with *problem */
static bool
payin_signed_string(Jsonb *notification, StringInfo buf, char **problem)
{
	JsonbContainer *object = NULL;
	const SignedType *kind = NULL;
	char	   *type;

	if (!JB_ROOT_IS_OBJECT(notification) ||
		!json_string(&notification->root, "type", true, &type, problem))
	{
		*problem = pstrdup("the notification has no \"type\"");
		return false;
	}
	for (size_t i = 0; i < lengthof(signed_types); i++)
		if (strcmp(type, signed_types[i].type) == 0)
			kind = &signed_types[i];
	if (kind == NULL)
	{
		*problem = psprintf("notification type \"%s\" has no documented signature", type);
		return false;
	}
	object = object_member(&notification->root, kind->member);
	if (object == NULL)
	{
		*problem = psprintf("the notification has no \"%s\" object", kind->member);
		return false;
	}
	if (kind->id_key != NULL)
	{
		Numeric		amount;
		char	   *currency;

		if (!append_field(buf, object, kind->id_key, kind->id_key, problem) ||
			!append_field(buf, object, "createdDateTime", "createdDateTime", problem))
			return false;
		/* the amount as QIWI signs it: exactly two decimals, never rounded */
		if (!qiwi_json_amount(object, PAYIN_MAX_AMOUNT, &amount, &currency, problem))
			return false;
		appendStringInfoString(buf, qiwi_format_amount(amount));
		return true;
	}
	if (strcmp(kind->type, "TOKEN") == 0)
	{
		JsonbContainer *status = object_member(object, "status");

		if (!append_field(buf, object, "merchantSiteUid", "token.merchantSiteUid", problem) ||
			!append_field(buf, object, "account", "token.account", problem) ||
			!append_field(buf, status, "value", "token.status.value", problem) ||
			!append_field(buf, status, "changedDateTime", "token.status.changedDateTime", problem))
			return false;
	}
	else if (!append_field(buf, object, "requestUid", "checkPaymentMethod.requestUid", problem) ||
			 !append_field(buf, object, "checkOperationDate", "checkPaymentMethod.checkOperationDate",
						   problem))
		return false;
	buf->data[--buf->len] = '\0';	/* no separator after the last field */
	return true;
}

/*
 * qiwi_payin_verify_signature(signature, notification, key, merchant): is
 * the notification QIWI's?  The key argument, else the merchant's
 * payin_notification_key; NULL if signature or notification is NULL
 */
Datum
qiwi_payin_verify_signature(PG_FUNCTION_ARGS)
{
	const Merchant *merchant = merchant_for_call(PG_ARGISNULL(3) ? NULL :
												 text_to_cstring(PG_GETARG_TEXT_PP(3)));
	const char *key_text = NULL;
	int			key_len = 0;
	text	   *signature;
	StringInfoData message;
	char	   *problem = NULL;

	if (!PG_ARGISNULL(2))
	{
		text	   *arg = PG_GETARG_TEXT_PP(2);

		key_text = VARDATA_ANY(arg);
		key_len = VARSIZE_ANY_EXHDR(arg);
	}
	else if ((key_text = merchant_value(merchant, payin_option_notification_key)) != NULL)
		key_len = strlen(key_text);
	if (key_len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no Payin notification key to verify with"),
				 errdetail("The key argument is NULL or empty and merchant \"%s\" has no payin_notification_key.",
						   merchant->name)));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	signature = PG_GETARG_TEXT_PP(0);
	initStringInfo(&message);
	if (VARSIZE_ANY_EXHDR(signature) != PAYIN_SIGNATURE_LENGTH ||
		!payin_signed_string(PG_GETARG_JSONB_P(1), &message, &problem))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(signature_verify(signature_key(SIGNATURE_SHA256, SIGNATURE_KEY_UTF8, key_text, key_len),
									SIGNATURE_HEX, message.data, message.len,
									VARDATA_ANY(signature), PAYIN_SIGNATURE_LENGTH));
}
