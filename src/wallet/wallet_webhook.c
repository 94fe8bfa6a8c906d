/*
 * wallet_webhook.c
 *		Wallet webhooks (qiwi-api.md §4, §8, §9): hash is the hex HMAC-SHA256,
 *		keyed with the base64-decoded hook key, of the values signFields names
 *		joined by '|', verified here and by the core's trigger shell; the
 *		hook's registration and key.  A JSON number is signed with no trailing
 *		zeros (1.00 as "1", 1.50 as "1.5"), as JSON clients print it.
 */
#include "core/core.h"
#include "wallet/wallet.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(qiwi_wallet_verify_webhook);
PG_FUNCTION_INFO_V1(qiwi_wallet_webhook_verify);
PG_FUNCTION_INFO_V1(qiwi_wallet_webhook_register);
PG_FUNCTION_INFO_V1(qiwi_wallet_webhook);
PG_FUNCTION_INFO_V1(qiwi_wallet_webhook_delete);
PG_FUNCTION_INFO_V1(qiwi_wallet_webhook_test);
PG_FUNCTION_INFO_V1(qiwi_wallet_webhook_fetch_key);

/* The hash: the lowercase hex of a 32-byte HMAC-SHA256 */
#define WALLET_HASH_LENGTH		64

/* The merchant option holding the hook's key (base64, as QIWI gives it) */
int			wallet_option_webhook_key;
static const NotificationKind wallet_webhooks;

/* The signed string: the values signFields names ("sum.amount"), joined by '|'; false with *problem */
static bool
wallet_signed_string(Jsonb *body, StringInfo buf, char **problem)
{
	JsonbValue	payment;
	JsonbValue	fields;

	if (!JB_ROOT_IS_OBJECT(body) || JB_ROOT_IS_SCALAR(body) ||
		getKeyJsonValueFromContainer(&body->root, "payment", 7, &payment) == NULL ||
		payment.type != jbvBinary || !JsonContainerIsObject(payment.val.binary.data) ||
		getKeyJsonValueFromContainer(payment.val.binary.data, "signFields", 10, &fields) == NULL ||
		fields.type != jbvString)
	{
		*problem = psprintf("the webhook has no payment with a signFields string");
		return false;
	}
	/* the list is read once for all webhooks that carry it */
	if (!signature_append_paths(buf, signature_paths(fields.val.string.val, fields.val.string.len),
								payment.val.binary.data, "payment", problem))
		return false;
	signature_end_message(buf);
	return true;
}

/* Does the body's hash hold under key?  false with *problem when not */
static bool
webhook_hash_holds(SignatureKey *key, Jsonb *body, char **problem)
{
	JsonbValue	value;
	JsonbValue *hash = JB_ROOT_IS_OBJECT(body) && !JB_ROOT_IS_SCALAR(body) ?
		getKeyJsonValueFromContainer(&body->root, "hash", 4, &value) : NULL;

	if (hash == NULL || hash->type != jbvString)
	{
		*problem = pstrdup(hash == NULL || hash->type == jbvNull ? "the webhook has no hash" :
						   "the webhook's hash is not a string");
		return false;
	}
	return notification_signature_holds(&wallet_webhooks, key, hash->val.string.val,
										hash->val.string.len, body, problem);
}

/* qiwi_wallet_verify_webhook(body, key_base64, merchant): does the hash hold?  NULL for NULL */
Datum
qiwi_wallet_verify_webhook(PG_FUNCTION_ARGS)
{
	SignatureKey *key = notification_argument_signer(fcinfo, 1, &wallet_webhooks);
	char	   *problem = NULL;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(webhook_hash_holds(key, PG_GETARG_JSONB_P(0), &problem));
}

/* ---------- the stored webhooks: qiwi_wallet_webhooks and its trigger ---------- */

/* The merchant whose wallet_number is the payment's personId */
static const Merchant *
webhook_merchant(Jsonb *body, const char *site, char **problem)
{
	JsonbContainer *payment = JB_ROOT_IS_OBJECT(body) && !JB_ROOT_IS_SCALAR(body) ?
		json_object_member(&body->root, "payment") : NULL;
	char	   *person = NULL;
	const Merchant *merchant = NULL;

	if (payment == NULL || !json_identifier(payment, "personId", &person, problem) || person == NULL)
		*problem = *problem ? *problem : pstrdup("the webhook has no payment with a personId");
	else if ((merchant = merchant_by_option(wallet_option_number, person, problem)) != NULL &&
			 merchant->server == InvalidOid)
	{
		/* the default merchant has no wallet: no merchant has this one */
		*problem = psprintf("no merchant has wallet_number \"%s\"", person);
		merchant = NULL;
	}
	return merchant;
}

/* A NotificationVerifier: the body's hash under the merchant's wallet_webhook_key */
static bool
webhook_verify(const NotificationKind *kind, const Merchant *merchant, text *credential,
			   Jsonb *body, char **problem)
{
	if (merchant_value(merchant, wallet_option_webhook_key) == NULL)
	{
		*problem = psprintf("merchant \"%s\" has no wallet_webhook_key to verify with",
							merchant->name);
		return false;
	}
	return webhook_hash_holds(notification_signer(kind, merchant, NULL, 0), body, problem);
}

/* Does a webhook say test: true? */
static bool
is_test(Jsonb *body)
{
	JsonbValue *test = JB_ROOT_IS_OBJECT(body) && !JB_ROOT_IS_SCALAR(body) ?
		json_field(&body->root, "test") : NULL;

	return test != NULL && test->type == jbvBool && test->val.boolean;
}

/*
 * Record a payment forward only (a WAITING one may become final), unless its
 * messageId was stored before; as the owner.  Whether it wrote; *status the
 * payment's status now, NULL for a message seen before.
 */
static bool
record_payment(const char *merchant, const char *message_id, const WalletPayment *p, char **status)
{
	Oid			types[17] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, NUMERICOID,
	TEXTOID, NUMERICOID, NUMERICOID, INT4OID, TEXTOID, TEXTOID, INT4OID, TEXTOID, JSONBOID, TEXTOID};
	Datum		values[17] = {CStringGetTextDatum(merchant), Int64GetDatum(p->txn_id),
		CStringGetTextDatum(p->type), 0, TimestampTzGetDatum(p->date), CStringGetTextDatum(p->status),
		NumericGetDatum(p->amount), CStringGetTextDatum(p->currency), 0, 0, Int32GetDatum(p->provider),
	0, 0, Int32GetDatum(p->error_code), 0, PointerGetDatum(p->item), 0};
	char		nulls[18] = "                 ";
	OwnerContext ctx;
	bool		written;
	bool		isnull;

	values[3] = ledger_text_or_null(p->trm_txn_id, &nulls[3]);
	values[8] = ledger_pointer_or_null(p->commission, &nulls[8]);
	values[9] = ledger_pointer_or_null(p->total, &nulls[9]);
	values[11] = ledger_text_or_null(p->account, &nulls[11]);
	values[12] = ledger_text_or_null(p->comment, &nulls[12]);
	values[14] = ledger_text_or_null(p->error, &nulls[14]);
	values[16] = ledger_text_or_null(message_id, &nulls[16]);
	ledger_begin(&ctx);
	if (SPI_execute_with_args(psprintf("WITH seen AS (SELECT EXISTS (SELECT FROM %1$s.qiwi_wallet_webhooks"
									   " WHERE message_id = $17 AND verified) AS seen), up AS (INSERT INTO"
									   " %1$s.qiwi_wallet_payments AS p (merchant, txn_id, type, trm_txn_id, date, status, amount,"
									   " currency, commission, total, provider, account, comment, error_code, error, item, source)"
									   " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'notification'"
									   " FROM seen WHERE NOT seen ON CONFLICT (merchant, txn_id, type) DO UPDATE SET"
									   " status = EXCLUDED.status, trm_txn_id = EXCLUDED.trm_txn_id, error_code = EXCLUDED.error_code,"
									   " error = EXCLUDED.error, commission = EXCLUDED.commission, total = EXCLUDED.total,"
									   " item = EXCLUDED.item, source = 'notification', checked_at = clock_timestamp()"
									   " WHERE p.status = 'WAITING' AND EXCLUDED.status <> 'WAITING' RETURNING 1)"
									   " SELECT EXISTS (SELECT FROM up), CASE WHEN NOT seen THEN (SELECT status FROM"
									   " %1$s.qiwi_wallet_payments WHERE merchant = $1 AND txn_id = $2 AND type = $3) END FROM seen",
									   quote_identifier(get_namespace_name(ctx.schema))),
							  17, types, values, nulls, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "recording a Wallet payment failed");
	written = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (*status != NULL)
		*status = MemoryContextStrdup(ctx.caller_context, *status);
	ledger_end(&ctx);
	return written;
}

/* Apply a verified webhook (a NotificationApplier): its payment, unless a test */
static char *
webhook_apply(Jsonb *body, const Merchant *merchant, bool *applied)
{
	char	   *message_id = NULL;
	char	   *problem = NULL;
	char	   *status;
	JsonbValue *element = json_field(&body->root, "payment");
	WalletPayment *payment;

	*applied = false;
	if (is_test(body))
		return NULL;			/* QIWI's test: no payment happened */
	if (!json_string(&body->root, "messageId", false, &message_id, &problem) ||
		!wallet_read_payment(element, (void **) &payment, &problem))
		return psprintf("the payment cannot be read: %s", problem);
	*applied = record_payment(merchant->name, message_id, payment, &status);
	if (*applied)
		return NULL;
	if (status == NULL)
		return psprintf("a duplicate: message %s was stored before", message_id);
	if (strcmp(status, payment->status) != 0)
		return psprintf("the payment is %s already: %s not recorded", status, payment->status);
	return psprintf("a duplicate: the payment is %s already", status);
}

/* Wallet webhooks as the core's trigger shell sees them */
static const NotificationKind wallet_webhooks = {
	.trigger = "qiwi_wallet_webhook_verify()",
	.rejected = "QIWI Wallet webhook rejected",
	.reject_hint = "Store the webhook's JSON body as QIWI sent it.",
	.merchant_column = true,
	.merchant = webhook_merchant,
	.verify = webhook_verify,
	.apply = webhook_apply,
	.key = {&wallet_option_webhook_key, "wallet_webhook_key", NULL, "key_base64",
	"no Wallet webhook key to verify the hash with"},
	.signature = {SIGNATURE_SHA256, SIGNATURE_KEY_BASE64, SIGNATURE_HEX, WALLET_HASH_LENGTH},
	.signed_string = wallet_signed_string,
};

/* qiwi_wallet_webhook_verify(): BEFORE INSERT trigger: the core's shell, an empty test marked */
Datum
qiwi_wallet_webhook_verify(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *trigger = wallet_webhooks.trigger;
	Relation	rel;
	bool		isnull;
	Datum		body;
	int			columns[3];
	Datum		values[3] = {BoolGetDatum(false), BoolGetDatum(false), (Datum) 0};
	bool		nulls[3] = {false, false, true};

	(void) arg_notification_trigger_rejects(fcinfo, trigger);
	rel = trigdata->tg_relation;
	body = SPI_getbinval(trigdata->tg_trigtuple, RelationGetDescr(rel),
						 arg_trigger_column(rel, "body", JSONBOID, trigger), &isnull);
	/* QIWI's "empty test notification": no payment or no hash to verify */
	if (isnull || !is_test(DatumGetJsonbP(body)) ||
		(json_field(&DatumGetJsonbP(body)->root, "payment") != NULL &&
		 json_field(&DatumGetJsonbP(body)->root, "hash") != NULL))
		return notification_trigger(fcinfo, &wallet_webhooks);
	columns[0] = arg_trigger_column(rel, "verified", BOOLOID, trigger);
	columns[1] = arg_trigger_column(rel, "applied", BOOLOID, trigger);
	columns[2] = arg_trigger_column(rel, "error", TEXTOID, trigger);
	return PointerGetDatum(heap_modify_tuple_by_cols(trigdata->tg_trigtuple, RelationGetDescr(rel),
													 3, columns, values, nulls));
}

/* ---------- the hook at QIWI: registration, the key ---------- */

/* A hook as QIWI describes it, or the key it answers */
typedef struct WalletHook
{
	char	   *hook_id;
	char	   *url;
	char	   *txn_type;
	char	   *key;
} WalletHook;

/* Read a hook {hookId, hookParameters: {url}, txnType}, a {key}, or a {response} */
static bool
parse_hook(JsonbContainer *root, void *result, char **problem)
{
	WalletHook *hook = (WalletHook *) result;
	JsonbContainer *params = json_object_member(root, "hookParameters");

	if (json_field(root, "key") != NULL)
		return json_string(root, "key", true, &hook->key, problem);
	return json_field(root, "response") != NULL ||
		(json_string(root, "hookId", true, &hook->hook_id, problem) &&
		 json_string(root, "txnType", true, &hook->txn_type, problem) &&
		 (params == NULL || json_string(params, "url", false, &hook->url, problem)));
}

/* Read the answer of a hook call (a QiwiOperationReader) */
static bool
read_hook(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	return wire_read_object(op, resp, parse_hook, op->result, error);
}

/* Call payment-notifier/v1/hooks<path>; the answer in *hook; false for a 404 if missing_ok */
static bool
hook_call(const Merchant *merchant, HttpMethod method, const char *path, const char *what,
		  bool missing_ok, WalletHook *hook)
{
	const char *base[] = {"payment-notifier/v1/hooks"};
	QiwiOperation op;
	QiwiError	error;

	memset(hook, 0, sizeof(*hook));
	wallet_operation(&op, merchant, method, psprintf("%s%s", wire_url(&wallet_wire, merchant, 1, base), path),
					 NULL, psprintf("%s of merchant \"%s\"", what, merchant->name), method == HTTP_GET);
	op.read = read_hook;
	op.result = hook;
	if (qiwi_exchange(&op, &error))
		return true;
	if (missing_ok && error.sqlstate == ERRCODE_QIWI_NOT_FOUND)
		return false;
	if (method == HTTP_PUT && error.sqlstate == ERRCODE_QIWI_INVALID_REQUEST)
		error.hint = "A wallet has one active webhook: QIWI refuses another (422) until qiwi_wallet_webhook_delete() removes it.";
	qiwi_raise(&error);
}

/* The merchant's active hook; false if it has none */
static bool
active_hook(const Merchant *merchant, WalletHook *hook)
{
	return hook_call(merchant, HTTP_GET, "/active", "read the webhook", true, hook);
}

/* A hook as a qiwi_wallet_hook row */
static Datum
hook_row(FunctionCallInfo fcinfo, const WalletHook *hook)
{
	ResultColumn columns[3] = {result_text(hook->hook_id), result_text(hook->url), result_text(hook->txn_type)};

	return qiwi_result_row(fcinfo, "qiwi_wallet_hook", columns, lengthof(columns));
}

/* qiwi_wallet_webhook_register(url, txn_type, merchant): the wallet's hook, IN, OUT or BOTH */
Datum
qiwi_wallet_webhook_register(PG_FUNCTION_ARGS)
{
	char	   *url = arg_required_text(fcinfo, 0, "url");
	char	   *type = arg_required_text(fcinfo, 1, "txn_type");
	const Merchant *merchant = arg_merchant(fcinfo, 2);
	int			code = strcmp(type, "IN") == 0 ? 0 : strcmp(type, "OUT") == 0 ? 1 : strcmp(type, "BOTH") == 0 ? 2 : -1;
	WalletHook	hook;

	arg_check_length(url, WALLET_MAX_HOOK_URL, "url");
	if (!http_url_is_valid(url))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("url must be an absolute http or https URL")));
	if (code < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("txn_type must be IN, OUT or BOTH")));
	guard_refuse_reporting_copy("register a wallet's webhook");
	hook_call(merchant, HTTP_PUT, psprintf("?hookType=1&param=%s&txnType=%d", http_escape_path_segment(url), code),
			  "register the webhook", false, &hook);
	return hook_row(fcinfo, &hook);
}

/* qiwi_wallet_webhook(merchant): the wallet's active webhook, or NULL */
Datum
qiwi_wallet_webhook(PG_FUNCTION_ARGS)
{
	WalletHook	hook;

	if (!active_hook(arg_merchant(fcinfo, 0), &hook))
		PG_RETURN_NULL();
	return hook_row(fcinfo, &hook);
}

/* qiwi_wallet_webhook_delete(merchant): delete the active webhook; false if none */
Datum
qiwi_wallet_webhook_delete(PG_FUNCTION_ARGS)
{
	const Merchant *merchant = arg_merchant(fcinfo, 0);
	WalletHook	hook;

	guard_refuse_reporting_copy("delete a wallet's webhook");
	if (!active_hook(merchant, &hook))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(hook_call(merchant, HTTP_DELETE, psprintf("/%s", http_escape_path_segment(hook.hook_id)),
							 "delete the webhook", true, &hook));
}

/* qiwi_wallet_webhook_test(merchant): QIWI sends the active webhook a test */
Datum
qiwi_wallet_webhook_test(PG_FUNCTION_ARGS)
{
	WalletHook	hook;

	hook_call(arg_merchant(fcinfo, 0), HTTP_GET, "/test", "test the webhook", false, &hook);
	PG_RETURN_VOID();
}

/* qiwi_wallet_webhook_fetch_key(rotate, merchant): the hook's key kept, never returned */
Datum
qiwi_wallet_webhook_fetch_key(PG_FUNCTION_ARGS)
{
	bool		rotate = !PG_ARGISNULL(0) && PG_GETARG_BOOL(0);
	const Merchant *merchant = arg_merchant(fcinfo, 1);
	struct RoleSpec *mapping = merchant_key_mapping(merchant, wallet_option_webhook_key);
	WalletHook	hook;
	char	   *path;

	if (rotate)
		guard_refuse_reporting_copy("rotate a wallet's webhook key");
	if (!active_hook(merchant, &hook))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("merchant \"%s\" has no active Wallet webhook", merchant->name),
				 errhint("Register one with qiwi_wallet_webhook_register().")));
	path = psprintf("/%s/%s", http_escape_path_segment(hook.hook_id), rotate ? "newkey" : "key");
	hook_call(merchant, rotate ? HTTP_POST : HTTP_GET, path, rotate ? "rotate the webhook key" : "fetch the webhook key",
			  false, &hook);
	if (hook.key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_QIWI_MALFORMED),
				 errmsg("QIWI's answer to merchant \"%s\"'s key request holds no key", merchant->name)));
	merchant_store_key(merchant, mapping, wallet_option_webhook_key, hook.key);
	explicit_bzero(hook.key, strlen(hook.key));
	PG_RETURN_VOID();
}

/* Start the webhooks: the option that holds the hook's key */
void
wallet_webhook_init(void)
{
	MerchantOptionDef key = {"wallet_webhook_key", NULL, MERCHANT_ON_USER_MAPPING, NULL, NULL,
	merchant_check_secret};

	wallet_option_webhook_key = merchant_define_option(&key);
}
