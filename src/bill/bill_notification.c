/*
 * bill_notification.c
 *		Bill Payments notifications: the string QIWI signs, the SQL functions
 *		that sign and verify, and what the core's trigger shell
 *		(core/notification.c) needs to verify stored notifications and apply
 *		them to qiwi_bills: the merchant a notification names and the apply
 *		step.
 *
 * The signed string is amount.currency|amount.value|billId|siteId|status.value
 * of the notification's "bill", with amount.value written with exactly two
 * decimals; the signature is the lowercase hex HMAC-SHA256 of it, keyed
 * with the secret key's UTF-8 bytes (seed 001, and all four official SDKs).
 */
#include "core/core.h"
#include "bill/bill.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(qiwi_verify_signature);
PG_FUNCTION_INFO_V1(qiwi_sign_notification);
PG_FUNCTION_INFO_V1(qiwi_notification_verify);

/* qiwi.site_id: the shop's siteId; notifications for another are not applied */
char	   *qiwi_site_id = NULL;


/* The length of a notification's signature: the hex of an HMAC-SHA256 */
#define NOTIFICATION_SIGNATURE_LENGTH 64

/*
 * Build the string QIWI signs from a notification; false with *problem
 * when a signed field is missing or the amount is not a money amount.
 */
static bool
signed_string(Jsonb *notification, StringInfo buf, char **problem)
{
	JsonbContainer *bill;
	JsonbContainer *amount;
	JsonbContainer *status;
	JsonbValue	found;

	if (!JB_ROOT_IS_OBJECT(notification) ||
		(bill = json_object_member(&notification->root, "bill")) == NULL)
	{
		*problem = pstrdup("the notification has no \"bill\" object");
		return false;
	}
	if ((amount = json_object_member(bill, "amount")) == NULL)
	{
		*problem = pstrdup("bill.amount is missing");
		return false;
	}
	if (!signature_append_field(buf, getKeyJsonValueFromContainer(amount, "currency", 8, &found),
								false, "bill.amount.currency", problem))
		return false;
	if (!signature_append_amount(buf, getKeyJsonValueFromContainer(amount, "value", 5, &found), bill,
								 QIWI_MAX_AMOUNT, problem))
		return false;
	if (!signature_append_field(buf, getKeyJsonValueFromContainer(bill, "billId", 6, &found),
								false, "bill.billId", problem) ||
		!signature_append_field(buf, getKeyJsonValueFromContainer(bill, "siteId", 6, &found),
								true, "bill.siteId", problem))
		return false;
	if ((status = json_object_member(bill, "status")) == NULL)
	{
		*problem = pstrdup("bill.status is missing");
		return false;
	}
	if (!signature_append_field(buf, getKeyJsonValueFromContainer(status, "value", 5, &found),
								false, "bill.status.value", problem))
		return false;
	signature_end_message(buf);
	return true;
}

/* ---------- the trigger ---------- */

/*
 * The merchant a notification is for: the one whose bill_site_id is its
 * siteId (the default merchant's is qiwi.site_id); NULL with *problem if
 * none is
 */
static const Merchant *
notification_merchant(Jsonb *body, const char *site, char **problem)
{
	JsonbValue *bill_value = getKeyJsonValueFromContainer(&body->root, "bill", 4, NULL);
	char	   *site_id = NULL;

	/* a malformed notification is refused by the signed-string check */
	if (bill_value != NULL && bill_value->type == jbvBinary &&
		JsonContainerIsObject(bill_value->val.binary.data))
		(void) json_identifier(bill_value->val.binary.data, "siteId", &site_id, problem);
	return merchant_by_option(bill_option_site_id, site_id ? site_id : "", problem);
}

/* Describe what applying a merchant's verified notification did, or NULL if it changed the bill */
static char *
apply_notification(Jsonb *body, const Merchant *merchant, bool *applied)
{
	JsonbValue *bill_value;
	QiwiBill	bill;
	char	   *problem = NULL;
	StoredBill	stored;

	*applied = false;
	bill_value = getKeyJsonValueFromContainer(&body->root, "bill", 4, NULL);
	if (!qiwi_parse_bill_object(bill_value->val.binary.data, &bill, &problem))
		return psprintf("verified but not applied: %s", problem);
	bill.merchant = merchant->name;

	switch (store_bill(&bill, LEDGER_BY_NOTIFICATION, &stored))
	{
		case STORE_INSERTED:
		case STORE_ADVANCED:
			*applied = true;
			return NULL;
		case STORE_DUPLICATE:
		case STORE_REFRESHED:
			return psprintf("duplicate: bill \"%s\" is already %s", bill.bill_id, stored.status);
		case STORE_MISMATCH:
			return psprintf("amount mismatch: the notification says %s %s %s, the shop's bill \"%s\" is for %s %s; %s",
							bill.status, qiwi_format_amount(bill.amount), bill.currency,
							bill.bill_id, qiwi_format_amount(stored.amount), stored.currency,
							stored.moved ?
							"the bill is flagged MISMATCH" : psprintf("the bill stays %s", stored.status));
		case STORE_FOREIGN_SITE:
			return psprintf("verified but not applied: bill \"%s\" belongs to another site than siteId \"%s\"",
							bill.bill_id, bill.site_id);
		case STORE_STALE:
			break;
	}
	return psprintf("out of order: bill \"%s\" is already %s; the notification says %s",
					bill.bill_id, stored.status, bill.status);
}

/* Bill Payments notifications, for the core's trigger shell */
static const NotificationKind bill_notifications = {
	.trigger = "qiwi_notification_verify()",
	.rejected = "QIWI notification rejected",
	.reject_hint = "Only notifications signed with qiwi.secret_key are accepted.",
	.credential_column = "signature",
	.merchant = notification_merchant,	/* the bill's siteId says whose it is */
	.verify = notification_verify_signature,
	.apply = apply_notification,
	.key = {&bill_option_secret_key, BILL_SECRET_KEY_OPTION, "qiwi.secret_key", "secret",
			"no secret key to sign or verify with"},
	.signature = {SIGNATURE_SHA256, SIGNATURE_KEY_UTF8, SIGNATURE_HEX, NOTIFICATION_SIGNATURE_LENGTH},
	.signed_string = signed_string,
};

/* qiwi_verify_signature(signature, notification, secret): is it QIWI's? */
Datum
qiwi_verify_signature(PG_FUNCTION_ARGS)
{
	char	   *problem = NULL;
	text	   *signature;
	SignatureKey *key;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	signature = PG_GETARG_TEXT_PP(0);
	key = notification_argument_signer(fcinfo, 2, &bill_notifications);
	PG_RETURN_BOOL(notification_signature_holds(&bill_notifications, key, VARDATA_ANY(signature),
												VARSIZE_ANY_EXHDR(signature), PG_GETARG_JSONB_P(1),
												&problem));
}

/* qiwi_sign_notification(notification, secret): the signature QIWI would send */
Datum
qiwi_sign_notification(PG_FUNCTION_ARGS)
{
	StringInfo	message;
	char	   *problem = NULL;
	SignatureKey *key;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("notification must not be NULL")));
	key = notification_argument_signer(fcinfo, 1, &bill_notifications);
	message = signature_message_buffer();
	if (!signed_string(PG_GETARG_JSONB_P(0), message, &problem))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("notification cannot be signed: %s", problem)));
	PG_RETURN_TEXT_P(cstring_to_text(signature_sign(key, SIGNATURE_HEX, message->data, message->len)));
}

/*
 * qiwi_notification_verify(): BEFORE INSERT trigger on a table with columns
 * signature text, body jsonb, verified boolean, applied boolean, error text.
 * Argument 'mark' (default) stores an unverifiable notification with the
 * reason; 'reject' makes its INSERT fail.
 */
Datum
qiwi_notification_verify(PG_FUNCTION_ARGS)
{
	return notification_trigger(fcinfo, &bill_notifications);
}

/* Define the notification settings (from _PG_init) */
void
notification_init(void)
{
	DefineCustomStringVariable("qiwi.site_id",
							   "The shop's QIWI siteId.",
							   "A verified notification for another siteId is stored but not applied. Empty: not checked.",
							   &qiwi_site_id,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
}
