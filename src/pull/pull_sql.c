/*
 * pull_sql.c
 *		The SQL-callable functions of the Pull API.
 *
 * Each function checks every argument before anything is sent, names the
 * argument in its error, hands the call's operation (pull_wire.c) to the
 * exchange, records the answer (pull_store.c) and returns it.  Every Pull
 * call may be repeated: the same project, bill id and amount give the same
 * result (§3), so a create or refund whose answer was lost is sent again
 * as it was; another amount under the same id is QIWI's 215, reported as a
 * reused id.
 */
#include "core/core.h"
#include "pull/pull.h"

#include "utils/builtins.h"

#define PULL_TABLES "the qiwi_pull_* tables"

PG_FUNCTION_INFO_V1(qiwi_pull_create_bill);
PG_FUNCTION_INFO_V1(qiwi_pull_bill_status);
PG_FUNCTION_INFO_V1(qiwi_pull_cancel_bill);
PG_FUNCTION_INFO_V1(qiwi_pull_refund);
PG_FUNCTION_INFO_V1(qiwi_pull_refund_status);
PG_FUNCTION_INFO_V1(qiwi_pull_form_url);

/* ---------- arguments ---------- */

/* A refund id: 1 to 9 of [0-9A-Za-z] (§3) */
static char *
refund_id_argument(FunctionCallInfo fcinfo, int argno)
{
	char	   *value = arg_required_text(fcinfo, argno, "refund_id");
	size_t		len = strlen(value);
	size_t		good = 0;

	while (good < len && isascii((unsigned char) value[good]) &&
		   isalnum((unsigned char) value[good]))
		good++;
	if (len == 0 || len > PULL_MAX_REFUND_ID_LENGTH || good != len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refund_id must be 1 to %d Latin letters or digits", PULL_MAX_REFUND_ID_LENGTH)));
	return value;
}

/* ---------- results ---------- */

/* The qiwi_pull_bill row of a bill */
static Datum
bill_datum(FunctionCallInfo fcinfo, const PullBill *bill)
{
	ResultColumn columns[] = {
		result_text(bill->bill_id), result_datum(NumericGetDatum(bill->amount)),
		result_text(bill->currency), result_text(bill->status), result_text(bill->user),
		result_text(bill->comment), result_pointer(bill->origin_amount),
		result_text(bill->origin_currency), result_text(bill->error)
	};

	return qiwi_result_row(fcinfo, "qiwi_pull_bill", columns, lengthof(columns));
}

/* The qiwi_pull_refund row of a refund */
static Datum
refund_datum(FunctionCallInfo fcinfo, const PullRefund *refund)
{
	ResultColumn columns[] = {
		result_text(refund->bill_id), result_text(refund->refund_id),
		result_datum(NumericGetDatum(refund->amount)), result_text(refund->currency),
		result_text(refund->status), result_text(refund->error)
	};

	return qiwi_result_row(fcinfo, "qiwi_pull_refund", columns, lengthof(columns));
}

/* Send a create or refund; QIWI's 215 is said to be an id used for other money */
static void
money_call(QiwiOperation *op, const char *what, const char *id)
{
	QiwiError	error;

	if (qiwi_exchange(op, &error))
		return;
	if (error.error_code != NULL && strcmp(error.error_code, "215") == 0)
		error.hint = psprintf("QIWI has %s \"%s\" already, for another amount: a reused id. Use a new id.",
							  what, id);
	qiwi_raise(&error);
}

/* ---------- bills ---------- */

/*
 * qiwi_pull_create_bill(bill_id, phone, amount, comment, lifetime,
 *		currency, pay_source, prv_name, merchant)
 */
Datum
qiwi_pull_create_bill(PG_FUNCTION_ARGS)
{
	static const char *const pay_sources[] = {"qw", "mobile", NULL};
	PullCreateArgs args;
	PullBill	bill;
	QiwiOperation op;
	const Merchant *merchant;
	Numeric		stored_amount;
	char	   *stored_currency;
	char	   *stored_status;

	args.bill_id = arg_required_id(fcinfo, 0, "bill_id", &pull_limits);
	(void) arg_required_text(fcinfo, 1, "phone");
	args.phone = arg_optional_phone(fcinfo, 1, "phone");
	args.amount = arg_required_amount(fcinfo, 2, "amount", &pull_limits);
	(void) arg_required_text(fcinfo, 3, "comment");
	args.comment = arg_optional_limited_text(fcinfo, 3, "comment", PULL_MAX_COMMENT_LENGTH);
	args.lifetime = arg_required_expiry(fcinfo, 4, "lifetime", &pull_limits);
	args.currency = arg_required_currency(fcinfo, 5, "currency", &pull_limits);
	args.pay_source = arg_optional_name(fcinfo, 6, "pay_source", pay_sources);
	args.prv_name = arg_optional_field(fcinfo, 7, "prv_name", PULL_MAX_PRV_NAME_LENGTH);
	merchant = arg_merchant(fcinfo, 8);
	ledger_require_writable("create a Pull bill", PULL_TABLES);
	if (ledger_lock_item(&pull_bill_kind, merchant->name, args.bill_id, &stored_status,
						 &stored_amount, &stored_currency))
		qiwi_require_same_money(psprintf("Pull bill \"%s\"", args.bill_id), "qiwi_pull_bills", "bill",
								stored_amount, stored_currency, stored_status, args.amount,
								args.currency);

	pull_create_operation(merchant, &args, &bill, &op);
	money_call(&op, "bill", args.bill_id);
	pull_store_bill(&bill, LEDGER_BY_CALL);
	PG_RETURN_DATUM(bill_datum(fcinfo, &bill));
}

/* qiwi_pull_bill_status(bill_id, merchant): the bill as QIWI has it now, recorded */
Datum
qiwi_pull_bill_status(PG_FUNCTION_ARGS)
{
	char	   *bill_id;
	const Merchant *merchant = arg_reading_call(fcinfo, "bill_id", &pull_limits, &bill_id);
	PullBill	bill;
	QiwiOperation op;

	pull_bill_operation(merchant, bill_id, false, &bill, &op);
	if (qiwi_read_call(&op, PULL_TABLES, "Pull bill \"%s\"", bill_id))
		pull_store_bill(&bill, LEDGER_BY_CALL);
	PG_RETURN_DATUM(bill_datum(fcinfo, &bill));
}

/* qiwi_pull_cancel_bill(bill_id, merchant): PATCH status=rejected, recorded */
Datum
qiwi_pull_cancel_bill(PG_FUNCTION_ARGS)
{
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &pull_limits);
	const Merchant *merchant = arg_merchant(fcinfo, 1);
	PullBill	bill;
	QiwiOperation op;

	ledger_require_writable("cancel a Pull bill", PULL_TABLES);
	pull_bill_operation(merchant, bill_id, true, &bill, &op);
	qiwi_call(&op);
	pull_store_bill(&bill, LEDGER_BY_CALL);
	PG_RETURN_DATUM(bill_datum(fcinfo, &bill));
}

/* ---------- refunds ---------- */

/*
 * The paid bill a refund returns money of, its row locked: as the tables
 * have it, or, for a bill they do not know, as QIWI answers (recorded
 * first); a bill that is not paid, or too little left, refuses the refund
 */
static void
check_refund(const Merchant *merchant, const char *bill_id, const char *refund_id,
			 Numeric amount, char **currency)
{
	Numeric		bill_amount;
	char	   *status;
	Numeric		refunded;
	Numeric		left;
	char	   *item = psprintf("Pull bill \"%s\"", bill_id);

	if (!ledger_lock_item(&pull_bill_kind, merchant->name, bill_id, &status, &bill_amount, currency))
	{
		PullBill	bill;
		QiwiOperation op;

		pull_bill_operation(merchant, bill_id, false, &bill, &op);
		qiwi_refund_fetch(&op, "qiwi_pull_bills does not have the bill", refund_id);
		pull_store_bill(&bill, LEDGER_BY_CALL);
		if (!ledger_lock_item(&pull_bill_kind, merchant->name, bill_id, &status, &bill_amount,
							  currency))
			elog(ERROR, "%s is not in qiwi_pull_bills after its recording", item);
	}
	if (strcmp(status, "paid") != 0)
		qiwi_refund_refuse(item, refund_id,
						   psprintf("The bill is %s: it holds no money to return. Nothing was sent to QIWI.",
									status));
	refunded = pull_store_refunded(merchant->name, bill_id, refund_id);
	left = numeric_sub_opt_error(bill_amount, refunded, NULL);
	if (!qiwi_money_within(amount, *currency, left, *currency))
		qiwi_refund_refuse(item, refund_id,
						   qiwi_refund_counted("The bill is for", bill_amount, refunded, left,
											   amount, "Nothing was sent to QIWI."));
}

/* qiwi_pull_refund(bill_id, refund_id, amount, merchant): return money of a paid bill */
Datum
qiwi_pull_refund(PG_FUNCTION_ARGS)
{
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &pull_limits);
	char	   *refund_id = refund_id_argument(fcinfo, 1);
	Numeric		amount = arg_required_amount(fcinfo, 2, "amount", &pull_limits);
	const Merchant *merchant = arg_merchant(fcinfo, 3);
	PullRefund	refund;
	QiwiOperation op;
	char	   *currency;

	ledger_require_writable("refund a Pull bill", PULL_TABLES);
	check_refund(merchant, bill_id, refund_id, amount, &currency);
	refund.currency = currency;
	pull_refund_operation(merchant, bill_id, refund_id, amount, &refund, &op);
	money_call(&op, "refund", refund_id);
	pull_store_refund(&refund, LEDGER_BY_CALL);
	PG_RETURN_DATUM(refund_datum(fcinfo, &refund));
}

/* qiwi_pull_refund_status(bill_id, refund_id, merchant): a refund as QIWI has it now */
Datum
qiwi_pull_refund_status(PG_FUNCTION_ARGS)
{
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &pull_limits);
	char	   *refund_id = refund_id_argument(fcinfo, 1);
	const Merchant *merchant = arg_merchant(fcinfo, 2);
	PullRefund	refund;
	QiwiOperation op;

	ledger_require_ready();
	refund.currency = pull_store_bill_currency(merchant->name, bill_id);
	pull_refund_operation(merchant, bill_id, refund_id, NULL, &refund, &op);
	if (qiwi_read_call(&op, PULL_TABLES, "refund \"%s\" of Pull bill \"%s\"", refund_id, bill_id) &&
		refund.currency != NULL)
		pull_store_refund(&refund, LEDGER_BY_CALL);
	PG_RETURN_DATUM(refund_datum(fcinfo, &refund));
}

/*
 * qiwi_pull_form_url(bill_id, success_url, fail_url, pay_source, merchant):
 * the payment form's URL for a bill
 */
Datum
qiwi_pull_form_url(PG_FUNCTION_ARGS)
{
	static const char *const pay_sources[] = {"qw", "mobile", "card", "wm", "ssk", NULL};
	char	   *bill_id = arg_required_id(fcinfo, 0, "bill_id", &pull_limits);
	char	   *success_url = arg_optional_url(fcinfo, 1, "success_url");
	char	   *fail_url = arg_optional_url(fcinfo, 2, "fail_url");
	char	   *pay_source = arg_optional_name(fcinfo, 3, "pay_source", pay_sources);
	const Merchant *merchant = arg_merchant(fcinfo, 4);

	PG_RETURN_TEXT_P(cstring_to_text(pull_form_url(merchant, bill_id, success_url, fail_url,
												   pay_source)));
}

/* Define the Pull merchant options; register its reconciler and ledger kinds (from _PG_init) */
void
pull_init(void)
{
	pull_define_merchant_options();
	pull_reconcile_init();
	ledger_add_kind(&pull_bill_kind);
	ledger_add_kind(&pull_refund_kind);
}
