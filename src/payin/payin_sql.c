/*
 * payin_sql.c
 *		The SQL-callable functions of the Payin API.
 *
 * Each function checks every argument before anything is sent, names the
 * argument in its error, hands the call's operation (payin_wire.c) to the
 * exchange, records the answer (payin_store.c) and returns it.  A capture
 * or refund whose answer was lost is asked for by its id before it is sent
 * again, so that money moves once.  A payment token deleted already is
 * no error: deleting it is what the caller wanted.
 */
#include "core/core.h"
#include "payin/payin.h"

#include "access/htup_details.h"
#include "catalog/pg_type_d.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#define PAYIN_TABLES "the qiwi_payin_* tables"

PG_FUNCTION_INFO_V1(qiwi_payin_create_invoice);
PG_FUNCTION_INFO_V1(qiwi_payin_invoice);
PG_FUNCTION_INFO_V1(qiwi_payin_payments);
PG_FUNCTION_INFO_V1(qiwi_payin_payment);
PG_FUNCTION_INFO_V1(qiwi_payin_capture);
PG_FUNCTION_INFO_V1(qiwi_payin_capture_status);
PG_FUNCTION_INFO_V1(qiwi_payin_refund);
PG_FUNCTION_INFO_V1(qiwi_payin_refund_status);
PG_FUNCTION_INFO_V1(qiwi_payin_refunds);
PG_FUNCTION_INFO_V1(qiwi_payin_delete_token);
PG_FUNCTION_INFO_V1(qiwi_payin_card_check);

/* Columns of the composite types, in the order of sql/ext/payin.sql */
enum
{
	INV_BILL_ID, INV_INVOICE_UID, INV_SITE_ID, INV_AMOUNT, INV_CURRENCY, INV_STATUS,
	INV_FLAGS, INV_PAY_URL, INV_COMMENT, INV_CREATED_AT, INV_EXPIRES_AT, INV_CUSTOMER,
	INV_CUSTOM_FIELDS, INV_NCOLS
};
enum
{
	PAY_PAYMENT_ID, PAY_BILL_ID, PAY_STATUS, PAY_AMOUNT, PAY_CURRENCY, PAY_CAPTURED,
	PAY_REFUNDED, PAY_METHOD, PAY_MASKED_PAN, PAY_REASON_CODE, PAY_REASON_MESSAGE,
	PAY_CREATED_AT, PAY_STATUS_CHANGED_AT, PAY_FLAGS, PAY_NCOLS
};
enum
{
	OP_PAYMENT_ID, OP_ID, OP_AMOUNT, OP_CURRENCY, OP_STATUS, OP_FLAGS, OP_COMMENT,
	OP_CREATED_AT, OP_STATUS_CHANGED_AT, OP_NCOLS
};
enum
{
	CHK_REQUEST_UID, CHK_STATUS, CHK_IS_VALID_CARD, CHK_THREE_DS_STATUS, CHK_OPERATION_DATE,
	CHK_CARD_INFO, CHK_CREATED_TOKEN, CHK_NCOLS
};

/* ---------- argument checks ---------- */

/* The merchant named by argument argno (NULL: the default one) */
static const Merchant *
merchant_argument(FunctionCallInfo fcinfo, int argno)
{
	return merchant_for_call(arg_optional_text(fcinfo, argno, "merchant"));
}

/* capture: 'auto' (one step, SALE) or 'manual' (hold, then capture) */
static bool
capture_argument(FunctionCallInfo fcinfo, int argno)
{
	char	   *value = arg_required_text(fcinfo, argno, "capture");

	if (strcmp(value, "auto") != 0 && strcmp(value, "manual") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("capture must be 'auto' or 'manual'"),
				 errdetail("'auto' takes the money at once; 'manual' holds it until qiwi_payin_capture().")));
	return strcmp(value, "auto") == 0;
}

/* An optional comment of at most 256 characters */
static char *
comment_argument(FunctionCallInfo fcinfo, int argno)
{
	char	   *comment = arg_optional_text(fcinfo, argno, "comment");

	if (comment != NULL)
		arg_check_length(comment, PAYIN_MAX_FIELD_LENGTH, "comment");
	return comment;
}

/* Refuse argument argname given with check_card => true: why is what it would ask for */
static void
refuse_with_check_card(const char *argname, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s contradicts check_card", argname),
			 errdetail("A card check moves no money (QIWI's CHECK_CARD invoice has no amount and is answered for 0.00 RUB); %s.", why)));
}

/* A required text of at most max characters, without control characters */
static char *
required_field(FunctionCallInfo fcinfo, int argno, const char *argname, int max)
{
	(void) arg_required_text(fcinfo, argno, argname);
	return arg_optional_field(fcinfo, argno, argname, max);
}

/* ---------- results ---------- */

/* A text Datum or NULL */
static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = s == NULL;
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* The qiwi_payin_invoice row of an invoice */
static Datum
invoice_datum(FunctionCallInfo fcinfo, const PayinInvoice *invoice)
{
	TupleDesc	tupdesc = arg_result_desc(fcinfo, INV_NCOLS, "qiwi_payin_invoice");
	Datum		values[INV_NCOLS];
	bool		nulls[INV_NCOLS];

	memset(nulls, false, sizeof(nulls));
	values[INV_BILL_ID] = CStringGetTextDatum(invoice->bill_id);
	values[INV_INVOICE_UID] = text_or_null(invoice->invoice_uid, &nulls[INV_INVOICE_UID]);
	values[INV_SITE_ID] = text_or_null(invoice->site_id, &nulls[INV_SITE_ID]);
	values[INV_AMOUNT] = NumericGetDatum(invoice->amount);
	values[INV_CURRENCY] = CStringGetTextDatum(invoice->currency);
	values[INV_STATUS] = CStringGetTextDatum(invoice->status);
	values[INV_FLAGS] = PointerGetDatum(invoice->flags);
	values[INV_PAY_URL] = text_or_null(invoice->pay_url, &nulls[INV_PAY_URL]);
	values[INV_COMMENT] = text_or_null(invoice->comment, &nulls[INV_COMMENT]);
	values[INV_CREATED_AT] = TimestampTzGetDatum(invoice->created_at);
	nulls[INV_CREATED_AT] = !invoice->has_created_at;
	values[INV_EXPIRES_AT] = TimestampTzGetDatum(invoice->expires_at);
	nulls[INV_EXPIRES_AT] = !invoice->has_expires_at;
	values[INV_CUSTOMER] = PointerGetDatum(invoice->customer);
	nulls[INV_CUSTOMER] = invoice->customer == NULL;
	values[INV_CUSTOM_FIELDS] = PointerGetDatum(invoice->custom_fields);
	nulls[INV_CUSTOM_FIELDS] = invoice->custom_fields == NULL;
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/* The qiwi_payin_payment row of a payment */
static HeapTuple
payment_tuple(TupleDesc tupdesc, const PayinPayment *payment)
{
	Datum		values[PAY_NCOLS];
	bool		nulls[PAY_NCOLS];

	memset(nulls, false, sizeof(nulls));
	values[PAY_PAYMENT_ID] = CStringGetTextDatum(payment->payment_id);
	values[PAY_BILL_ID] = text_or_null(payment->bill_id, &nulls[PAY_BILL_ID]);
	values[PAY_STATUS] = CStringGetTextDatum(payment->status);
	values[PAY_AMOUNT] = NumericGetDatum(payment->amount);
	values[PAY_CURRENCY] = CStringGetTextDatum(payment->currency);
	values[PAY_CAPTURED] = NumericGetDatum(payment->captured_amount);
	values[PAY_REFUNDED] = NumericGetDatum(payment->refunded_amount);
	values[PAY_METHOD] = text_or_null(payment->method, &nulls[PAY_METHOD]);
	values[PAY_MASKED_PAN] = text_or_null(payment->masked_pan, &nulls[PAY_MASKED_PAN]);
	values[PAY_REASON_CODE] = text_or_null(payment->reason_code, &nulls[PAY_REASON_CODE]);
	values[PAY_REASON_MESSAGE] = text_or_null(payment->reason_message, &nulls[PAY_REASON_MESSAGE]);
	values[PAY_CREATED_AT] = TimestampTzGetDatum(payment->created_at);
	nulls[PAY_CREATED_AT] = !payment->has_created_at;
	values[PAY_STATUS_CHANGED_AT] = TimestampTzGetDatum(payment->status_changed_at);
	nulls[PAY_STATUS_CHANGED_AT] = !payment->has_status_changed_at;
	values[PAY_FLAGS] = PointerGetDatum(payment->flags);
	return heap_form_tuple(tupdesc, values, nulls);
}

/* The qiwi_payin_capture or qiwi_payin_refund row of a capture or refund */
static HeapTuple
operation_tuple(TupleDesc tupdesc, const PayinOperationResult *r)
{
	Datum		values[OP_NCOLS];
	bool		nulls[OP_NCOLS];

	memset(nulls, false, sizeof(nulls));
	values[OP_PAYMENT_ID] = CStringGetTextDatum(r->payment_id);
	values[OP_ID] = CStringGetTextDatum(r->id);
	values[OP_AMOUNT] = NumericGetDatum(r->amount);
	values[OP_CURRENCY] = CStringGetTextDatum(r->currency);
	values[OP_STATUS] = CStringGetTextDatum(r->status);
	values[OP_FLAGS] = PointerGetDatum(r->flags);
	values[OP_COMMENT] = text_or_null(r->comment, &nulls[OP_COMMENT]);
	values[OP_CREATED_AT] = TimestampTzGetDatum(r->created_at);
	nulls[OP_CREATED_AT] = !r->has_created_at;
	values[OP_STATUS_CHANGED_AT] = TimestampTzGetDatum(r->status_changed_at);
	nulls[OP_STATUS_CHANGED_AT] = !r->has_status_changed_at;
	return heap_form_tuple(tupdesc, values, nulls);
}

/* ---------- sending money safely ---------- */

/* A capture or refund to send, and how to build its operations afresh */
typedef struct MoneyCall
{
	const Merchant *merchant;
	const char *payment_id;
	const char *id;				/* capture_id or refund_id */
	const char *comment;		/* a capture's */
	Numeric		amount;			/* a refund's */
	const char *currency;
	bool		is_refund;
	PayinOperationResult result;
} MoneyCall;

/* Build the PUT (send) or the GET of a MoneyCall; each is sent once (its key is wiped after) */
static void
money_operation(MoneyCall *call, bool send, QiwiOperation *op)
{
	if (call->is_refund)
		payin_refund_operation(call->merchant, call->payment_id, call->id, call->amount,
							   call->currency, send, &call->result, op);
	else
		payin_capture_operation(call->merchant, call->payment_id, call->id, call->comment,
								send, &call->result, op);
}

/*
 * Send a capture or refund once; if its answer is lost, unreadable or QIWI
 * failed (a network failure, a timeout, a malformed answer, 429, 5xx: with
 * an empty body QIWI asks for the same request again, with a body for a
 * status check; asking first serves both), ask for it by its id and send it
 * again only when QIWI does not know it, up to qiwi.max_retries times.
 * Raises what went wrong.
 */
static void
send_or_ask(MoneyCall *call)
{
	QiwiOperation op;
	QiwiError	error;
	QiwiError	ask_error;

	for (int attempt = 0;; attempt++)
	{
		money_operation(call, true, &op);
		if (qiwi_exchange(&op, &error))
			return;
		/* a garbled answer may hide a capture or refund QIWI made */
		if (!error.retry_safe && error.sqlstate != ERRCODE_QIWI_MALFORMED)
			qiwi_raise(&error);
		money_operation(call, false, &op);
		if (qiwi_exchange(&op, &ask_error))
			return;
		if (ask_error.sqlstate != ERRCODE_QIWI_NOT_FOUND || attempt >= qiwi_max_retries)
		{
			error.detail = psprintf("%s Asking QIWI for it failed too: %s", error.detail,
									ask_error.message);
			qiwi_raise(&error);
		}
	}
}

/* ---------- the functions ---------- */

/*
 * qiwi_payin_create_invoice(bill_id, amount, currency, expires_at, capture,
 *		comment, phone, email, account, custom_fields, payment_methods,
 *		callback_url, bind_token, check_card, merchant)
 */
Datum
qiwi_payin_create_invoice(PG_FUNCTION_ARGS)
{
	PayinCreateArgs args;
	PayinInvoice invoice;
	QiwiOperation op;
	QiwiError	error;
	const Merchant *merchant;
	Numeric		stored_amount;
	char	   *stored_currency;
	char	   *stored_status;
	bool		automatic;
	ListCell   *lc;

	memset(&args, 0, sizeof(args));
	args.bill_id = arg_required_id(fcinfo, 0, "bill_id", &payin_limits);
	if (PG_ARGISNULL(13))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("check_card must not be NULL")));
	args.check_card = PG_GETARG_BOOL(13);
	if (!args.check_card)
		args.amount = arg_required_amount(fcinfo, 1, "amount", &payin_limits);
	else if (!PG_ARGISNULL(1))
		refuse_with_check_card("amount", "pass amount => NULL");
	else
		args.amount = int64_to_numeric(0);
	args.currency = arg_required_currency(fcinfo, 2, "currency", &payin_limits);
	if (args.check_card && strcmp(args.currency, "RUB") != 0)
		refuse_with_check_card("currency", "leave currency at 'RUB'");
	args.expires_at = arg_required_expiry(fcinfo, 3, "expires_at", &payin_limits);
	/* a check sends neither SALE nor a hold: 'auto' (the default) only means "not manual" */
	automatic = capture_argument(fcinfo, 4);
	if (args.check_card && !automatic)
		refuse_with_check_card("capture 'manual'", "nothing is held to capture: leave capture at 'auto'");
	args.sale = automatic && !args.check_card;
	args.comment = comment_argument(fcinfo, 5);
	args.phone = arg_optional_phone(fcinfo, 6, "phone");
	args.email = arg_optional_email(fcinfo, 7, "email", &payin_limits);
	args.account = arg_optional_field(fcinfo, 8, "account", PAYIN_MAX_FIELD_LENGTH);
	args.custom_fields = payin_custom_fields_argument(fcinfo, 9);
	args.payment_methods = payin_payment_methods_argument(fcinfo, 10);
	foreach(lc, args.payment_methods)
		if (args.check_card && strcmp((const char *) lfirst(lc), "CARD") != 0)
			refuse_with_check_card("payment_methods", "only a card is checked: pass NULL or '{CARD}'");
	args.callback_url = arg_optional_url(fcinfo, 11, "callback_url");
	if (PG_ARGISNULL(12))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("bind_token must not be NULL")));
	args.bind_token = PG_GETARG_BOOL(12);
	if (args.bind_token && args.account == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bind_token needs account"),
				 errdetail("QIWI issues a payment token for the buyer named by account.")));
	if (args.callback_url != NULL && args.custom_fields != NULL &&
		getKeyJsonValueFromContainer(&args.custom_fields->root, "invoice_callback_url",
									 strlen("invoice_callback_url"), NULL) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("callback_url and custom_fields.invoice_callback_url must not both be given"),
				 errdetail("callback_url is sent as the custom field invoice_callback_url.")));
	merchant = merchant_argument(fcinfo, 14);
	ledger_require_writable("create a Payin invoice", PAYIN_TABLES);
	if (payin_store_lock_invoice(merchant->name, args.bill_id, &stored_amount, &stored_currency,
								 &stored_status) &&
		!qiwi_same_money(stored_amount, stored_currency, args.amount, args.currency))
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("Payin invoice \"%s\" is already in qiwi_payin_invoices for another amount",
						args.bill_id),
				 errdetail("qiwi_payin_invoices has it for %s %s (%s); this call asks for %s %s. Nothing was sent to QIWI.",
						   qiwi_format_amount(stored_amount), stored_currency, stored_status,
						   qiwi_format_amount(args.amount), args.currency),
				 errhint("Use a new bill_id for a new invoice.")));

	payin_create_operation(merchant, &args, &invoice, &op);
	if (!qiwi_exchange(&op, &error))
		qiwi_raise(&error);
	payin_store_invoice(&invoice, "call", false);
	PG_RETURN_DATUM(invoice_datum(fcinfo, &invoice));
}

/* Ask QIWI for an invoice with its payments and record them when possible */
static void
fetch_invoice(const Merchant *merchant, const char *bill_id, PayinInvoice *invoice)
{
	QiwiOperation op;
	QiwiError	error;

	ledger_require_ready();
	payin_details_operation(merchant, bill_id, invoice, &op);
	if (!qiwi_exchange(&op, &error))
		qiwi_raise(&error);
	if (ledger_can_record(psprintf("Payin invoice \"%s\"", bill_id), PAYIN_TABLES))
		payin_store_invoice(invoice, "call", false);
}

/* qiwi_payin_invoice(bill_id, merchant): the invoice as QIWI has it now */
Datum
qiwi_payin_invoice(PG_FUNCTION_ARGS)
{
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &payin_limits);
	const Merchant *merchant = merchant_argument(fcinfo, 1);
	PayinInvoice invoice;

	fetch_invoice(merchant, bill_id, &invoice);
	PG_RETURN_DATUM(invoice_datum(fcinfo, &invoice));
}

/* qiwi_payin_payments(bill_id, merchant): the payments of an invoice */
Datum
qiwi_payin_payments(PG_FUNCTION_ARGS)
{
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &payin_limits);
	const Merchant *merchant = merchant_argument(fcinfo, 1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PayinInvoice invoice;
	ListCell   *lc;

	fetch_invoice(merchant, bill_id, &invoice);
	InitMaterializedSRF(fcinfo, 0);
	foreach(lc, invoice.payments)
		tuplestore_puttuple(rsinfo->setResult,
							payment_tuple(rsinfo->setDesc, (PayinPayment *) lfirst(lc)));
	return (Datum) 0;
}

/* qiwi_payin_payment(payment_id, merchant): a payment as QIWI has it now */
Datum
qiwi_payin_payment(PG_FUNCTION_ARGS)
{
	char	   *payment_id = arg_required_id(fcinfo, 0, "payment_id", &payin_limits);
	const Merchant *merchant = merchant_argument(fcinfo, 1);
	PayinPayment payment;
	QiwiOperation op;
	QiwiError	error;

	ledger_require_ready();
	payin_payment_operation(merchant, payment_id, &payment, &op);
	if (!qiwi_exchange(&op, &error))
		qiwi_raise(&error);
	if (ledger_can_record(psprintf("Payin payment \"%s\"", payment_id), PAYIN_TABLES))
		payin_store_payment(&payment, "call");
	PG_RETURN_DATUM(HeapTupleGetDatum(payment_tuple(arg_result_desc(fcinfo, PAY_NCOLS, "qiwi_payin_payment"),
													&payment)));
}

/* qiwi_payin_capture(payment_id, capture_id, comment, merchant): take held money */
Datum
qiwi_payin_capture(PG_FUNCTION_ARGS)
{
	char	   *payment_id = arg_required_id(fcinfo, 0, "payment_id", &payin_limits);
	char	   *capture_id = arg_required_id(fcinfo, 1, "capture_id", &payin_limits);
	char	   *comment = comment_argument(fcinfo, 2);
	const Merchant *merchant = merchant_argument(fcinfo, 3);
	MoneyCall	call = {.merchant = merchant, .payment_id = payment_id, .id = capture_id,
		.comment = comment, .is_refund = false};

	ledger_require_writable("capture a Payin payment", PAYIN_TABLES);
	payin_store_lock_payment(merchant->name, payment_id);
	send_or_ask(&call);
	payin_store_capture(&call.result, "call");
	PG_RETURN_DATUM(HeapTupleGetDatum(operation_tuple(arg_result_desc(fcinfo, OP_NCOLS, "qiwi_payin_capture"),
													  &call.result)));
}

/* qiwi_payin_capture_status(payment_id, capture_id, merchant) */
Datum
qiwi_payin_capture_status(PG_FUNCTION_ARGS)
{
	char	   *payment_id = arg_required_id(fcinfo, 0, "payment_id", &payin_limits);
	char	   *capture_id = arg_required_id(fcinfo, 1, "capture_id", &payin_limits);
	const Merchant *merchant = merchant_argument(fcinfo, 2);
	PayinOperationResult capture;
	QiwiOperation op;
	QiwiError	error;

	ledger_require_ready();
	payin_capture_operation(merchant, payment_id, capture_id, NULL, false, &capture, &op);
	if (!qiwi_exchange(&op, &error))
		qiwi_raise(&error);
	if (ledger_can_record(psprintf("capture \"%s\" of Payin payment \"%s\"", capture_id, payment_id),
						  PAYIN_TABLES))
		payin_store_capture(&capture, "call");
	PG_RETURN_DATUM(HeapTupleGetDatum(operation_tuple(arg_result_desc(fcinfo, OP_NCOLS, "qiwi_payin_capture"),
													  &capture)));
}

/*
 * What is left to refund of the payment of a refund, its row locked: as the
 * tables have it, or, for a payment they do not know, as QIWI answers for
 * it (recorded first; nothing is sent if QIWI does not know it either)
 */
static void
refund_headroom(const MoneyCall *call, PayinHeadroom *headroom)
{
	PayinPayment payment;
	QiwiOperation op;
	QiwiError	error;

	if (payin_store_headroom(call->merchant->name, call->payment_id, call->id, headroom))
		return;
	payin_payment_operation(call->merchant, call->payment_id, &payment, &op);
	if (!qiwi_exchange(&op, &error))
	{
		error.detail = psprintf("%s qiwi_payin_payments does not have the payment, so QIWI was asked for it before refund \"%s\"; the refund was not sent.",
								error.detail, call->id);
		qiwi_raise(&error);
	}
	payin_store_payment(&payment, "call");
	if (!payin_store_headroom(call->merchant->name, call->payment_id, call->id, headroom))
		elog(ERROR, "Payin payment \"%s\" is not in qiwi_payin_payments after its recording",
			 call->payment_id);
}

/* Refuse a refund of more than is left (why: the last sentence of the detail) */
static void
refuse_refund(const MoneyCall *call, const PayinHeadroom *headroom, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_QIWI_INVALID_REQUEST),
			 errmsg("could not refund \"%s\" of Payin payment \"%s\": the amount is more than is left to refund",
					call->id, call->payment_id),
			 strcmp(headroom->status, "COMPLETED") != 0 ?
			 errdetail("The payment is %s: it holds no money to return. %s", headroom->status, why) :
			 errdetail("The payment %s %s; other refunds returned %s; %s is left, this call asks for %s. %s",
					   headroom->captured ? "captured" : "holds",
					   qiwi_format_amount(headroom->base), qiwi_format_amount(headroom->refunded),
					   qiwi_format_amount(headroom->left), qiwi_format_amount(call->amount), why)));
}

/*
 * Is the refund this very one, made already at QIWI?  Ask QIWI for it by
 * its id; true (and call->result) if QIWI has it, false if not.
 */
static bool
refund_made_already(MoneyCall *call)
{
	QiwiOperation op;
	QiwiError	error;

	money_operation(call, false, &op);
	if (qiwi_exchange(&op, &error))
		return true;
	if (error.sqlstate != ERRCODE_QIWI_NOT_FOUND)
		qiwi_raise(&error);
	return false;
}

/*
 * qiwi_payin_refund(payment_id, refund_id, amount, currency, merchant):
 * return captured money, or release held money (a reversal).  Another
 * currency than the payment's is refused before anything is sent, and so
 * is more than is left as the tables count it.  More than is left as QIWI
 * counted it for the payment is refused too, unless QIWI made this very
 * refund already (its answer lost): that one is asked for by its id and
 * recorded, not sent again.
 */
Datum
qiwi_payin_refund(PG_FUNCTION_ARGS)
{
	char	   *payment_id = arg_required_id(fcinfo, 0, "payment_id", &payin_limits);
	char	   *refund_id = arg_required_id(fcinfo, 1, "refund_id", &payin_limits);
	Numeric		amount = arg_required_amount(fcinfo, 2, "amount", &payin_limits);
	char	   *currency = arg_required_currency(fcinfo, 3, "currency", &payin_limits);
	const Merchant *merchant = merchant_argument(fcinfo, 4);
	MoneyCall	call = {.merchant = merchant, .payment_id = payment_id, .id = refund_id,
		.amount = amount, .currency = currency, .is_refund = true};
	PayinHeadroom headroom;

	ledger_require_writable("refund a Payin payment", PAYIN_TABLES);
	refund_headroom(&call, &headroom);
	if (strcmp(headroom.status, "COMPLETED") != 0)
		refuse_refund(&call, &headroom, "Nothing was sent to QIWI.");
	if (strcmp(currency, headroom.currency) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("currency must be %s, the currency of Payin payment \"%s\"",
						headroom.currency, payment_id),
				 errdetail("Refund \"%s\" asks for %s %s. Nothing was sent to QIWI.",
						   refund_id, qiwi_format_amount(amount), currency)));
	if (!qiwi_money_within(amount, currency, headroom.left_here, headroom.currency))
		refuse_refund(&call, &headroom, "Nothing was sent to QIWI.");

	if (qiwi_money_within(amount, currency, headroom.left, headroom.currency))
		send_or_ask(&call);
	else if (!refund_made_already(&call))
		refuse_refund(&call, &headroom,
					  psprintf("QIWI counted the refunds in its answer for the payment, and has no refund \"%s\" of it; none was sent.",
							   refund_id));
	payin_store_refund(&call.result, "call");
	PG_RETURN_DATUM(HeapTupleGetDatum(operation_tuple(arg_result_desc(fcinfo, OP_NCOLS, "qiwi_payin_refund"),
													  &call.result)));
}

/* qiwi_payin_refund_status(payment_id, refund_id, merchant) */
Datum
qiwi_payin_refund_status(PG_FUNCTION_ARGS)
{
	char	   *payment_id = arg_required_id(fcinfo, 0, "payment_id", &payin_limits);
	char	   *refund_id = arg_required_id(fcinfo, 1, "refund_id", &payin_limits);
	const Merchant *merchant = merchant_argument(fcinfo, 2);
	PayinOperationResult refund;
	QiwiOperation op;
	QiwiError	error;

	ledger_require_ready();
	payin_refund_operation(merchant, payment_id, refund_id, NULL, NULL, false, &refund, &op);
	if (!qiwi_exchange(&op, &error))
		qiwi_raise(&error);
	if (ledger_can_record(psprintf("refund \"%s\" of Payin payment \"%s\"", refund_id, payment_id),
						  PAYIN_TABLES))
		payin_store_refund(&refund, "call");
	PG_RETURN_DATUM(HeapTupleGetDatum(operation_tuple(arg_result_desc(fcinfo, OP_NCOLS, "qiwi_payin_refund"),
													  &refund)));
}

/* qiwi_payin_refunds(payment_id, merchant): every refund of a payment */
Datum
qiwi_payin_refunds(PG_FUNCTION_ARGS)
{
	char	   *payment_id = arg_required_id(fcinfo, 0, "payment_id", &payin_limits);
	const Merchant *merchant = merchant_argument(fcinfo, 1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *refunds = NIL;
	QiwiOperation op;
	QiwiError	error;
	bool		record;
	ListCell   *lc;

	ledger_require_ready();
	payin_refunds_operation(merchant, payment_id, &refunds, &op);
	if (!qiwi_exchange(&op, &error))
		qiwi_raise(&error);
	record = ledger_can_record(psprintf("the refunds of Payin payment \"%s\"", payment_id),
							   PAYIN_TABLES);
	InitMaterializedSRF(fcinfo, 0);
	foreach(lc, refunds)
	{
		PayinOperationResult *refund = (PayinOperationResult *) lfirst(lc);

		if (record)
			payin_store_refund(refund, "call");
		tuplestore_puttuple(rsinfo->setResult, operation_tuple(rsinfo->setDesc, refund));
	}
	return (Datum) 0;
}

/*
 * qiwi_payin_delete_token(account, token, merchant): the token no longer
 * pays for the buyer's account.  True when QIWI deleted it now (204);
 * false when QIWI no longer knows it for that account (404
 * payin.resource.not.found: deleted before, by an earlier attempt of this
 * very call whose answer was lost, say, or never bound for it).  Either
 * way qiwi_payin_tokens records it deleted.
 */
Datum
qiwi_payin_delete_token(PG_FUNCTION_ARGS)
{
	char	   *account = required_field(fcinfo, 0, "account", PAYIN_MAX_FIELD_LENGTH);
	char	   *token = required_field(fcinfo, 1, "token", PAYIN_MAX_ID_LENGTH);
	const Merchant *merchant = merchant_argument(fcinfo, 2);
	QiwiOperation op;
	QiwiError	error;
	bool		deleted;

	ledger_require_writable("delete a Payin payment token", PAYIN_TABLES);
	payin_delete_token_operation(merchant, account, token, &deleted, &op);
	if (!qiwi_exchange(&op, &error) &&
		!(error.sqlstate == ERRCODE_QIWI_NOT_FOUND && error.error_code != NULL &&
		  strcmp(error.error_code, "payin.resource.not.found") == 0))
		qiwi_raise(&error);
	payin_store_token_deleted(merchant->name, account, token, deleted);
	PG_RETURN_BOOL(deleted);
}

/*
 * qiwi_payin_card_check(request_uid, merchant): a card check as QIWI has it
 * now, recorded forward only (with the token it bound)
 */
Datum
qiwi_payin_card_check(PG_FUNCTION_ARGS)
{
	char	   *request_uid = arg_required_id(fcinfo, 0, "request_uid", &payin_limits);
	const Merchant *merchant = merchant_argument(fcinfo, 1);
	TupleDesc	tupdesc;
	Datum		values[CHK_NCOLS];
	bool		nulls[CHK_NCOLS];
	PayinCardCheck check;
	QiwiOperation op;
	QiwiError	error;

	ledger_require_ready();
	payin_card_check_operation(merchant, request_uid, &check, &op);
	if (!qiwi_exchange(&op, &error))
	{
		if (error.sqlstate == ERRCODE_QIWI_NOT_FOUND && error.error_code != NULL &&
			strcmp(error.error_code, "payin.resource.not.found") == 0)
			error.hint = psprintf("QIWI knows no card check \"%s\" for merchant \"%s\": the check of a CHECK_CARD invoice has its bill_id as request_uid.",
								  request_uid, merchant->name);
		qiwi_raise(&error);
	}
	if (ledger_can_record(psprintf("Payin card check \"%s\"", request_uid), PAYIN_TABLES))
	{
		payin_store_card_check(&check, "call");
		if (check.has_token)
			payin_store_token(&check.token, "call");
	}

	tupdesc = arg_result_desc(fcinfo, CHK_NCOLS, "qiwi_payin_card_check");
	memset(nulls, false, sizeof(nulls));
	values[CHK_REQUEST_UID] = CStringGetTextDatum(check.request_uid);
	values[CHK_STATUS] = CStringGetTextDatum(check.status);
	values[CHK_IS_VALID_CARD] = BoolGetDatum(check.valid_card);
	nulls[CHK_IS_VALID_CARD] = !check.has_valid_card;
	values[CHK_THREE_DS_STATUS] = text_or_null(check.three_ds_status, &nulls[CHK_THREE_DS_STATUS]);
	values[CHK_OPERATION_DATE] = TimestampTzGetDatum(check.operation_date);
	nulls[CHK_OPERATION_DATE] = !check.has_operation_date;
	values[CHK_CARD_INFO] = PointerGetDatum(check.card_info);
	nulls[CHK_CARD_INFO] = check.card_info == NULL;
	values[CHK_CREATED_TOKEN] = text_or_null(check.has_token ? check.token.token : NULL,
											 &nulls[CHK_CREATED_TOKEN]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* Define the Payin settings and merchant options; register its ledger tables (from _PG_init) */
void
payin_init(void)
{
	/* whoever can change the URL can have a key sent to a server of theirs */
	DefineCustomStringVariable("qiwi.payin_api_url",
							   "Base URL of QIWI's Payin API for the default merchant.",
							   "The /partner/payin/v1/sites/... endpoints are appended to it.",
							   &qiwi_payin_api_url,
							   PAYIN_DEFAULT_API_URL,
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("qiwi.payin_site_id",
							   "Payin site id (siteId) of the default merchant.",
							   "The default merchant has no Payin key: Payin calls name a merchant (a server of the wrapper qiwi).",
							   &qiwi_payin_site_id,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	payin_define_merchant_options();
	payin_reconcile_init();
	payin_store_register_tables();
}
