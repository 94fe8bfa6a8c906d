/*
 * bill_reconcile.c
 *		Bills as a kind of thing the reconciler keeps current: WAITING bills
 *		are asked about, CREATING ones created, with the same operations as
 *		the SQL functions, and the answers recorded like theirs.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "utils/builtins.h"
#include "utils/timestamp.h"

/* A claimed bill: to check, or (creating) to create, and QIWI's answer */
typedef struct DueBill
{
	bool		creating;
	QiwiCreateBillArgs create;	/* the shop's bill_id, amount and currency; the rest
								 * when creating */
	QiwiBill	answer;
} DueBill;

/* The merchant options without which no bill can be checked */
static int	required_options[1];

/* A string member of a jsonb object, or NULL */
static char *
jsonb_string_member(Jsonb *object, const char *key)
{
	JsonbValue *v;

	if (object == NULL || !JB_ROOT_IS_OBJECT(object))
		return NULL;
	v = getKeyJsonValueFromContainer(&object->root, key, strlen(key), NULL);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* What to create of a CREATING bill, from its claimed row (bill_kind's due_columns) */
static void
read_creation(const LedgerDue *due, int i, QiwiCreateBillArgs *args)
{
	bool		isnull;
	Datum		d;
	Jsonb	   *customer;

	args->expires_at = DatumGetTimestampTz(ledger_due_value(due, i, 3, &isnull));
	d = ledger_due_value(due, i, 4, &isnull);
	args->comment = isnull ? NULL : TextDatumGetCString(d);
	d = ledger_due_value(due, i, 5, &isnull);
	customer = isnull ? NULL : DatumGetJsonbPCopy(d);
	args->phone = jsonb_string_member(customer, "phone");
	args->email = jsonb_string_member(customer, "email");
	args->account = jsonb_string_member(customer, "account");
	d = ledger_due_value(due, i, 6, &isnull);
	args->custom_fields = isnull ? NULL : DatumGetJsonbPCopy(d);
}

/* The operation that checks or creates due bill i (a ReconcileKind's operation) */
static void
due_bill_operation(LedgerDue *due, int i, QiwiOperation *op)
{
	DueBill    *bill = palloc0(sizeof(DueBill));
	bool		isnull;

	due->answers[i] = bill;
	bill->creating = strcmp(due->statuses[i], "CREATING") == 0;
	bill->create.bill_id = due->ids[i];
	bill->create.merchant = due->merchant_names[i];
	bill->create.amount = DatumGetNumericCopy(ledger_due_value(due, i, 1, &isnull));
	bill->create.currency = TextDatumGetCString(ledger_due_value(due, i, 2, &isnull));
	if (bill->creating && !due->sweeping)
	{
		read_creation(due, i, &bill->create);
		bill_create_operation(due->merchants[i], &bill->create, false, &bill->answer, op);
	}
	else
		bill_get_operation(due->merchants[i], due->ids[i], &bill->answer, op);
}

/*
 * Record a failed check or creation: for good if QIWI refused the
 * creation, else as the ledger records any failure (a refused key stops
 * the merchant).  A lost or malformed answer to a create is no refusal: the
 * PUT is idempotent, and QIWI may well have the bill, so it is sent again.
 * The sweep's ask that QIWI does not know the bill is no failure: the next
 * round creates it.
 */
static void
record_failure(LedgerDue *due, int i, const QiwiError *error, bool *failed, bool *key_refused)
{
	const DueBill *bill = due->answers[i];

	if (bill->creating && due->sweeping && error->sqlstate == ERRCODE_QIWI_NOT_FOUND)
		ledger_add_check(due, i, false, NULL);
	else if (bill->creating && !due->sweeping && error->sqlstate == ERRCODE_QIWI_INVALID_REQUEST)
	{
		*failed = true;
		store_create_failed(due->merchant_names[i], due->ids[i], error->message);
	}
	else
		ledger_add_failure(due, i, error, failed, key_refused);
}

/*
 * Record QIWI's answer (or failure) for due bill i, in a transaction; true
 * if its status changed (a ReconcileKind's record)
 */
static bool
record_bill_answer(LedgerDue *due, int i, QiwiOperation *op, const HttpResponse *resp,
				   bool *failed, bool *key_refused)
{
	const DueBill *due_bill = due->answers[i];
	QiwiBill	bill;
	QiwiError	error;
	StoredBill	stored;
	bool		shop_money;

	*failed = false;
	if (!qiwi_exchange_answer(op, resp, &error))
	{
		record_failure(due, i, &error, failed, key_refused);
		return false;
	}
	bill = *(QiwiBill *) op->result;
	shop_money = qiwi_same_money(bill.amount, bill.currency, due_bill->create.amount,
								 due_bill->create.currency);
	if (!due_bill->creating && shop_money && strcmp(bill.status, "WAITING") == 0)
	{
		ledger_add_check(due, i, false, NULL);
		return false;
	}
	switch (store_bill(&bill, LEDGER_BY_RECONCILER, &stored))
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

static const ReconcileKind bill_reconcile_kind = {
	.what = "bills",
	.required_options = required_options,
	.nrequired = 1,
	.ledger = &bill_kind,
	.operation = due_bill_operation,
	.record = record_bill_answer,
};

/* Make bills a kind of thing to reconcile (from _PG_init) */
void
bill_reconcile_init(void)
{
	required_options[0] = bill_option_secret_key;
	reconciler_add_kind(&bill_reconcile_kind);
}
