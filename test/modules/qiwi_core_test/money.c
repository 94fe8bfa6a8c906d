/*
 * money.c
 *		Entry points into the exchange's asking before sending again
 *		(test/t/021_core_ask_before_resend.pl): a Bill Payments refund sent
 *		as an operation that is not idempotent (the extension itself sends
 *		it as idempotent), so that a test sees the core, not an API's SQL
 *		file, ask for it by its id after a lost answer, for any API whose
 *		operation can rebuild itself; and the same refund counted for an
 *		account of a rate limit, so that the limiter may refuse the ask that
 *		follows a lost answer.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(qiwi_core_test_refund_asking);
PG_FUNCTION_INFO_V1(qiwi_core_test_refund_asking_limited);

/* One request per ten minutes: a second one in a call always waits too long */
static const QiwiRateLimit test_limit = {"review", 1, 600000};

/* A bill refund, the account its requests count for (NULL: none), and what QIWI answers for it */
typedef struct AskingRefund
{
	const Merchant *merchant;
	char	   *bill_id;
	char	   *refund_id;
	Numeric		amount;
	char	   *account;
	QiwiRefund	refund;
} AskingRefund;

/* Build the refund's PUT, not idempotent, or (ask) its GET (a QiwiOperationBuilder) */
static void
refund_operation(void *arg, bool ask, QiwiOperation *op)
{
	AskingRefund *r = (AskingRefund *) arg;

	if (ask)
		bill_get_refund_operation(r->merchant, r->bill_id, r->refund_id, &r->refund, op);
	else
		bill_refund_operation(r->merchant, r->bill_id, r->refund_id, r->amount, "RUB",
							  &r->refund, op);
	op->idempotent = ask;
	op->rebuild = refund_operation;
	op->rebuild_arg = r;
	if (r->account != NULL)
	{
		op->rate_limit = &test_limit;
		op->rate_account = r->account;
	}
}

/*
 * Refund the arguments' amount RUB of a bill of the default merchant
 * through qiwi_exchange (bill_id, refund_id, amount, and the account as
 * argument 3 if given); the refund's id and amount as QIWI answers them,
 * or the call's error
 */
static Datum
refund_asking(FunctionCallInfo fcinfo, bool limited)
{
	AskingRefund r;
	QiwiOperation op;
	QiwiError	error;

	r.merchant = merchant_for_call(NULL);
	r.bill_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	r.refund_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	r.amount = PG_GETARG_NUMERIC(2);
	r.account = limited ? text_to_cstring(PG_GETARG_TEXT_PP(3)) : NULL;
	refund_operation(&r, false, &op);
	if (!qiwi_exchange(&op, &error))
		qiwi_raise(&error);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s %s", r.refund.refund_id,
											  qiwi_format_amount(r.refund.amount))));
}

/* qiwi_core_test_refund_asking(bill_id, refund_id, amount) */
Datum
qiwi_core_test_refund_asking(PG_FUNCTION_ARGS)
{
	return refund_asking(fcinfo, false);
}

/* qiwi_core_test_refund_asking_limited(bill_id, refund_id, amount, account) */
Datum
qiwi_core_test_refund_asking_limited(PG_FUNCTION_ARGS)
{
	return refund_asking(fcinfo, true);
}
