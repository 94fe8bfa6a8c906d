/*
 * trigger_shell.c
 *		A toy API's notifications through the core's trigger shell
 *		(notification.c).  A toy notification is {"shop": the merchant's
 *		name, "id": ..., "amount": ...}, signed with the lowercase hex
 *		HMAC-SHA256 of "id|amount" under the merchant's bill_secret_key (the
 *		key option every merchant of the wrapper may hold); applying it
 *		records it once in qiwi_core_test_notified, or, for the second trigger,
 *		writes there and then fails.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(qiwi_core_test_notification_verify);
PG_FUNCTION_INFO_V1(qiwi_core_test_notification_verify_failing);
PG_FUNCTION_INFO_V1(qiwi_core_test_sign_notification);

/* The merchant a toy notification names in "shop"; NULL with *problem */
static const Merchant *
toy_merchant(Jsonb *body, const char *site, char **problem)
{
	char	   *shop = NULL;
	const Merchant *merchant;

	if (!JB_ROOT_IS_OBJECT(body))
	{
		*problem = pstrdup("the notification is not an object");
		return NULL;
	}
	if (!json_string(&body->root, "shop", true, &shop, problem))
		return NULL;
	merchant = merchant_by_name(shop);
	if (merchant == NULL)
		*problem = psprintf("no merchant is named \"%s\"", shop);
	return merchant;
}

/* The string a toy notification signs: id|amount; false with *problem */
static bool
toy_signed_string(Jsonb *body, StringInfo buf, char **problem)
{
	JsonbValue	found;

	if (!JB_ROOT_IS_OBJECT(body))
	{
		*problem = pstrdup("the notification is not an object");
		return false;
	}
	if (!signature_append_field(buf, getKeyJsonValueFromContainer(&body->root, "id", 2, &found),
								false, "id", problem) ||
		!signature_append_field(buf, getKeyJsonValueFromContainer(&body->root, "amount", 6, &found),
								true, "amount", problem))
		return false;
	signature_end_message(buf);
	return true;
}

/* Record a toy notification in qiwi_core_test_notified; how many rows it added */
static uint64
toy_record(Jsonb *body, const Merchant *merchant)
{
	Oid			types[2] = {JSONBOID, TEXTOID};
	Datum		values[2] = {JsonbPGetDatum(body), CStringGetTextDatum(merchant->name)};
	uint64		added;

	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO qiwi_core_test_notified (id, amount, merchant)"
							  " SELECT $1->>'id', ($1->>'amount')::numeric, $2"
							  " ON CONFLICT (id) DO NOTHING",
							  2, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record a toy notification");
	added = SPI_processed;
	SPI_finish();
	return added;
}

/* Apply a toy notification once: NULL, or why it changed nothing */
static char *
toy_apply(Jsonb *body, const Merchant *merchant, bool *applied)
{
	char	   *id = NULL;
	char	   *problem = NULL;

	*applied = toy_record(body, merchant) == 1;
	if (*applied)
		return NULL;
	/* verified: its id is a string */
	(void) json_string(&body->root, "id", true, &id, &problem);
	return psprintf("duplicate: notification \"%s\" is already recorded", id);
}

/* Apply a toy notification, then fail: what it wrote must be undone */
static char *
toy_apply_failing(Jsonb *body, const Merchant *merchant, bool *applied)
{
	*applied = toy_record(body, merchant) == 1;
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("the toy's apply step fails after writing")));
}

/* The toy's notifications, as an API describes its own */
static const NotificationKind toy_notifications = {
	.trigger = "qiwi_core_test_notification_verify()",
	.rejected = "toy notification rejected",
	.reject_hint = "Only notifications signed with the bill_secret_key of the merchant they name are accepted.",
	.credential_column = "signature",
	.merchant_column = true,
	.merchant = toy_merchant,
	.verify = notification_verify_signature,
	.apply = toy_apply,
	.key = {&bill_option_secret_key, "bill_secret_key", "qiwi.secret_key", "secret",
			"no toy key to sign or verify with"},
	.signature = {SIGNATURE_SHA256, SIGNATURE_KEY_UTF8, SIGNATURE_HEX, 64},
	.signed_string = toy_signed_string,
};

/* qiwi_core_test_notification_verify(): the toy's trigger ('mark' or 'reject') */
Datum
qiwi_core_test_notification_verify(PG_FUNCTION_ARGS)
{
	return notification_trigger(fcinfo, &toy_notifications);
}

/* qiwi_core_test_notification_verify_failing(): the same, with an apply step that fails */
Datum
qiwi_core_test_notification_verify_failing(PG_FUNCTION_ARGS)
{
	NotificationKind failing = toy_notifications;

	failing.trigger = "qiwi_core_test_notification_verify_failing()";
	failing.apply = toy_apply_failing;
	return notification_trigger(fcinfo, &failing);
}

/* qiwi_core_test_sign_notification(body, secret, merchant): the toy signature of body */
Datum
qiwi_core_test_sign_notification(PG_FUNCTION_ARGS)
{
	SignatureKey *key = notification_argument_signer(fcinfo, 1, &toy_notifications);
	StringInfo	message = signature_message_buffer();
	char	   *problem = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("body must not be NULL")));
	if (!toy_signed_string(PG_GETARG_JSONB_P(0), message, &problem))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("toy notification cannot be signed: %s", problem)));
	PG_RETURN_TEXT_P(cstring_to_text(signature_sign(key, SIGNATURE_HEX, message->data, message->len)));
}
