/*
 * review.c
 *		Entry points for the review's tests of the exchange
 *		(test/t/021_core_ask_before_resend.pl): a Bill Payments refund sent
 *		as an operation that is not idempotent, as money.c sends it, but
 *		counted for an account of a rate limit, so that the limiter may
 *		refuse the ask that follows a lost answer.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(qiwi_core_test_refund_asking_limited);

/* One request per ten minutes: a second one in a call always waits too long */
static const QiwiRateLimit review_limit = {"review", 1, 600000};

/* A rate-limited bill refund and what QIWI answers for it */
typedef struct LimitedRefund
{
	const Merchant *merchant;
	char	   *bill_id;
	char	   *refund_id;
	Numeric		amount;
	char	   *account;
	QiwiRefund	refund;
} LimitedRefund;

/* Build the refund's PUT, not idempotent, or (ask) its GET, both limited (a QiwiOperationBuilder) */
static void
limited_refund_operation(void *arg, bool ask, QiwiOperation *op)
{
	LimitedRefund *r = (LimitedRefund *) arg;

	if (ask)
		bill_get_refund_operation(r->merchant, r->bill_id, r->refund_id, &r->refund, op);
	else
		bill_refund_operation(r->merchant, r->bill_id, r->refund_id, r->amount, "RUB",
							  &r->refund, op);
	op->idempotent = ask;
	op->rebuild = limited_refund_operation;
	op->rebuild_arg = r;
	op->rate_limit = &review_limit;
	op->rate_account = r->account;
}

/*
 * qiwi_core_test_refund_asking_limited(bill_id, refund_id, amount, account):
 * refund amount RUB of a bill of the default merchant through
 * qiwi_exchange, its requests counted for account; the refund's id and
 * amount as QIWI answers them, or the call's error
 */
Datum
qiwi_core_test_refund_asking_limited(PG_FUNCTION_ARGS)
{
	LimitedRefund r;
	QiwiOperation op;
	QiwiError	error;

	r.merchant = merchant_for_call(NULL);
	r.bill_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	r.refund_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	r.amount = PG_GETARG_NUMERIC(2);
	r.account = text_to_cstring(PG_GETARG_TEXT_PP(3));
	limited_refund_operation(&r, false, &op);
	if (!qiwi_exchange(&op, &error))
		qiwi_raise(&error);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s %s", r.refund.refund_id,
											  qiwi_format_amount(r.refund.amount))));
}
