/*
 * pull_notification.c
 *		Pull notifications (§3, §8, §9): the form parameters QIWI POSTs,
 *		stored by the web tier as a jsonb object of strings with the
 *		X-Api-Signature header or the Authorization header.  The signed
 *		string is the values of all parameters, empty ones kept, sorted by
 *		name in byte order and joined by '|'; the signature is the base64
 *		of its HMAC-SHA1 under the notification password.  The Basic
 *		alternative is base64(prv_id:notification password).  The core's
 *		trigger shell verifies, marks and applies them (forward only).
 */
#include "core/core.h"
#include "pull/pull.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(qiwi_pull_verify_notification);
PG_FUNCTION_INFO_V1(qiwi_pull_verify_basic_auth);
PG_FUNCTION_INFO_V1(qiwi_pull_notification_verify);
PG_FUNCTION_INFO_V1(qiwi_pull_notification_answer);

/* The length of a signature: the base64 of a 20-byte HMAC-SHA1 */
#define PULL_SIGNATURE_LENGTH 28

/* A parameter of a notification: its name in UTF-8 (the sort key) and its value */
typedef struct PullParam
{
	char	   *name;
	int			name_len;
	const char *value;
	int			value_len;
} PullParam;

/* Byte order of two parameters' names (a qsort comparator) */
static int
param_order(const void *a, const void *b)
{
	const PullParam *x = (const PullParam *) a;
	const PullParam *y = (const PullParam *) b;
	int			c = memcmp(x->name, y->name, Min(x->name_len, y->name_len));

	return c != 0 ? c : x->name_len - y->name_len;
}

/*
 * The signed string of a notification's parameters (a jsonb object of
 * strings); false with *problem when a value is not a string
 */
static bool
pull_signed_string(Jsonb *body, StringInfo buf, char **problem)
{
	int			n = JB_ROOT_COUNT(body);
	PullParam  *params;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			i = 0;

	if (!JB_ROOT_IS_OBJECT(body) || JB_ROOT_IS_SCALAR(body))
	{
		*problem = pstrdup("the parameters are not a JSON object");
		return false;
	}
	params = palloc(sizeof(PullParam) * Max(n, 1));
	it = JsonbIteratorInit(&body->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			params[i].name = pg_server_to_any(v.val.string.val, v.val.string.len, PG_UTF8);
			params[i].name_len = params[i].name == v.val.string.val ? (int) v.val.string.len :
				(int) strlen(params[i].name);
		}
		else if (tok == WJB_VALUE)
		{
			if (v.type != jbvString)
			{
				*problem = psprintf("parameter \"%.*s\" is not a string", params[i].name_len,
									params[i].name);
				return false;
			}
			params[i].value = v.val.string.val;
			params[i++].value_len = v.val.string.len;
		}
	}
	qsort(params, i, sizeof(PullParam), param_order);
	for (int k = 0; k < i; k++)
	{
		if (k > 0)
			appendStringInfoChar(buf, '|');
		signature_append_utf8(buf, params[k].value, params[k].value_len);
	}
	return true;
}

/* A NotificationVerifier: a Basic Authorization header, or an X-Api-Signature */
static bool
pull_verify(const NotificationKind *kind, const Merchant *merchant, text *credential,
			Jsonb *body, char **problem)
{
	const char *given = VARDATA_ANY(credential);
	int			len = VARSIZE_ANY_EXHDR(credential);

	const char *prv_id = merchant_value(merchant, pull_option_prv_id);
	const char *password = merchant_value(merchant, pull_option_notification_password);

	if (len < 6 || pg_strncasecmp(given, "Basic ", 6) != 0)
		return notification_verify_signature(kind, merchant, credential, body, problem);
	if (password == NULL)
	{
		*problem = psprintf("merchant \"%s\" has no pull_notification_password to verify with",
							merchant->name);
		return false;
	}
	if (http_basic_authorization_matches(prv_id, password, given, len))
		return true;
	*problem = pstrdup("the Basic authorization does not match");
	return false;
}

/* The merchant whose pull_prv_id the web tier stored beside a notification */
static const Merchant *
pull_notification_merchant(Jsonb *body, const char *site, char **problem)
{
	const Merchant *merchant;

	if (site == NULL)
	{
		*problem = pstrdup("the notification has no prv_id");
		return NULL;
	}
	merchant = merchant_by_option(pull_option_prv_id, site, problem);
	/* the default merchant has no Pull project: no merchant has this one */
	if (merchant != NULL && merchant->server == InvalidOid)
	{
		*problem = psprintf("no merchant has pull_prv_id \"%s\"", site);
		return NULL;
	}
	return merchant;
}

/* A string parameter of a notification, or NULL */
static char *
param(Jsonb *body, const char *name)
{
	char	   *value = NULL;
	char	   *problem = NULL;

	(void) json_string(&body->root, name, false, &value, &problem);
	return value;
}

/*
 * Apply a verified notification (a NotificationApplier): the bill it
 * names recorded forward only, as the reconciler's answer would be; a
 * repeat or a step back changes nothing
 */
static char *
pull_apply(Jsonb *body, const Merchant *merchant, bool *applied)
{
	PullBill	bill;
	char	   *amount = param(body, "amount");
	char	   *notified;

	memset(&bill, 0, sizeof(bill));
	bill.merchant = merchant->name;
	bill.bill_id = param(body, "bill_id");
	bill.currency = param(body, "ccy");
	bill.status = notified = param(body, "status");
	bill.user = param(body, "user");
	bill.comment = param(body, "comment");
	bill.error = param(body, "error");
	*applied = false;
	if (bill.bill_id == NULL || amount == NULL || bill.currency == NULL || bill.status == NULL)
		return pstrdup("the notification lacks bill_id, amount, ccy or status");
	bill.amount = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(amount),
													  ObjectIdGetDatum(InvalidOid),
													  Int32GetDatum(-1)));
	*applied = pull_store_bill(&bill, LEDGER_BY_NOTIFICATION);
	if (strcmp(bill.status, notified) != 0)
		return psprintf("the bill is %s already: %s not recorded", bill.status, notified);
	return *applied ? NULL : psprintf("a duplicate: the bill is %s already", notified);
}

/* Pull notifications as the core's trigger shell sees them */
static const NotificationKind pull_notifications = {
	.trigger = "qiwi_pull_notification_verify()",
	.rejected = "QIWI Pull notification rejected",
	.reject_hint = "Store the X-Api-Signature header, or the Authorization header, in credential and the project's id in prv_id.",
	.credential_column = "credential",
	.site_column = "prv_id",
	.merchant_column = true,
	.merchant = pull_notification_merchant,
	.verify = pull_verify,
	.apply = pull_apply,
	.key = {&pull_option_notification_password, "pull_notification_password", NULL, "password",
	"no Pull notification password to verify the signature with"},
	.signature = {SIGNATURE_SHA1, SIGNATURE_KEY_UTF8, SIGNATURE_BASE64, PULL_SIGNATURE_LENGTH},
	.signed_string = pull_signed_string,
};

/*
 * qiwi_pull_verify_notification(params, signature, password, merchant): is
 * the X-Api-Signature of these parameters QIWI's?  The password argument,
 * else the merchant's pull_notification_password; NULL if params or
 * signature is NULL
 */
Datum
qiwi_pull_verify_notification(PG_FUNCTION_ARGS)
{
	SignatureKey *key = notification_argument_signer(fcinfo, 2, &pull_notifications);
	text	   *signature;
	char	   *problem = NULL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	signature = PG_GETARG_TEXT_PP(1);
	PG_RETURN_BOOL(notification_signature_holds(&pull_notifications, key, VARDATA_ANY(signature),
												VARSIZE_ANY_EXHDR(signature), PG_GETARG_JSONB_P(0),
												&problem));
}

/*
 * qiwi_pull_verify_basic_auth(authorization, prv_id, password, merchant):
 * is this Authorization header the project id and notification password
 * given, else the merchant's pull_prv_id and pull_notification_password?
 */
Datum
qiwi_pull_verify_basic_auth(PG_FUNCTION_ARGS)
{
	const Merchant *merchant = arg_merchant(fcinfo, 3);
	char	   *prv_id = arg_optional_text(fcinfo, 1, "prv_id");
	char	   *password = arg_optional_text(fcinfo, 2, "password");
	text	   *authorization;

	if (prv_id == NULL)
		prv_id = (char *) merchant_value(merchant, pull_option_prv_id);
	if (password == NULL)
		password = (char *) merchant_value(merchant, pull_option_notification_password);
	if (prv_id == NULL || password == NULL || password[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no Pull project id and notification password to verify the authorization with"),
				 errdetail("The prv_id or password argument is NULL and merchant \"%s\" has no %s.",
						   merchant->name, prv_id == NULL ? "pull_prv_id" : "pull_notification_password")));
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	authorization = PG_GETARG_TEXT_PP(0);
	PG_RETURN_BOOL(http_basic_authorization_matches(prv_id, password, VARDATA_ANY(authorization),
													VARSIZE_ANY_EXHDR(authorization)));
}

/*
 * qiwi_pull_notification_verify(): BEFORE INSERT trigger on a table with
 * columns credential text, body jsonb, prv_id text, merchant text,
 * verified boolean, applied boolean, error text (the core's shell)
 */
Datum
qiwi_pull_notification_verify(PG_FUNCTION_ARGS)
{
	return notification_trigger(fcinfo, &pull_notifications);
}

/*
 * qiwi_pull_notification_answer(result_code): the XML QIWI expects back,
 * for the web tier: 0 taken, 5 bad parameters, 13 busy, 150 or 151 refused
 * credentials, 300 a temporary failure
 */
Datum
qiwi_pull_notification_answer(PG_FUNCTION_ARGS)
{
	int32		code;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("result_code must not be NULL")));
	code = PG_GETARG_INT32(0);
	if (code != 0 && code != 5 && code != 13 && code != 150 && code != 151 && code != 300)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("result_code must be 0, 5, 13, 150, 151 or 300"),
				 errdetail("These are the codes of a notification's answer in QIWI's documents.")));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("<?xml version=\"1.0\"?><result><result_code>%d</result_code></result>",
											  code)));
}
