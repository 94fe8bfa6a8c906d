/*
 * bill_reconcile.c
 *		Bills as a kind of thing the reconciler keeps current: WAITING bills
 *		are asked about, CREATING ones created, with the same operations as
 *		the SQL functions, and the answers recorded like theirs.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "utils/builtins.h"

/*
 * The due bills of a round, their merchants and QIWI's answers about them,
 * and the checks of the chunk being recorded that leave a bill WAITING or
 * failed: they are written together (flush_checks)
 */
typedef struct DueBills
{
	DueBill    *due;
	const Merchant **merchants;
	QiwiBill   *answers;
	int			nchecks;
	const char **check_merchants;
	const char **check_bill_ids;
	bool	   *check_failed;
	const char **check_errors;
} DueBills;

/* The merchant options without which no bill can be checked */
static int	required_options[1];

/*
 * Claim up to limit due bills of the merchants not in skip, in a
 * transaction (a ReconcileKind's claim).  A bill whose merchant's server
 * was dropped is a failed check, with the reason.
 */
static void *
claim_due_bills(int limit, Datum skip, int *n)
{
	DueBills   *bills = palloc(sizeof(DueBills));
	int			claimed;
	int			kept = 0;

	bills->due = store_due_bills(limit, skip, &claimed);
	bills->merchants = palloc(sizeof(Merchant *) * Max(claimed, 1));
	for (int i = 0; i < claimed; i++)
	{
		const char *name = bills->due[i].create.merchant;
		const Merchant *merchant = NULL;

		/* bills come in no merchant's order; a round has few merchants */
		for (int j = 0; j < kept && merchant == NULL; j++)
			if (strcmp(bills->merchants[j]->name, name) == 0)
				merchant = bills->merchants[j];
		if (merchant == NULL)
			merchant = merchant_by_name(name);
		if (merchant == NULL)
		{
			store_check_result(name, bills->due[i].bill_id, true,
							   psprintf("merchant \"%s\" no longer exists: there is no server %s of the wrapper qiwi",
										name, quote_identifier(name)));
			continue;
		}
		bills->due[kept] = bills->due[i];
		bills->merchants[kept++] = merchant;
	}
	*n = kept;
	bills->answers = palloc0(sizeof(QiwiBill) * Max(kept, 1));
	bills->nchecks = 0;
	bills->check_merchants = palloc(sizeof(char *) * Max(kept, 1));
	bills->check_bill_ids = palloc(sizeof(char *) * Max(kept, 1));
	bills->check_failed = palloc(sizeof(bool) * Max(kept, 1));
	bills->check_errors = palloc(sizeof(char *) * Max(kept, 1));
	return bills;
}

/* The operation that checks or creates due bill i (a ReconcileKind's operation) */
static void
due_bill_operation(void *items, int i, QiwiOperation *op)
{
	DueBills   *bills = (DueBills *) items;
	DueBill    *due = &bills->due[i];

	if (due->creating)
		bill_create_operation(bills->merchants[i], &due->create, false, &bills->answers[i], op);
	else
		bill_get_operation(bills->merchants[i], due->bill_id, &bills->answers[i], op);
}

/* Add a check of a due bill to the chunk's: it stayed WAITING, or failed with error */
static void
add_check(DueBills *bills, const DueBill *due, bool failed, const char *error)
{
	int			k = bills->nchecks++;

	bills->check_merchants[k] = due->create.merchant;
	bills->check_bill_ids[k] = due->bill_id;
	bills->check_failed[k] = failed;
	bills->check_errors[k] = error;
}

/* Write the chunk's checks in one statement (a ReconcileKind's flush) */
static void
flush_checks(void *items)
{
	DueBills   *bills = (DueBills *) items;

	store_check_results(bills->nchecks, bills->check_merchants, bills->check_bill_ids,
						bills->check_failed, bills->check_errors);
	bills->nchecks = 0;
}

/*
 * Record a failed check or creation: backoff, or for good if QIWI refused
 * the creation.  A lost or malformed answer to a create is no refusal: the
 * PUT is idempotent, and QIWI may well have the bill, so it is sent again.
 */
static void
record_failure(DueBills *bills, const DueBill *due, const QiwiError *error, bool *key_refused)
{
	if (error->sqlstate == ERRCODE_QIWI_AUTHENTICATION)
		*key_refused = true;
	else if (due->creating && error->sqlstate == ERRCODE_QIWI_INVALID_REQUEST)
		store_create_failed(due->create.merchant, due->bill_id, error->message);
	else
		add_check(bills, due, true, error->message);
}


/*
 * Record QIWI's answer (or failure) for due bill i, in a transaction; true
 * if its status changed (a ReconcileKind's record)
 */
static bool
record_bill_answer(void *items, int i, QiwiOperation *op, const HttpResponse *resp,
				   bool *failed, bool *key_refused)
{
	DueBills   *bills = (DueBills *) items;
	DueBill    *due = &bills->due[i];
	QiwiBill	bill;
	QiwiError	error;
	StoredBill	stored;
	bool		shop_money;

	*failed = false;
	if (!qiwi_exchange_answer(op, resp, &error))
	{
		*failed = error.sqlstate != ERRCODE_QIWI_AUTHENTICATION;
		record_failure(bills, due, &error, key_refused);
		return false;
	}
	bill = *(QiwiBill *) op->result;
	shop_money = qiwi_same_money(bill.amount, bill.currency, due->create.amount,
								 due->create.currency);
	if (!due->creating && shop_money && strcmp(bill.status, "WAITING") == 0)
	{
		add_check(bills, due, false, NULL);
		return false;
	}
	switch (store_bill(&bill, SOURCE_RECONCILER, &stored))
	{
		case STORE_INSERTED:
		case STORE_ADVANCED:
			return true;
		case STORE_MISMATCH:
			store_report_mismatch(LOG, &bill, &stored);
			return strcmp(stored.status, "MISMATCH") != 0;
		default:
			return false;	/* a call or a notification got there first */
	}
}

static const ReconcileKind bill_kind = {
	.what = "bills",
	.required_options = required_options,
	.nrequired = 1,
	.claim = claim_due_bills,
	.operation = due_bill_operation,
	.record = record_bill_answer,
	.flush = flush_checks,
	.make_due = store_make_all_due,
};

/* Make bills a kind of thing to reconcile (from _PG_init) */
void
bill_reconcile_init(void)
{
	required_options[0] = bill_option_secret_key;
	reconciler_add_kind(&bill_kind);
}
