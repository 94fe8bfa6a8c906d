/*
 * payin_reconcile.c
 *		Payin invoices as a kind of thing the reconciler keeps current: a
 *		CREATED invoice until it is PAID or EXPIRED, a PAID one while a
 *		payment of it holds money (until it is captured or released, by the
 *		shop or by QIWI at the capture deadline).  Each is asked about with
 *		the operation of qiwi_payin_invoice (the invoice with its payments)
 *		and the answer recorded like that function's.
 */
#include "core/core.h"
#include "payin/payin.h"

/*
 * Why a merchant cannot be asked about its invoices, captures and refunds,
 * or NULL.  The kinds require no option of the reconciler: the default
 * merchant never has a Payin key, and a kind that required one would have
 * the reconciler report that the default merchant lacks it whenever no
 * server exists, Payin used or not.
 */
char *
payin_merchant_problem(const Merchant *merchant)
{
	if (merchant_value(merchant, payin_option_site_id) == NULL ||
		merchant_value(merchant, payin_option_api_key) == NULL)
		return psprintf("merchant \"%s\" has no payin_site_id or no payin_api_key", merchant->name);
	return NULL;
}

/* The operation that asks about due invoice i (a ReconcileKind's operation) */
static void
due_invoice_operation(LedgerDue *due, int i, QiwiOperation *op)
{
	due->answers[i] = palloc0(sizeof(PayinInvoice));
	payin_details_operation(due->merchants[i], due->ids[i], due->answers[i], op);
}

/*
 * Record QIWI's answer (or failure) for due invoice i, in a transaction;
 * true if its status changed (a ReconcileKind's record).  A refused key
 * stops the merchant (the reconciler's doing), not the invoice.
 */
static bool
record_invoice_answer(LedgerDue *due, int i, QiwiOperation *op, const HttpResponse *resp,
					  bool *failed, bool *key_refused)
{
	PayinInvoice *invoice = (PayinInvoice *) op->result;

	if (!ledger_answer_taken(due, i, op, resp, failed, key_refused))
		return false;
	payin_store_invoice(invoice, LEDGER_BY_RECONCILER, true);
	ledger_add_check(due, i, false, NULL);
	return strcmp(due->statuses[i], invoice->status) != 0;
}

static const ReconcileKind payin_kind = {
	.what = "Payin invoices",
	.required_options = NULL,
	.nrequired = 0,
	.ledger = &payin_invoice_kind,
	.merchant_problem = payin_merchant_problem,
	.operation = due_invoice_operation,
	.record = record_invoice_answer,
};

/* Make Payin invoices a kind of thing to reconcile (from _PG_init) */
void
payin_reconcile_init(void)
{
	reconciler_add_kind(&payin_kind);
}
