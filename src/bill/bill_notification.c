/*
 * bill_notification.c
 *		Bill Payments notifications: the string QIWI signs, the SQL functions
 *		that sign and verify, and the trigger that verifies stored
 *		notifications and applies them to qiwi_bills.
 *
 * The signed string is amount.currency|amount.value|billId|siteId|status.value
 * of the notification's "bill", with amount.value written with exactly two
 * decimals; the signature is the lowercase hex HMAC-SHA256 of it, keyed
 * with the secret key's UTF-8 bytes (seed 001, and all four official SDKs).
 */
#include "core/core.h"
#include "bill/bill.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/guc.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(qiwi_verify_signature);
PG_FUNCTION_INFO_V1(qiwi_sign_notification);
PG_FUNCTION_INFO_V1(qiwi_notification_verify);

/* qiwi.site_id: the shop's siteId; notifications for another are not applied */
char	   *qiwi_site_id = NULL;


/* The length of a notification's signature: the hex of an HMAC-SHA256 */
#define NOTIFICATION_SIGNATURE_LENGTH 64

/* The signer keyed with secret (len bytes), or when it is NULL with the merchant's key */
static SignatureKey *
notification_key(const char *secret, int len, const Merchant *merchant)
{
	if (secret == NULL)
	{
		secret = merchant_value(merchant, bill_option_secret_key);
		len = secret ? strlen(secret) : 0;
	}
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no secret key to sign or verify with"),
				 merchant->server == InvalidOid ?
				 errdetail("The secret argument is NULL or empty and qiwi.secret_key is not set.") :
				 errdetail("The secret argument is NULL or empty and merchant \"%s\" has no bill_secret_key.",
						   merchant->name)));
	return signature_key(SIGNATURE_SHA256, SIGNATURE_KEY_UTF8, secret, len);
}

/*
 * The signer of a SQL function: its secret argument (argno), else the key of
 * its merchant argument (argno + 1; NULL: the default merchant)
 */
static SignatureKey *
argument_key(FunctionCallInfo fcinfo, int argno)
{
	const Merchant *merchant = merchant_for_call(PG_NARGS() > argno + 1 && !PG_ARGISNULL(argno + 1) ?
												 text_to_cstring(PG_GETARG_TEXT_PP(argno + 1)) : NULL);

	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
	{
		text	   *arg = PG_GETARG_TEXT_PP(argno);

		return notification_key(VARDATA_ANY(arg), VARSIZE_ANY_EXHDR(arg), merchant);
	}
	return notification_key(NULL, 0, merchant);
}

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

/*
 * Check a signature against a notification under key.  Hex case is
 * ignored; the comparison takes the same time wherever they differ.
 */
static bool
signature_matches(SignatureKey *key, const char *signature, int len, Jsonb *notification,
				  char **problem)
{
	StringInfo	message = signature_message_buffer();

	if (!signed_string(notification, message, problem))
		return false;
	if (len != NOTIFICATION_SIGNATURE_LENGTH)
	{
		*problem = pstrdup("the signature is not 64 hex digits");
		return false;
	}
	if (!signature_verify(key, SIGNATURE_HEX, message->data, message->len, signature, len))
	{
		*problem = pstrdup("the signature does not match");
		return false;
	}
	return true;
}

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
	key = argument_key(fcinfo, 2);
	PG_RETURN_BOOL(signature_matches(key, VARDATA_ANY(signature), VARSIZE_ANY_EXHDR(signature),
									 PG_GETARG_JSONB_P(1), &problem));
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
	key = argument_key(fcinfo, 1);
	message = signature_message_buffer();
	if (!signed_string(PG_GETARG_JSONB_P(0), message, &problem))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("notification cannot be signed: %s", problem)));
	PG_RETURN_TEXT_P(cstring_to_text(signature_sign(key, SIGNATURE_HEX, message->data, message->len)));
}

/* ---------- the trigger ---------- */

/* Column numbers of a notification table */
typedef struct NotificationColumns
{
	int			signature;
	int			body;
	NotificationVerdictColumns verdict;	/* verified, applied, error */
} NotificationColumns;

/*
 * The merchant a notification is for: the one whose bill_site_id is its
 * siteId (the default merchant's is qiwi.site_id); NULL with *problem if
 * none is, or if the merchant has no key to verify with.
 */
static const Merchant *
notification_merchant(Jsonb *body, char **problem)
{
	JsonbValue *bill_value = getKeyJsonValueFromContainer(&body->root, "bill", 4, NULL);
	char	   *site_id = NULL;
	const Merchant *merchant;

	/* a malformed notification is refused by the signed-string check */
	if (bill_value != NULL && bill_value->type == jbvBinary &&
		JsonContainerIsObject(bill_value->val.binary.data))
		(void) json_identifier(bill_value->val.binary.data, "siteId", &site_id, problem);
	merchant = merchant_by_option(bill_option_site_id, site_id ? site_id : "", problem);
	if (merchant == NULL)
		return NULL;
	if (merchant->server != InvalidOid &&
		merchant_value(merchant, bill_option_secret_key) == NULL)
	{
		*problem = psprintf("merchant \"%s\" has no bill_secret_key to verify with", merchant->name);
		return NULL;
	}
	return merchant;
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

	switch (store_bill(&bill, SOURCE_NOTIFICATION, &stored))
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

/*
 * qiwi_notification_verify(): BEFORE INSERT trigger on a table with columns
 * signature text, body jsonb, verified boolean, applied boolean, error text.
 * Argument 'mark' (default) stores an unverifiable notification with the
 * reason; 'reject' makes its INSERT fail.
 */
Datum
qiwi_notification_verify(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	HeapTuple	tuple;
	NotificationColumns col;
	bool		reject = false;
	bool		isnull;
	Datum		d;
	char	   *problem = NULL;
	bool		verified = false;
	Jsonb	   *body = NULL;
	const Merchant *merchant = NULL;

	reject = arg_notification_trigger_rejects(fcinfo, "qiwi_notification_verify()");

	rel = trigdata->tg_relation;
	tuple = trigdata->tg_trigtuple;
	col.signature = arg_trigger_column(rel, "signature", TEXTOID, "qiwi_notification_verify()");
	col.body = arg_trigger_column(rel, "body", JSONBOID, "qiwi_notification_verify()");
	col.verdict.verified = arg_trigger_column(rel, "verified", BOOLOID, "qiwi_notification_verify()");
	col.verdict.applied = arg_trigger_column(rel, "applied", BOOLOID, "qiwi_notification_verify()");
	col.verdict.error = arg_trigger_column(rel, "error", TEXTOID, "qiwi_notification_verify()");
	col.verdict.merchant = 0;	/* the bill's siteId says whose it is */

	d = SPI_getbinval(tuple, RelationGetDescr(rel), col.body, &isnull);
	if (isnull)
		problem = pstrdup("the notification has no body");
	else
	{
		body = DatumGetJsonbP(d);
		d = SPI_getbinval(tuple, RelationGetDescr(rel), col.signature, &isnull);
		if (isnull)
			problem = pstrdup("the notification has no signature");
		else
		{
			text	   *signature = DatumGetTextPP(d);

			merchant = notification_merchant(body, &problem);
			if (merchant != NULL)
				verified = signature_matches(notification_key(NULL, 0, merchant),
											 VARDATA_ANY(signature), VARSIZE_ANY_EXHDR(signature),
											 body, &problem);
		}
	}

	if (!verified && reject)
		ereport(ERROR,
				(errcode(ERRCODE_QIWI_BAD_SIGNATURE),
				 errmsg("QIWI notification rejected: %s", problem),
				 errhint("Only notifications signed with qiwi.secret_key are accepted.")));
	return PointerGetDatum(qiwi_notification_verdict(rel, tuple, &col.verdict, verified, problem,
													 apply_notification, body, merchant));
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
