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

#include "utils/builtins.h"
#include "utils/timestamp.h"

/*
 * The due invoices of a round, their merchants and QIWI's answers about
 * them, and the checks of the chunk being recorded: they are written
 * together (flush_checks)
 */
typedef struct DueInvoices
{
	PayinDueInvoice *due;
	const Merchant **merchants;
	PayinInvoice *answers;
	TimestampTz claimed_at;		/* a notification after it is not confirmed by the answers */
	int			nchecks;
	const char **check_merchants;
	const char **check_bill_ids;
	bool	   *check_failed;
	const char **check_errors;
} DueInvoices;

/*
 * Why a merchant cannot be asked about its invoices, or NULL.  The kind
 * requires no option of the reconciler: the default merchant never has a
 * Payin key, and a kind that required one would have the reconciler report
 * that the default merchant lacks it whenever no server exists, Payin used
 * or not.
 */
static char *
merchant_problem(const char *name, const Merchant *merchant)
{
	if (merchant == NULL)
		return psprintf("merchant \"%s\" no longer exists: there is no server %s of the wrapper qiwi",
						name, quote_identifier(name));
	if (merchant_value(merchant, payin_option_site_id) == NULL ||
		merchant_value(merchant, payin_option_api_key) == NULL)
		return psprintf("merchant \"%s\" has no payin_site_id or no payin_api_key", name);
	return NULL;
}

/*
 * Claim up to limit due invoices of the merchants not in skip, in a
 * transaction (a ReconcileKind's claim).  One whose merchant cannot be
 * asked is a failed check, with the reason.
 */
static void *
claim_due_invoices(int limit, Datum skip, int *n)
{
	DueInvoices *invoices = palloc(sizeof(DueInvoices));
	int			claimed;
	int			kept = 0;

	invoices->claimed_at = GetCurrentTimestamp();
	invoices->due = payin_store_due_invoices(limit, skip, &claimed);
	invoices->merchants = palloc(sizeof(Merchant *) * Max(claimed, 1));
	for (int i = 0; i < claimed; i++)
	{
		const char *name = invoices->due[i].merchant;
		const Merchant *merchant = NULL;
		char	   *problem;

		/* invoices come in no merchant's order; a round has few merchants */
		for (int j = 0; j < kept && merchant == NULL; j++)
			if (strcmp(invoices->merchants[j]->name, name) == 0)
				merchant = invoices->merchants[j];
		if (merchant == NULL)
			merchant = merchant_by_name(name);
		problem = merchant_problem(name, merchant);
		if (problem != NULL)
		{
			payin_store_check_result(name, invoices->due[i].bill_id, true, problem,
									 invoices->claimed_at);
			continue;
		}
		invoices->due[kept] = invoices->due[i];
		invoices->merchants[kept++] = merchant;
	}
	*n = kept;
	invoices->answers = palloc0(sizeof(PayinInvoice) * Max(kept, 1));
	invoices->nchecks = 0;
	invoices->check_merchants = palloc(sizeof(char *) * Max(kept, 1));
	invoices->check_bill_ids = palloc(sizeof(char *) * Max(kept, 1));
	invoices->check_failed = palloc(sizeof(bool) * Max(kept, 1));
	invoices->check_errors = palloc(sizeof(char *) * Max(kept, 1));
	return invoices;
}

/* The operation that asks about due invoice i (a ReconcileKind's operation) */
static void
due_invoice_operation(void *items, int i, QiwiOperation *op)
{
	DueInvoices *invoices = (DueInvoices *) items;

	payin_details_operation(invoices->merchants[i], invoices->due[i].bill_id,
							&invoices->answers[i], op);
}

/* Add a check of a due invoice to the chunk's: answered, or failed with error */
static void
add_check(DueInvoices *invoices, const PayinDueInvoice *due, bool failed, const char *error)
{
	int			k = invoices->nchecks++;

	invoices->check_merchants[k] = due->merchant;
	invoices->check_bill_ids[k] = due->bill_id;
	invoices->check_failed[k] = failed;
	invoices->check_errors[k] = error;
}

/* Write the chunk's checks in one statement (a ReconcileKind's flush) */
static void
flush_checks(void *items)
{
	DueInvoices *invoices = (DueInvoices *) items;

	payin_store_check_results(invoices->nchecks, invoices->check_merchants,
							  invoices->check_bill_ids, invoices->check_failed,
							  invoices->check_errors, invoices->claimed_at);
	invoices->nchecks = 0;
}

/*
 * Record QIWI's answer (or failure) for due invoice i, in a transaction;
 * true if its status changed (a ReconcileKind's record).  A refused key
 * stops the merchant (the reconciler's doing), not the invoice.
 */
static bool
record_invoice_answer(void *items, int i, QiwiOperation *op, const HttpResponse *resp,
					  bool *failed, bool *key_refused)
{
	DueInvoices *invoices = (DueInvoices *) items;
	PayinDueInvoice *due = &invoices->due[i];
	PayinInvoice *invoice;
	QiwiError	error;

	*failed = false;
	if (!qiwi_exchange_answer(op, resp, &error))
	{
		if (error.sqlstate == ERRCODE_QIWI_AUTHENTICATION)
			*key_refused = true;
		else
		{
			*failed = true;
			add_check(invoices, due, true, error.message);
		}
		return false;
	}
	invoice = (PayinInvoice *) op->result;
	payin_store_invoice(invoice, "reconciler", true);
	add_check(invoices, due, false, NULL);
	return strcmp(due->status, invoice->status) != 0;
}

static const ReconcileKind payin_kind = {
	.what = "Payin invoices",
	.required_options = NULL,
	.nrequired = 0,
	.claim = claim_due_invoices,
	.operation = due_invoice_operation,
	.record = record_invoice_answer,
	.flush = flush_checks,
	.make_due = payin_store_make_all_due,
};

/* Make Payin invoices a kind of thing to reconcile (from _PG_init) */
void
payin_reconcile_init(void)
{
	reconciler_add_kind(&payin_kind);
}
