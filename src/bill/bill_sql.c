/*
 * bill_sql.c
 *		The SQL-callable functions of the Bill Payments API.
 *
 * Each function checks every argument before anything is sent, names the
 * argument in its error, hands the call's operation (bill_wire.c) to the
 * exchange, records the answer in the bookkeeping tables (bill_store.c)
 * and returns it as a composite.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "utils/guc.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

char	   *qiwi_api_url = NULL;
char	   *qiwi_public_key = NULL;

PG_FUNCTION_INFO_V1(qiwi_create_bill);
PG_FUNCTION_INFO_V1(qiwi_create_bill_after_commit);
PG_FUNCTION_INFO_V1(qiwi_bill_status);
PG_FUNCTION_INFO_V1(qiwi_cancel_bill);
PG_FUNCTION_INFO_V1(qiwi_refund);
PG_FUNCTION_INFO_V1(qiwi_refund_status);
PG_FUNCTION_INFO_V1(qiwi_payment_form_url);
PG_FUNCTION_INFO_V1(qiwi_pay_url);

/* What a call that changes something at QIWI records in, and what a reading call may */
#define BILL_TABLES "qiwi_bills"
#define BILL_READ_TABLES "qiwi_bills and qiwi_refunds"

/* The payment methods of seed 001's payUrl options */
static const char *const pay_sources[] = {"qw", "card", "mobile", "sovest", NULL};

/* The payment form that creates a bill when opened (seed 001) */
#define QIWI_FORM_URL "https://oplata.qiwi.com/create"

/* ---------- argument checks ---------- */

/*
 * An optional lifetime for the payment form, as the form writes it:
 * YYYY-MM-DDThhmm in Moscow time (UTC+3), cut to the minute, so the bill
 * expires up to a minute early rather than late.
 */
static char *
optional_lifetime(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	TimestampTz value;
	struct pg_tm tm;
	fsec_t		fsec;

	if (PG_ARGISNULL(argno))
		return NULL;
	value = PG_GETARG_TIMESTAMPTZ(argno);
	arg_check_expiry(value, argname, &bill_limits);
	if (timestamp2tm(value + (int64) 3 * USECS_PER_HOUR, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of range", argname)));
	return psprintf("%04d-%02d-%02dT%02d%02d",
					tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min);
}

/* ---------- results ---------- */

/*
 * Record a bill QIWI answered with.  If QIWI has it for other money than
 * the shop asked, qiwi_bills keeps the shop's amount and flags the bill
 * MISMATCH, and so does the returned row, now and later: a caller that
 * ships on PAID must not ship it.
 */
static void
record_bill(QiwiBill *bill)
{
	StoredBill	stored;

	if (store_bill(bill, LEDGER_BY_CALL, &stored) == STORE_MISMATCH)
		store_report_mismatch(WARNING, bill, &stored);
	else if (strcmp(stored.status, "MISMATCH") != 0)
		return;
	/* flagged now or before: it stays so whatever QIWI says */
	bill->status = "MISMATCH";
	bill->amount = stored.amount;
	bill->currency = stored.currency;
}

/* The qiwi_bill row of a bill */
static Datum
bill_datum(FunctionCallInfo fcinfo, const QiwiBill *bill)
{
	ResultColumn columns[] = {
		result_text(bill->bill_id), result_text(bill->site_id),
		result_datum(NumericGetDatum(bill->amount)), result_text(bill->currency),
		result_text(bill->status),
		result_timestamp(bill->status_changed_at, bill->has_status_changed_at),
		result_timestamp(bill->created_at, bill->has_created_at),
		result_timestamp(bill->terms.expires_at, bill->terms.has_expires_at),
		result_text(bill->terms.pay_url), result_text(bill->terms.comment),
		result_pointer(bill->terms.customer), result_pointer(bill->terms.custom_fields)
	};

	return qiwi_result_row(fcinfo, "qiwi_bill", columns, lengthof(columns));
}

/* The qiwi_refund row of a refund */
static Datum
refund_datum(FunctionCallInfo fcinfo, const QiwiRefund *refund)
{
	ResultColumn columns[] = {
		result_text(refund->bill_id), result_text(refund->refund_id),
		result_datum(NumericGetDatum(refund->amount)), result_text(refund->currency),
		result_text(refund->status), result_timestamp(refund->created_at, refund->has_created_at)
	};

	return qiwi_result_row(fcinfo, "qiwi_refund", columns, lengthof(columns));
}

/* ---------- the functions ---------- */

/* Check and collect the arguments a bill is created from (arguments 0-8) */
static void
create_bill_arguments(FunctionCallInfo fcinfo, QiwiCreateBillArgs *args)
{
	args->bill_id = arg_required_id(fcinfo, 0, "bill_id", &bill_limits);
	args->amount = arg_required_amount(fcinfo, 1, "amount", &bill_limits);
	args->currency = arg_required_currency(fcinfo, 2, "currency", &bill_limits);
	args->expires_at = arg_required_expiry(fcinfo, 3, "expires_at", &bill_limits);
	args->comment = arg_optional_limited_text(fcinfo, 4, "comment", QIWI_MAX_COMMENT_LENGTH);
	args->phone = arg_optional_phone(fcinfo, 5, "phone");
	args->email = arg_optional_email(fcinfo, 6, "email", &bill_limits);
	args->account = arg_optional_field(fcinfo, 7, "account", QIWI_MAX_FIELD_LENGTH);
	args->custom_fields = arg_optional_custom_fields(fcinfo, 8, "custom_fields", &bill_limits);
}

/* The customer object QIWI would echo for these arguments, or NULL */
static Jsonb *
customer_jsonb(const QiwiCreateBillArgs *args)
{
	JsonbParseState *state = NULL;
	const char *keys[3] = {"phone", "email", "account"};
	const char *values[3] = {args->phone, args->email, args->account};

	if (args->phone == NULL && args->email == NULL && args->account == NULL)
		return NULL;
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < 3; i++)
	{
		JsonbValue	k;
		JsonbValue	v;

		if (values[i] == NULL)
			continue;
		k.type = jbvString;
		k.val.string.val = (char *) keys[i];
		k.val.string.len = strlen(keys[i]);
		pushJsonbValue(&state, WJB_KEY, &k);
		v.type = jbvString;
		v.val.string.val = (char *) values[i];
		v.val.string.len = strlen(values[i]);
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/*
 * qiwi_create_bill_after_commit(bill_id, amount, currency, expires_at,
 *		comment, phone, email, account, custom_fields): record the bill as
 *		CREATING; the reconciler creates it at QIWI once this transaction
 *		commits, so a rollback leaves no bill at QIWI
 */
Datum
qiwi_create_bill_after_commit(PG_FUNCTION_ARGS)
{
	QiwiCreateBillArgs args;
	QiwiBill	bill;
	const Merchant *merchant;

	create_bill_arguments(fcinfo, &args);
	merchant = arg_merchant(fcinfo, 9);
	args.merchant = merchant->name;
	ledger_require_writable("record a bill to create", BILL_TABLES);
	guard_require_reconciler("qiwi_create_bill_after_commit",
							 "the bill would stay CREATING, never created at QIWI");
	if (!store_bill_intent(&args, customer_jsonb(&args)))
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("bill \"%s\" is already in qiwi_bills", args.bill_id),
				 errhint("Use a new bill_id for a new bill.")));
	reconciler_wake_at_commit();

	memset(&bill, 0, sizeof(bill));
	bill.bill_id = (char *) args.bill_id;
	bill.amount = qiwi_amount_to_cents(args.amount);
	bill.currency = (char *) args.currency;
	bill.status = "CREATING";
	bill.terms.has_expires_at = true;
	bill.terms.expires_at = args.expires_at;
	bill.terms.comment = (char *) args.comment;
	bill.terms.customer = customer_jsonb(&args);
	bill.terms.custom_fields = args.custom_fields;
	PG_RETURN_DATUM(bill_datum(fcinfo, &bill));
}

/*
 * qiwi_create_bill(bill_id, amount, currency, expires_at, comment, phone,
 *					email, account, custom_fields, success_url)
 */
Datum
qiwi_create_bill(PG_FUNCTION_ARGS)
{
	QiwiCreateBillArgs args;
	char	   *success_url;
	QiwiBill	bill;
	QiwiOperation op;
	StoredBill	stored;
	const Merchant *merchant;

	create_bill_arguments(fcinfo, &args);
	success_url = arg_optional_url(fcinfo, 9, "success_url");
	merchant = arg_merchant(fcinfo, 10);
	args.merchant = merchant->name;
	ledger_require_writable("create a bill", BILL_TABLES);
	if (store_lock_bill(merchant->name, args.bill_id, &stored))
		qiwi_require_same_money(psprintf("bill \"%s\"", args.bill_id), "qiwi_bills", "bill",
								stored.amount, stored.currency, stored.status, args.amount,
								args.currency);

	bill_create_operation(merchant, &args, true, &bill, &op);
	qiwi_call(&op);
	record_bill(&bill);

	if (success_url != NULL && bill.terms.pay_url != NULL)
		bill.terms.pay_url = http_append_query(bill.terms.pay_url, "successUrl", success_url);

	PG_RETURN_DATUM(bill_datum(fcinfo, &bill));
}

/* qiwi_bill_status(bill_id): the bill as QIWI has it now */
Datum
qiwi_bill_status(PG_FUNCTION_ARGS)
{
	char	   *bill_id;
	const Merchant *merchant = arg_reading_call(fcinfo, "bill_id", &bill_limits, &bill_id);
	QiwiBill	bill;
	QiwiOperation op;

	bill_get_operation(merchant, bill_id, &bill, &op);
	if (qiwi_read_call(&op, BILL_READ_TABLES, "the status of bill \"%s\"", bill_id))
		record_bill(&bill);
	PG_RETURN_DATUM(bill_datum(fcinfo, &bill));
}

/* qiwi_cancel_bill(bill_id): reject an unpaid bill */
Datum
qiwi_cancel_bill(PG_FUNCTION_ARGS)
{
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &bill_limits);
	const Merchant *merchant = arg_merchant(fcinfo, 1);
	QiwiBill	bill;
	QiwiError	error;
	StoredBill	stored;

	ledger_require_writable("cancel a bill", BILL_TABLES);
	(void) store_lock_bill(merchant->name, bill_id, &stored);
	if (!bill_reject(merchant, bill_id, &bill, &error))
		qiwi_raise(&error);
	record_bill(&bill);
	PG_RETURN_DATUM(bill_datum(fcinfo, &bill));
}

/*
 * Lock the bill of a refund and refuse, before anything is sent, a refund in
 * another currency than the bill's or of more than is left (the refunds
 * qiwi_refunds has, counted after the lock, in a statement of its own).  A
 * bill qiwi_bills does not have is asked for first and recorded; nothing is
 * sent if QIWI does not know it either.
 */
static void
check_refund(const Merchant *merchant, const char *bill_id, const char *refund_id,
			 Numeric amount, const char *currency)
{
	StoredBill	stored;
	Numeric		paid;
	Numeric		refunded;
	Numeric		left;

	if (!store_lock_bill(merchant->name, bill_id, &stored))
	{
		QiwiBill	bill;
		QiwiOperation op;

		bill_get_operation(merchant, bill_id, &bill, &op);
		qiwi_refund_fetch(&op, "qiwi_bills does not have the bill", refund_id);
		record_bill(&bill);
		if (!store_lock_bill(merchant->name, bill_id, &stored))
			elog(ERROR, "bill \"%s\" is not in qiwi_bills after its recording", bill_id);
	}
	qiwi_refund_check_currency(psprintf("bill \"%s\"", bill_id), stored.currency, refund_id,
							   amount, currency);
	if (!store_refund_headroom(merchant->name, bill_id, refund_id, &paid, &refunded))
		elog(ERROR, "bill \"%s\" is locked but its row was not read", bill_id);
	left = DatumGetNumeric(DirectFunctionCall2(numeric_sub, NumericGetDatum(paid),
											   NumericGetDatum(refunded)));
	if (!qiwi_money_within(amount, currency, left, stored.currency))
		qiwi_refund_refuse(psprintf("bill \"%s\"", bill_id), refund_id,
						   qiwi_refund_counted("The bill is for", paid, refunded, left, amount,
											   "Nothing was sent to QIWI."));
}

/* qiwi_refund(bill_id, refund_id, amount, currency): return money of a paid bill */
Datum
qiwi_refund(PG_FUNCTION_ARGS)
{
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &bill_limits);
	char	   *refund_id = arg_required_id(fcinfo, 1, "refund_id", &bill_limits);
	Numeric		amount = arg_required_amount(fcinfo, 2, "amount", &bill_limits);
	char	   *currency = arg_required_currency(fcinfo, 3, "currency", &bill_limits);
	const Merchant *merchant = arg_merchant(fcinfo, 4);
	QiwiRefund	refund;
	QiwiOperation op;

	ledger_require_writable("refund a bill", BILL_TABLES);
	check_refund(merchant, bill_id, refund_id, amount, currency);
	bill_refund_operation(merchant, bill_id, refund_id, amount, currency, &refund, &op);
	qiwi_call(&op);
	store_refund(&refund);
	PG_RETURN_DATUM(refund_datum(fcinfo, &refund));
}

/* qiwi_refund_status(bill_id, refund_id) */
Datum
qiwi_refund_status(PG_FUNCTION_ARGS)
{
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &bill_limits);
	char	   *refund_id = arg_required_id(fcinfo, 1, "refund_id", &bill_limits);
	const Merchant *merchant = arg_merchant(fcinfo, 2);
	QiwiRefund	refund;
	QiwiOperation op;

	ledger_require_ready();
	bill_get_refund_operation(merchant, bill_id, refund_id, &refund, &op);
	if (qiwi_read_call(&op, BILL_READ_TABLES, "refund \"%s\" of bill \"%s\"", refund_id, bill_id))
		store_refund(&refund);
	PG_RETURN_DATUM(refund_datum(fcinfo, &refund));
}

/* ---------- payment links ---------- */

/* allowed_pay_sources: a non-empty array of pay sources, joined with commas */
static char *
optional_pay_sources(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	List	   *sources = arg_optional_names(fcinfo, argno, argname, pay_sources,
											 "Pass NULL to allow every payment method.");
	StringInfoData joined;
	ListCell   *lc;

	if (sources == NIL)
		return NULL;
	initStringInfo(&joined);
	foreach(lc, sources)
		appendStringInfo(&joined, "%s%s", foreach_current_index(lc) > 0 ? "," : "",
						 (char *) lfirst(lc));
	return joined.data;
}

/* Add name=value to url when value is given */
static char *
add_query(char *url, const char *name, const char *value)
{
	return value == NULL ? url : http_append_query(url, name, value);
}

/*
 * qiwi_payment_form_url(bill_id, amount, public_key, phone, email, account,
 *						 comment, custom_fields, lifetime, success_url):
 * the oplata.qiwi.com/create link that creates the bill when opened
 */
Datum
qiwi_payment_form_url(PG_FUNCTION_ARGS)
{
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &bill_limits);
	Numeric		amount = arg_required_amount(fcinfo, 1, "amount", &bill_limits);
	char	   *public_key = arg_optional_text(fcinfo, 2, "public_key");
	char	   *phone = arg_optional_phone(fcinfo, 3, "phone");
	char	   *email = arg_optional_email(fcinfo, 4, "email", &bill_limits);
	char	   *account = arg_optional_field(fcinfo, 5, "account", QIWI_MAX_FIELD_LENGTH);
	char	   *comment = arg_optional_text(fcinfo, 6, "comment");
	Jsonb	   *custom_fields = arg_optional_custom_fields(fcinfo, 7, "custom_fields", &bill_limits);
	char	   *lifetime = optional_lifetime(fcinfo, 8, "lifetime");
	char	   *success_url = arg_optional_url(fcinfo, 9, "success_url");
	const Merchant *merchant = arg_merchant(fcinfo, 10);
	char	   *url;

	if (public_key == NULL)
		public_key = (char *) merchant_value(merchant, bill_option_public_key);
	if (public_key == NULL && merchant->server == InvalidOid)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("public_key must not be NULL when qiwi.public_key is not set")));
	if (public_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("public_key must not be NULL when merchant \"%s\" has no bill_public_key", merchant->name)));
	arg_check_no_control_chars(public_key, "public_key");
	if (comment != NULL)
		arg_check_length(comment, QIWI_MAX_COMMENT_LENGTH, "comment");

	url = http_append_query(QIWI_FORM_URL, "publicKey", public_key);
	url = add_query(url, "billId", bill_id);
	url = add_query(url, "amount", qiwi_format_amount(amount));
	url = add_query(url, "phone", phone);
	url = add_query(url, "email", email);
	url = add_query(url, "account", account);
	url = add_query(url, "comment", comment);
	if (custom_fields != NULL)
	{
		JsonbIterator *it = JsonbIteratorInit(&custom_fields->root);
		JsonbValue	v;
		JsonbIteratorToken tok;
		char	   *key = NULL;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				key = pnstrdup(v.val.string.val, v.val.string.len);
				/* the key goes unescaped into customFields[key]=: '=' or '&' would shift it */
				if (strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(key))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("custom_fields key \"%s\" cannot be put in a payment-form URL", key),
							 errdetail("Keys of the form's customFields may hold Latin letters, digits, \"_\", \"-\" and \".\".")));
			}
			else if (tok == WJB_VALUE)
				url = add_query(url, psprintf("customFields[%s]", key),
								pnstrdup(v.val.string.val, v.val.string.len));
		}
	}
	url = add_query(url, "lifetime", lifetime);
	url = add_query(url, "successUrl", success_url);
	PG_RETURN_TEXT_P(cstring_to_text(url));
}

/*
 * qiwi_pay_url(pay_url, pay_source, allowed_pay_sources, success_url, lifetime):
 * a payUrl from qiwi_create_bill with the form's opening options added
 */
Datum
qiwi_pay_url(PG_FUNCTION_ARGS)
{
	char	   *pay_url = arg_optional_url(fcinfo, 0, "pay_url");
	char	   *pay_source = arg_optional_name(fcinfo, 1, "pay_source", pay_sources);
	char	   *allowed = optional_pay_sources(fcinfo, 2, "allowed_pay_sources");
	char	   *success_url = arg_optional_url(fcinfo, 3, "success_url");
	char	   *lifetime = optional_lifetime(fcinfo, 4, "lifetime");

	if (pay_url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pay_url must not be NULL")));
	pay_url = add_query(pay_url, "paySource", pay_source);
	pay_url = add_query(pay_url, "allowedPaySources", allowed);
	pay_url = add_query(pay_url, "successUrl", success_url);
	pay_url = add_query(pay_url, "lifetime", lifetime);
	PG_RETURN_TEXT_P(cstring_to_text(pay_url));
}

/* Define the Bill Payments settings; make bills a kind to reconcile and a ledger table (from _PG_init) */
void
bill_init(void)
{
	/* whoever can change the URL can have the key sent to a server of theirs */
	DefineCustomStringVariable("qiwi.api_url",
							   "Base URL of the QIWI API.",
							   "The Bill Payments endpoints are appended to it.",
							   &qiwi_api_url,
							   QIWI_DEFAULT_API_URL,
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("qiwi.public_key",
							   "Public key (PUBLIC_KEY) of the QIWI payment form.",
							   "Used by qiwi_payment_form_url() when no key is passed.",
							   &qiwi_public_key,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	notification_init();
	bill_define_merchant_options();
	bill_reconcile_init();
	store_register_table();
}
