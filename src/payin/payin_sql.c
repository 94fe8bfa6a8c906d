/*
 * payin_sql.c
 *		The SQL-callable functions of the Payin API.
 *
 * Each function checks every argument before anything is sent, names the
 * argument in its error, hands the call's operation (payin_wire.c) to the
 * exchange, records the answer (payin_store.c) and returns it.  A capture
 * or refund commits its intent before it is sent (payin_intent.c); one
 * recorded already, or an intent, is asked for by its id and sent only if
 * QIWI does not know it; within a call too, the exchange asks for it by its
 * id before it is ever sent again, so money moves once.  A payment token
 * deleted already is no error: deleting it is what the caller wanted.
 */
#include "core/core.h"
#include "payin/payin.h"

#include "funcapi.h"
#include "utils/guc.h"

#define PAYIN_TABLES "the qiwi_payin_* tables"
/* Columns of the types qiwi_payin_payment, and qiwi_payin_capture and qiwi_payin_refund */
#define PAYMENT_COLUMNS 14
#define OPERATION_COLUMNS 9

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

/* ---------- argument checks ---------- */

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

/* The qiwi_payin_invoice row of an invoice */
static Datum
invoice_datum(FunctionCallInfo fcinfo, const PayinInvoice *invoice)
{
	ResultColumn columns[] = {
		result_text(invoice->bill_id), result_text(invoice->invoice_uid),
		result_text(invoice->site_id), result_datum(NumericGetDatum(invoice->amount)),
		result_text(invoice->currency), result_text(invoice->status),
		result_pointer(invoice->flags), result_text(invoice->terms.pay_url),
		result_text(invoice->terms.comment),
		result_timestamp(invoice->created_at, invoice->has_created_at),
		result_timestamp(invoice->terms.expires_at, invoice->terms.has_expires_at),
		result_pointer(invoice->terms.customer), result_pointer(invoice->terms.custom_fields)
	};

	return qiwi_result_row(fcinfo, "qiwi_payin_invoice", columns, lengthof(columns));
}

/* The qiwi_payin_payment row of a payment */
static HeapTuple
payment_tuple(TupleDesc tupdesc, const PayinPayment *payment)
{
	ResultColumn columns[PAYMENT_COLUMNS] = {
		result_text(payment->payment_id), result_text(payment->bill_id),
		result_text(payment->status), result_datum(NumericGetDatum(payment->amount)),
		result_text(payment->currency), result_datum(NumericGetDatum(payment->captured_amount)),
		result_datum(NumericGetDatum(payment->refunded_amount)), result_text(payment->method),
		result_text(payment->masked_pan), result_text(payment->reason_code),
		result_text(payment->reason_message),
		result_timestamp(payment->created_at, payment->has_created_at),
		result_timestamp(payment->status_changed_at, payment->has_status_changed_at),
		result_pointer(payment->flags)
	};

	return qiwi_result_tuple(tupdesc, columns, lengthof(columns));
}

/* The qiwi_payin_capture or qiwi_payin_refund row of a capture or refund */
static HeapTuple
operation_tuple(TupleDesc tupdesc, const PayinOperationResult *r)
{
	ResultColumn columns[OPERATION_COLUMNS] = {
		result_text(r->payment_id), result_text(r->id), {NumericGetDatum(r->amount), r->amount == NULL},
		result_text(r->currency), result_text(r->status), result_pointer(r->flags),
		result_text(r->comment), result_timestamp(r->created_at, r->has_created_at),
		result_timestamp(r->status_changed_at, r->has_status_changed_at)
	};

	return qiwi_result_tuple(tupdesc, columns, lengthof(columns));
}

/* The qiwi_payin_card_check row of a card check */
static Datum
card_check_datum(FunctionCallInfo fcinfo, const PayinCardCheck *check)
{
	ResultColumn columns[] = {
		result_text(check->request_uid), result_text(check->status),
		{BoolGetDatum(check->valid_card), !check->has_valid_card},
		result_text(check->three_ds_status),
		result_timestamp(check->operation_date, check->has_operation_date),
		result_pointer(check->card_info),
		result_text(check->has_token ? check->token.token : NULL)
	};

	return qiwi_result_row(fcinfo, "qiwi_payin_card_check", columns, lengthof(columns));
}

/* ---------- moving money ---------- */

/* A capture or refund, and how to build its operations afresh */
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

/* Build the PUT or (ask) the GET of a MoneyCall (a QiwiOperationBuilder); each is sent once */
static void
money_operation(void *arg, bool ask, QiwiOperation *op)
{
	MoneyCall  *call = (MoneyCall *) arg;

	if (call->is_refund)
		payin_refund_operation(call->merchant, call->payment_id, call->id, call->amount,
							   call->currency, !ask, &call->result, op);
	else
		payin_capture_operation(call->merchant, call->payment_id, call->id, call->comment,
								!ask, &call->result, op);
	op->rebuild = money_operation;
	op->rebuild_arg = call;
}

/* The capture or refund row of a MoneyCall, recorded first if record */
static Datum
money_row(FunctionCallInfo fcinfo, const MoneyCall *call, bool record)
{
	const char *type = call->is_refund ? "qiwi_payin_refund" : "qiwi_payin_capture";

	if (record && call->is_refund)
		payin_store_refund(&call->result, LEDGER_BY_CALL);
	else if (record)
		payin_store_capture(&call->result, LEDGER_BY_CALL);
	return HeapTupleGetDatum(operation_tuple(arg_result_desc(fcinfo, OPERATION_COLUMNS, type),
											 &call->result));
}

/* A capture's or refund's payment_id and id (argument 1, argname), checked in order */
static void
money_call_ids(FunctionCallInfo fcinfo, const char *argname, MoneyCall *call)
{
	memset(call, 0, sizeof(*call));
	call->payment_id = arg_required_id(fcinfo, 0, "payment_id", &payin_limits);
	call->id = arg_required_id(fcinfo, 1, argname, &payin_limits);
	call->is_refund = strcmp(argname, "refund_id") == 0;
}

/* The intent of a MoneyCall: its ids, a refund's money, a capture's comment; 'sending' */
static PayinOperationResult *
money_intent(const MoneyCall *call)
{
	PayinOperationResult *intent = palloc0(sizeof(PayinOperationResult));

	intent->merchant = call->merchant->name;
	intent->payment_id = (char *) call->payment_id;
	intent->id = (char *) call->id;
	intent->amount = call->amount;
	intent->currency = (char *) call->currency;
	intent->comment = (char *) call->comment;
	intent->status = "sending";
	return intent;
}

/*
 * A capture or refund recorded here under its id already (an intent whose
 * outcome is not known, one given up as UNSENT, or one QIWI answered): its
 * id locked (a call sending it is waited for), then asked for by its id,
 * never sent blindly.  True if QIWI has it (call->result); false if
 * nothing is recorded (*recorded false), or only an intent, 'sending' or
 * UNSENT, QIWI does not have (the caller may send it, committing its
 * intent again).  A record QIWI does not have, or a refund id of other
 * money, is refused.
 */
static bool
money_recorded(MoneyCall *call, bool *recorded)
{
	char	   *status;
	Numeric		amount;
	char	   *currency;
	QiwiOperation op;

	*recorded = ledger_lock_id(call->is_refund ? &payin_refund_kind : &payin_capture_kind, call->merchant->name,
							   payin_operation_key(call->payment_id, call->id), &status, &amount, &currency);
	if (!*recorded)
		return false;
	if (call->is_refund && !qiwi_same_money(amount, currency, call->amount, call->currency))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refund \"%s\" of Payin payment \"%s\" is recorded for %s %s, not %s %s", call->id,
						call->payment_id, qiwi_format_amount(amount), currency, qiwi_format_amount(call->amount),
						call->currency),
				 errdetail("A refund id names one refund. Nothing was sent to QIWI.")));
	money_operation(call, false, &op);
	if (qiwi_made_already(&op))
		return true;
	if (strcmp(status, "sending") != 0 && strcmp(status, "UNSENT") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_QIWI_NOT_FOUND),
				 errmsg("%s \"%s\" of Payin payment \"%s\" is recorded here as %s, but QIWI does not have it",
						call->is_refund ? "refund" : "capture", call->id, call->payment_id, status),
				 errdetail("Nothing was sent to QIWI.")));
	return false;
}

/*
 * Has QIWI made a capture or refund of no row here already?  A primary that
 * failed over to an asynchronous standby may have sent it, its row lost
 * with it; QIWI does not document a repeated id, so it is asked for by its
 * id before it is sent.  True with call->result if QIWI has it (a refund
 * QIWI has for other money than asked is refused by the answer's reading).
 */
static bool
money_made_elsewhere(MoneyCall *call)
{
	QiwiOperation op;

	money_operation(call, false, &op);
	return qiwi_made_already(&op);
}

/* A capture or refund QIWI refused: its intent withdrawn (intent_send's refused) */
static void
withdraw_money(void *arg, const QiwiError *error)
{
	MoneyCall  *call = (MoneyCall *) arg;

	payin_store_withdraw(money_intent(call), call->is_refund,
						 psprintf("withdraw %s \"%s\"", call->is_refund ? "refund" : "capture", call->id));
}

/*
 * Send a capture or refund, its intent committed first: a new row, or over
 * the recorded one (an intent QIWI does not have, 'sending' or UNSENT);
 * true with call->result if QIWI answered, false with call->result the
 * intent ('sending') if the outcome is unknown
 */
static bool
money_send(MoneyCall *call, bool recorded)
{
	PayinOperationResult *intent = money_intent(call);
	QiwiOperation op;

	money_operation(call, false, &op);
	if (!payin_store_intent(intent, call->is_refund, recorded, op.context))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not %s: it was recorded meanwhile", op.context),
				 errdetail("Nothing was sent to QIWI."),
				 errhint("Call it again: it is then asked for by its id.")));
	if (intent_send(call->is_refund ? &payin_refund_kind : &payin_capture_kind, call->merchant->name,
					payin_operation_key(call->payment_id, call->id), "sending", &op, NULL, 0,
					"It stays 'sending': the reconciler asks QIWI for it by its id, and a new call with its id asks first.",
					withdraw_money, call))
		return true;
	call->result = *intent;
	return false;
}

/*
 * qiwi_payin_capture_status or qiwi_payin_refund_status(payment_id, id,
 * merchant): a capture or refund as QIWI has it now
 */
static Datum
money_status(FunctionCallInfo fcinfo, const char *argname)
{
	MoneyCall	call;
	QiwiOperation op;
	bool		record;

	money_call_ids(fcinfo, argname, &call);
	call.merchant = arg_merchant(fcinfo, 2);
	ledger_require_ready();
	money_operation(&call, true, &op);
	record = qiwi_read_call(&op, PAYIN_TABLES, "%s \"%s\" of Payin payment \"%s\"",
							call.is_refund ? "refund" : "capture", call.id, call.payment_id);
	return money_row(fcinfo, &call, record);
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
	args.comment = arg_optional_limited_text(fcinfo, 5, "comment", PAYIN_MAX_FIELD_LENGTH);
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
	merchant = arg_merchant(fcinfo, 14);
	ledger_require_writable("create a Payin invoice", PAYIN_TABLES);
	if (payin_store_lock_invoice(merchant->name, args.bill_id, &stored_amount, &stored_currency,
								 &stored_status))
		qiwi_require_same_money(psprintf("Payin invoice \"%s\"", args.bill_id), "qiwi_payin_invoices",
								"invoice", stored_amount, stored_currency, stored_status,
								args.amount, args.currency);

	payin_create_operation(merchant, &args, &invoice, &op);
	qiwi_call(&op);
	payin_store_invoice(&invoice, LEDGER_BY_CALL, false);
	PG_RETURN_DATUM(invoice_datum(fcinfo, &invoice));
}

/* Ask QIWI for an invoice with its payments and record them when possible */
static void
fetch_invoice(FunctionCallInfo fcinfo, PayinInvoice *invoice)
{
	char	   *bill_id;
	const Merchant *merchant = arg_reading_call(fcinfo, "bill_id", &payin_limits, &bill_id);
	QiwiOperation op;

	payin_details_operation(merchant, bill_id, invoice, &op);
	if (qiwi_read_call(&op, PAYIN_TABLES, "Payin invoice \"%s\"", bill_id))
		payin_store_invoice(invoice, LEDGER_BY_CALL, false);
}

/* qiwi_payin_invoice(bill_id, merchant): the invoice as QIWI has it now */
Datum
qiwi_payin_invoice(PG_FUNCTION_ARGS)
{
	PayinInvoice invoice;

	fetch_invoice(fcinfo, &invoice);
	PG_RETURN_DATUM(invoice_datum(fcinfo, &invoice));
}

/* qiwi_payin_payments(bill_id, merchant): the payments of an invoice */
Datum
qiwi_payin_payments(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PayinInvoice invoice;
	ListCell   *lc;

	fetch_invoice(fcinfo, &invoice);
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
	PayinPayment payment;
	QiwiOperation op;
	char	   *payment_id;
	const Merchant *merchant = arg_reading_call(fcinfo, "payment_id", &payin_limits, &payment_id);

	payin_payment_operation(merchant, payment_id, &payment, &op);
	if (qiwi_read_call(&op, PAYIN_TABLES, "Payin payment \"%s\"", payment_id))
		payin_store_payment(&payment, LEDGER_BY_CALL);
	PG_RETURN_DATUM(HeapTupleGetDatum(payment_tuple(arg_result_desc(fcinfo, PAYMENT_COLUMNS, "qiwi_payin_payment"),
													&payment)));
}

/*
 * qiwi_payin_capture(payment_id, capture_id, comment, merchant): take held
 * money; its intent committed before it is sent, QIWI's answer recorded in
 * the caller's transaction
 */
Datum
qiwi_payin_capture(PG_FUNCTION_ARGS)
{
	MoneyCall	call;
	bool		recorded;

	money_call_ids(fcinfo, "capture_id", &call);
	call.comment = arg_optional_limited_text(fcinfo, 2, "comment", PAYIN_MAX_FIELD_LENGTH);
	call.merchant = arg_merchant(fcinfo, 3);
	ledger_require_writable("capture a Payin payment", PAYIN_TABLES);
	if (money_recorded(&call, &recorded))
		PG_RETURN_DATUM(money_row(fcinfo, &call, true));
	payin_store_lock_payment(call.merchant->name, call.payment_id);
	if (!recorded && money_made_elsewhere(&call))
		PG_RETURN_DATUM(money_row(fcinfo, &call, true));
	PG_RETURN_DATUM(money_row(fcinfo, &call, money_send(&call, recorded)));
}

/* qiwi_payin_capture_status(payment_id, capture_id, merchant) */
Datum
qiwi_payin_capture_status(PG_FUNCTION_ARGS)
{
	return money_status(fcinfo, "capture_id");
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

	if (payin_store_headroom(call->merchant->name, call->payment_id, call->id, headroom))
		return;
	payin_payment_operation(call->merchant, call->payment_id, &payment, &op);
	qiwi_refund_fetch(&op, "qiwi_payin_payments does not have the payment", call->id);
	payin_store_payment(&payment, LEDGER_BY_CALL);
	if (!payin_store_headroom(call->merchant->name, call->payment_id, call->id, headroom))
		elog(ERROR, "Payin payment \"%s\" is not in qiwi_payin_payments after its recording",
			 call->payment_id);
}

/* Refuse a refund of more than is left (outcome: the last sentence of the detail) */
static void
refuse_refund(const MoneyCall *call, const PayinHeadroom *headroom, const char *outcome)
{
	qiwi_refund_refuse(psprintf("Payin payment \"%s\"", call->payment_id), call->id,
					   strcmp(headroom->status, "COMPLETED") != 0 ?
					   psprintf("The payment is %s: it holds no money to return. %s",
								headroom->status, outcome) :
					   qiwi_refund_counted(headroom->captured ? "The payment captured" :
										   "The payment holds", headroom->base,
										   headroom->refunded, headroom->left, call->amount,
										   outcome));
}

/*
 * qiwi_payin_refund(payment_id, refund_id, amount, currency, merchant):
 * return captured money, or release held money (a reversal).  A refund
 * recorded under this id already (an intent whose outcome is not known,
 * or UNSENT, too) is asked for by its id first, its id locked before its
 * payment's row.  Another currency than the payment's is refused before
 * anything is sent, and so is more than is left as the tables count it
 * (refunds 'sending' counted as made).  A refund of an id with no row is
 * then asked for by its id too (a failover may have lost its row), and
 * more than is left as QIWI counted it for the payment is refused.
 * Its intent is committed before it is sent, QIWI's answer recorded in the
 * caller's transaction.
 */
Datum
qiwi_payin_refund(PG_FUNCTION_ARGS)
{
	MoneyCall	call;
	PayinHeadroom headroom;
	bool		recorded;

	money_call_ids(fcinfo, "refund_id", &call);
	call.amount = arg_required_amount(fcinfo, 2, "amount", &payin_limits);
	call.currency = arg_required_currency(fcinfo, 3, "currency", &payin_limits);
	call.merchant = arg_merchant(fcinfo, 4);
	ledger_require_writable("refund a Payin payment", PAYIN_TABLES);
	if (money_recorded(&call, &recorded))
		PG_RETURN_DATUM(money_row(fcinfo, &call, true));
	refund_headroom(&call, &headroom);
	if (strcmp(headroom.status, "COMPLETED") != 0)
		refuse_refund(&call, &headroom, "Nothing was sent to QIWI.");
	qiwi_refund_check_currency(psprintf("Payin payment \"%s\"", call.payment_id),
							   headroom.currency, call.id, call.amount, call.currency);
	if (!qiwi_money_within(call.amount, call.currency, headroom.left_here, headroom.currency))
		refuse_refund(&call, &headroom, "Nothing was sent to QIWI.");
	if (!recorded && money_made_elsewhere(&call))
		PG_RETURN_DATUM(money_row(fcinfo, &call, true));
	if (!qiwi_money_within(call.amount, call.currency, headroom.left, headroom.currency))
		refuse_refund(&call, &headroom,
					  psprintf("QIWI counted the refunds in its answer for the payment, and has no refund \"%s\" of it; none was sent.",
							   call.id));
	PG_RETURN_DATUM(money_row(fcinfo, &call, money_send(&call, recorded)));
}

/* qiwi_payin_refund_status(payment_id, refund_id, merchant) */
Datum
qiwi_payin_refund_status(PG_FUNCTION_ARGS)
{
	return money_status(fcinfo, "refund_id");
}

/* qiwi_payin_refunds(payment_id, merchant): every refund of a payment */
Datum
qiwi_payin_refunds(PG_FUNCTION_ARGS)
{
	char	   *payment_id;
	const Merchant *merchant = arg_reading_call(fcinfo, "payment_id", &payin_limits, &payment_id);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *refunds = NIL;
	QiwiOperation op;
	bool		record;
	ListCell   *lc;

	payin_refunds_operation(merchant, payment_id, &refunds, &op);
	record = qiwi_read_call(&op, PAYIN_TABLES, "the refunds of Payin payment \"%s\"", payment_id);
	InitMaterializedSRF(fcinfo, 0);
	foreach(lc, refunds)
	{
		PayinOperationResult *refund = (PayinOperationResult *) lfirst(lc);

		if (record)
			payin_store_refund(refund, LEDGER_BY_CALL);
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
	const Merchant *merchant = arg_merchant(fcinfo, 2);
	QiwiOperation op;
	QiwiError	error;
	bool		deleted;

	ledger_require_writable("delete a Payin payment token", PAYIN_TABLES);
	payin_delete_token_operation(merchant, account, token, &deleted, &op);
	if (!qiwi_exchange(&op, &error) && !payin_not_found(&error))
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
	char	   *request_uid;
	const Merchant *merchant = arg_reading_call(fcinfo, "request_uid", &payin_limits, &request_uid);
	PayinCardCheck check;
	QiwiOperation op;
	QiwiError	error;

	payin_card_check_operation(merchant, request_uid, &check, &op);
	if (!qiwi_exchange(&op, &error))
	{
		if (payin_not_found(&error))
			error.hint = psprintf("QIWI knows no card check \"%s\" for merchant \"%s\": the check of a CHECK_CARD invoice has its bill_id as request_uid.",
								  request_uid, merchant->name);
		qiwi_raise(&error);
	}
	if (ledger_can_record(psprintf("Payin card check \"%s\"", request_uid), PAYIN_TABLES))
	{
		payin_store_card_check(&check, LEDGER_BY_CALL);
		if (check.has_token)
			payin_store_token(&check.token, LEDGER_BY_CALL);
	}
	PG_RETURN_DATUM(card_check_datum(fcinfo, &check));
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
	payin_intent_init();
}
