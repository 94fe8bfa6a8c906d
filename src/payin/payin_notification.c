/*
 * payin_notification.c
 *		The signatures of Payin notifications (qiwi-api.md §2 and §8): hex
 *		HMAC-SHA256, keyed with the merchant's notification key, over the
 *		documented fields of the notification's object joined by '|', the
 *		amount written with exactly two decimals and dates exactly as
 *		received; and what the core's trigger shell (core/notification.c)
 *		needs to verify stored notifications and apply them to the
 *		qiwi_payin_* tables: the merchant a row names and the apply step.
 */
#include "core/core.h"
#include "payin/payin.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(qiwi_payin_verify_signature);
PG_FUNCTION_INFO_V1(qiwi_payin_notification_verify);

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

/* Append a string field of object (NULL: missing) and a '|'; false with *problem if it cannot be signed */
static inline bool
append_field(StringInfo buf, JsonbContainer *object, const char *key, const char *path,
			 char **problem)
{
	JsonbValue	found;

	return signature_append_field(buf, object ? getKeyJsonValueFromContainer(object, key, strlen(key),
																			  &found) : NULL,
								  false, path, problem);
}

/* Build the string QIWI signs for a notification; false with *problem */
static bool
payin_signed_string(Jsonb *notification, StringInfo buf, char **problem)
{
	JsonbContainer *object = NULL;
	const SignedType *kind = NULL;
	JsonbValue	found;
	JsonbValue *type = JB_ROOT_IS_OBJECT(notification) ?
		getKeyJsonValueFromContainer(&notification->root, "type", 4, &found) : NULL;

	if (type == NULL || type->type != jbvString)
	{
		*problem = pstrdup("the notification has no \"type\"");
		return false;
	}
	for (size_t i = 0; i < lengthof(signed_types) && kind == NULL; i++)
		if (strlen(signed_types[i].type) == (size_t) type->val.string.len &&
			memcmp(signed_types[i].type, type->val.string.val, type->val.string.len) == 0)
			kind = &signed_types[i];
	if (kind == NULL)
	{
		*problem = psprintf("notification type \"%s\" has no documented signature",
							pnstrdup(type->val.string.val, type->val.string.len));
		return false;
	}
	object = json_object_member(&notification->root, kind->member);
	if (object == NULL)
	{
		*problem = psprintf("the notification has no \"%s\" object", kind->member);
		return false;
	}
	if (kind->id_key != NULL)
	{
		JsonbContainer *amount = json_object_member(object, "amount");
		JsonbValue	value_found;
		JsonbValue *value = amount ?
			getKeyJsonValueFromContainer(amount, "value", 5, &value_found) : NULL;

		/* the amount as QIWI signs it: exactly two decimals, never rounded */
		if (!append_field(buf, object, kind->id_key, kind->id_key, problem) ||
			!append_field(buf, object, "createdDateTime", "createdDateTime", problem) ||
			!signature_append_amount(buf, value, object, PAYIN_MAX_AMOUNT, problem))
			return false;
		signature_end_message(buf);
		return true;
	}
	if (strcmp(kind->type, "TOKEN") == 0)
	{
		JsonbContainer *status = json_object_member(object, "status");

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
	signature_end_message(buf);
	return true;
}

/* ---------- the trigger ---------- */

/*
 * The site a notification is for: the site_id the web tier stored (it
 * knows at which of its URLs the notification arrived), else a TOKEN's
 * merchantSiteUid; NULL with *problem if neither names one, or if they
 * name two.
 */
static char *
notification_site(const char *stored, Jsonb *body, char **problem)
{
	/* only an object has members: an array's entries are no key/value pairs */
	JsonbValue *token = JB_ROOT_IS_OBJECT(body) ?
		getKeyJsonValueFromContainer(&body->root, "token", 5, NULL) : NULL;
	char	   *named = NULL;

	if (token != NULL && token->type == jbvBinary &&
		JsonContainerIsObject(token->val.binary.data) &&
		!json_string(token->val.binary.data, "merchantSiteUid", false, &named, problem))
		return NULL;
	if (stored != NULL && named != NULL && strcmp(stored, named) != 0)
	{
		*problem = psprintf("site_id \"%s\" is not the notification's merchantSiteUid \"%s\"",
							stored, named);
		return NULL;
	}
	if (stored == NULL && named == NULL)
	{
		*problem = pstrdup("the notification names no site: site_id is NULL");
		return NULL;
	}
	return stored ? pstrdup(stored) : named;
}

/*
 * What a verified PAYMENT, CAPTURE or REFUND notification does: QIWI signs
 * only its id, date and amount, not its type, status or invoice, so it
 * records no money.  It makes its invoice (the payment's, if the tables
 * know the payment) due for a check at once, and QIWI's answer decides;
 * its row says so.
 */
static char *
notified_unconfirmed(const PayinNotice *notice, const Merchant *merchant)
{
	const char *payment_id = notice->kind == PAYIN_NOTICE_PAYMENT ?
		notice->payment.payment_id : notice->operation.payment_id;
	const char *bill_id = notice->kind == PAYIN_NOTICE_PAYMENT ? notice->payment.bill_id : NULL;
	char	   *notified = payin_store_notified(merchant->name, payment_id, bill_id);

	if (notified == NULL)
		return psprintf("unconfirmed: no open or paid invoice of payment \"%s\" in qiwi_payin_invoices; nothing recorded (QIWI signs only a %s's id, date and amount)",
						payment_id, notice->type);
	reconciler_wake_at_commit();
	return psprintf("unconfirmed: invoice \"%s\" is due for a check with QIWI, whose answer decides (QIWI signs only a %s's id, date and amount)",
					notified, notice->type);
}

/*
 * Describe what applying a merchant's verified notification did, or NULL
 * if it moved the tables forward (*applied)
 */
static char *
apply_notification(Jsonb *body, const Merchant *merchant, bool *applied)
{
	PayinNotice notice;
	char	   *problem = NULL;

	*applied = false;
	if (!payin_parse_notification(body, &notice, &problem))
		return psprintf("verified but not applied: %s", problem);
	if (notice.kind == PAYIN_NOTICE_TOKEN)
	{
		notice.token.merchant = merchant->name;
		if (strcmp(notice.token.status, "CREATED") != 0)
			return psprintf("no token: QIWI refused to bind a card for account \"%s\" (%s)",
							notice.token.account, notice.token.status);
		if (payin_store_token(&notice.token, LEDGER_BY_NOTIFICATION))
		{
			*applied = true;
			return NULL;
		}
		return psprintf("duplicate: the token for account \"%s\" is already recorded",
						notice.token.account);
	}
	if (notice.kind == PAYIN_NOTICE_CHECK_CARD)
	{
		PayinCardCheck *check = &notice.check;

		check->merchant = merchant->name;
		check->token.merchant = merchant->name;
		*applied = payin_store_card_check(check, LEDGER_BY_NOTIFICATION);
		/* the token a check bound may have come first in its TOKEN notification */
		if (check->has_token && payin_store_token(&check->token, LEDGER_BY_NOTIFICATION))
			*applied = true;
		if (*applied)
			return NULL;
		return psprintf("duplicate: card check \"%s\" is already recorded", check->request_uid);
	}
	return notified_unconfirmed(&notice, merchant);
}

/*
 * The merchant a notification is for: the one whose payin_site_id is the
 * site the row names (notification_site); NULL with *problem
 */
static const Merchant *
notification_merchant(Jsonb *body, const char *site, char **problem)
{
	char	   *site_id = notification_site(site, body, problem);

	return site_id ? merchant_by_option(payin_option_site_id, site_id, problem) : NULL;
}

/* Payin notifications, for the core's trigger shell */
static const NotificationKind payin_notifications = {
	.trigger = "qiwi_payin_notification_verify()",
	.rejected = "QIWI Payin notification rejected",
	.reject_hint = "Only notifications signed with the payin_notification_key of the merchant whose payin_site_id they name are accepted.",
	.credential_column = "signature",
	.site_column = "site_id",
	.merchant_column = true,
	.merchant = notification_merchant,
	.verify = notification_verify_signature,
	.apply = apply_notification,
	.key = {&payin_option_notification_key, "payin_notification_key", NULL, "key",
			"no Payin notification key to verify with"},
	.signature = {SIGNATURE_SHA256, SIGNATURE_KEY_UTF8, SIGNATURE_HEX, PAYIN_SIGNATURE_LENGTH},
	.signed_string = payin_signed_string,
};

/*
 * qiwi_payin_verify_signature(signature, notification, key, merchant): is
 * the notification QIWI's?  The key argument, else the merchant's
 * payin_notification_key; NULL if signature or notification is NULL
 */
Datum
qiwi_payin_verify_signature(PG_FUNCTION_ARGS)
{
	SignatureKey *key = notification_argument_signer(fcinfo, 2, &payin_notifications);
	text	   *signature;
	char	   *problem = NULL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	signature = PG_GETARG_TEXT_PP(0);
	PG_RETURN_BOOL(notification_signature_holds(&payin_notifications, key, VARDATA_ANY(signature),
												VARSIZE_ANY_EXHDR(signature), PG_GETARG_JSONB_P(1),
												&problem));
}

/*
 * qiwi_payin_notification_verify(): BEFORE INSERT trigger on a table with
 * columns signature text, body jsonb, site_id text, merchant text,
 * verified boolean, applied boolean, error text.  It verifies with the
 * payin_notification_key of the merchant whose payin_site_id the row
 * names, and applies a verified notification in a subtransaction (whatever
 * it holds, the row is stored, marked with the reason).  Argument 'mark'
 * (default) stores an unverifiable notification with the reason; 'reject'
 * makes its INSERT fail.
 */
Datum
qiwi_payin_notification_verify(PG_FUNCTION_ARGS)
{
	return notification_trigger(fcinfo, &payin_notifications);
}
