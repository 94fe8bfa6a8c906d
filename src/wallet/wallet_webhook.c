/*
 * wallet_webhook.c
 *		Wallet webhooks (qiwi-api.md §4, §8, §9): QIWI POSTs a JSON body
 *		{hash, hookId, messageId, payment, test, version} whose hash is the
 *		lowercase hex HMAC-SHA256, keyed with the base64-decoded hook key, of
 *		the values named by payment.signFields joined by '|'.  Verified here
 *		and by the core's trigger shell on qiwi_wallet_webhooks, whose
 *		verified payments go into qiwi_wallet_payments forward only.
 *
 * The amount rule: a JSON number in a signed field is signed as JSON
 * clients print it, without trailing zeros in its fraction (1.00 as "1",
 * 1.50 as "1.5", 643 as "643"); a string is signed as written.  QIWI's
 * vector (§4) signs "1" for an amount of 1, the sandbox sends 1.5 and 1,
 * and a body that writes 1.00 means the same number: jsonb keeps the
 * scale as written, so it is trimmed (trim_scale) before printing.
 */
#include "core/core.h"
#include "wallet/wallet.h"

#include "utils/builtins.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(qiwi_wallet_verify_webhook);

/* The hash: the lowercase hex of a 32-byte HMAC-SHA256 */
#define WALLET_HASH_LENGTH		64
/* The longest path a signFields entry may name ("sum.currency") */
#define WALLET_MAX_SIGN_PATH	64

/* The merchant option holding the hook's key (base64, as QIWI gives it) */
int			wallet_option_webhook_key;

static bool wallet_signed_string(Jsonb *body, StringInfo buf, char **problem);

/* Wallet webhooks as the core's trigger shell sees them */
static const NotificationKind wallet_webhooks = {
	.trigger = "qiwi_wallet_webhook_verify()",
	.rejected = "QIWI Wallet webhook rejected",
	.reject_hint = "Store the webhook's JSON body as QIWI sent it.",
	.key = {&wallet_option_webhook_key, "wallet_webhook_key", NULL, "key_base64",
	"no Wallet webhook key to verify the hash with"},
	.signature = {SIGNATURE_SHA256, SIGNATURE_KEY_BASE64, SIGNATURE_HEX, WALLET_HASH_LENGTH},
	.signed_string = wallet_signed_string,
};

/*
 * Append the value a signFields entry names (a dotted path in the payment,
 * "sum.amount") to the signed string, by the amount rule above; false with
 * *problem when it is missing or neither a string nor a number
 */
static bool
append_signed_value(StringInfo buf, JsonbContainer *payment, const char *path, int len,
					char **problem)
{
	char		part[WALLET_MAX_SIGN_PATH + 1];
	JsonbValue *v = NULL;
	JsonbValue	trimmed;
	JsonbContainer *object = payment;
	int			start = 0;

	if (len == 0 || len > WALLET_MAX_SIGN_PATH)
	{
		*problem = psprintf("payment.signFields names a field %s", len ? "too long" : "without a name");
		return false;
	}
	for (int i = 0; i <= len; i++)
	{
		if (i < len && path[i] != '.')
			continue;
		if (object == NULL)
			v = NULL;
		else
		{
			memcpy(part, path + start, i - start);
			part[i - start] = '\0';
			v = json_field(object, part);
		}
		object = (v != NULL && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data)) ?
			v->val.binary.data : NULL;
		start = i + 1;
	}
	if (v != NULL && v->type == jbvNumeric)
	{
		trimmed.type = jbvNumeric;
		trimmed.val.numeric = DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale,
																  NumericGetDatum(v->val.numeric)));
		v = &trimmed;
	}
	return signature_append_field(buf, v, true, psprintf("payment.%.*s", len, path), problem);
}

/*
 * The string a webhook signs: the values payment.signFields names, in its
 * order, joined by '|'; false with *problem when one cannot be signed
 */
static bool
wallet_signed_string(Jsonb *body, StringInfo buf, char **problem)
{
	JsonbContainer *payment = NULL;
	char	   *fields = NULL;
	int			start = 0;

	if (!JB_ROOT_IS_OBJECT(body) || JB_ROOT_IS_SCALAR(body))
	{
		*problem = pstrdup("the webhook is not a JSON object");
		return false;
	}
	if (!json_member_object(&body->root, "payment", true, &payment, NULL, problem) ||
		!json_string(payment, "signFields", true, &fields, problem))
		return false;
	for (int i = 0;; i++)
	{
		if (fields[i] != ',' && fields[i] != '\0')
			continue;
		if (!append_signed_value(buf, payment, fields + start, i - start, problem))
			return false;
		if (fields[i] == '\0')
			break;
		start = i + 1;
	}
	signature_end_message(buf);
	return true;
}

/* Does the body's hash hold under key?  false with *problem when not */
static bool
webhook_hash_holds(SignatureKey *key, Jsonb *body, char **problem)
{
	JsonbValue *hash = JB_ROOT_IS_OBJECT(body) && !JB_ROOT_IS_SCALAR(body) ?
		json_field(&body->root, "hash") : NULL;

	if (hash == NULL || hash->type != jbvString)
	{
		*problem = pstrdup(hash == NULL ? "the webhook has no hash" : "the webhook's hash is not a string");
		return false;
	}
	return notification_signature_holds(&wallet_webhooks, key, hash->val.string.val,
										hash->val.string.len, body, problem);
}

/*
 * qiwi_wallet_verify_webhook(body, key_base64, merchant): is the body's
 * hash QIWI's under key_base64, else the merchant's wallet_webhook_key?
 * NULL if body is NULL
 */
Datum
qiwi_wallet_verify_webhook(PG_FUNCTION_ARGS)
{
	SignatureKey *key = notification_argument_signer(fcinfo, 1, &wallet_webhooks);
	char	   *problem = NULL;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(webhook_hash_holds(key, PG_GETARG_JSONB_P(0), &problem));
}

/* Start the webhooks: the option that holds the hook's key */
void
wallet_webhook_init(void)
{
	MerchantOptionDef key = {"wallet_webhook_key", NULL, MERCHANT_ON_USER_MAPPING, NULL, NULL,
	merchant_check_secret};

	wallet_option_webhook_key = merchant_define_option(&key);
}
