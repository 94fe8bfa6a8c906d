/*
 * money.c
 *		Entry points into the exchange's asking before sending again: a Bill
 *		Payments refund sent as an operation that is not idempotent (the
 *		extension itself sends it as idempotent), so that a test sees the
 *		core, not an API's SQL file, ask for it by its id after a lost
 *		answer, for any API whose operation can rebuild itself.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(qiwi_core_test_refund_asking);

/* A bill refund and what QIWI answers for it */
typedef struct AskingRefund
{
	const Merchant *merchant;
	char	   *bill_id;
	char	   *refund_id;
	Numeric		amount;
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
}

/*
 * qiwi_core_test_refund_asking(bill_id, refund_id, amount): refund amount
 * RUB of a bill of the default merchant through qiwi_exchange; the refund's
 * id and amount as QIWI answers them, or the call's error
 */
Datum
qiwi_core_test_refund_asking(PG_FUNCTION_ARGS)
{
	AskingRefund r;
	QiwiOperation op;
	QiwiError	error;

	r.merchant = merchant_for_call(NULL);
	r.bill_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	r.refund_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	r.amount = PG_GETARG_NUMERIC(2);
	refund_operation(&r, false, &op);
	if (!qiwi_exchange(&op, &error))
		qiwi_raise(&error);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s %s", r.refund.refund_id,
											  qiwi_format_amount(r.refund.amount))));
}
