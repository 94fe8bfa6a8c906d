/*
 * pull_reconcile.c
 *		Pull bills and refunds as kinds of things the reconciler keeps
 *		current: a bill while it is waiting, a refund while it is
 *		processing.  Each is asked about with the operation of
 *		qiwi_pull_bill_status or qiwi_pull_refund_status and the answer
 *		recorded like that function's, forward only.
 */
#include "core/core.h"
#include "pull/pull.h"

#include "utils/builtins.h"

/*
 * Why a merchant cannot be asked about its Pull items, or NULL.  No option
 * is required of the reconciler: the default merchant never has a Pull
 * project, and requiring one would report it missing whenever Pull is not
 * used.
 */
static char *
merchant_problem(const Merchant *merchant)
{
	if (merchant_value(merchant, pull_option_prv_id) == NULL ||
		merchant_value(merchant, pull_option_api_id) == NULL ||
		merchant_value(merchant, pull_option_api_password) == NULL)
		return psprintf("merchant \"%s\" has no pull_prv_id, pull_api_id or pull_api_password",
						merchant->name);
	return NULL;
}

/* The operation that asks about due bill i (a ReconcileKind's operation) */
static void
due_bill_operation(LedgerDue *due, int i, QiwiOperation *op)
{
	due->answers[i] = palloc0(sizeof(PullBill));
	pull_bill_operation(due->merchants[i], due->ids[i], false, due->answers[i], op);
}

/*
 * Record QIWI's answer for due item i (a bill or a refund, by the due
 * kind), in a transaction; true if its status changed
 */
static bool
record_answer(LedgerDue *due, int i, QiwiOperation *op, const HttpResponse *resp, bool *failed,
			  bool *key_refused)
{
	const char *status;

	if (!ledger_answer_taken(due, i, op, resp, failed, key_refused))
		return false;
	if (due->kind == &pull_bill_kind)
	{
		pull_store_bill(op->result, LEDGER_BY_RECONCILER);
		status = ((PullBill *) op->result)->status;
	}
	else
	{
		pull_store_refund(op->result, LEDGER_BY_RECONCILER);
		status = ((PullRefund *) op->result)->status;
	}
	ledger_add_check(due, i, false, NULL);
	return strcmp(due->statuses[i], status) != 0;
}

/* Due column column of item i as text */
static char *
due_text(LedgerDue *due, int i, int column)
{
	bool		isnull;
	Datum		d = ledger_due_value(due, i, column, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* The operation that asks about due refund i: its bill and refund ids are due columns */
static void
due_refund_operation(LedgerDue *due, int i, QiwiOperation *op)
{
	PullRefund *refund = palloc0(sizeof(PullRefund));

	refund->currency = due_text(due, i, 3);
	due->answers[i] = refund;
	pull_refund_operation(due->merchants[i], due_text(due, i, 1), due_text(due, i, 2), NULL,
						  refund, op);
}

static const ReconcileKind pull_bills = {
	.what = "Pull bills",
	.ledger = &pull_bill_kind,
	.merchant_problem = merchant_problem,
	.operation = due_bill_operation,
	.record = record_answer,
};

static const ReconcileKind pull_refunds = {
	.what = "Pull refunds",
	.ledger = &pull_refund_kind,
	.merchant_problem = merchant_problem,
	.operation = due_refund_operation,
	.record = record_answer,
};

/* Make Pull bills and refunds kinds of things to reconcile (from _PG_init) */
void
pull_reconcile_init(void)
{
	reconciler_add_kind(&pull_bills);
	reconciler_add_kind(&pull_refunds);
}
