/*
 * ledger_due.c
 *		The reconciler's bookkeeping of any kind of item: claiming due
 *		items (by their schedule, or by the due watermark that makes every
 *		followed item due at once), recording a chunk of checks in one
 *		statement; and the checked_at of items an answer repeated,
 *		written once per transaction at pre-commit.
 */
#include "core/core.h"

#include "access/heaptoast.h"
#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "core/ledger_internal.h"

/* A text[] of n strings */
static Datum
text_array(int n, const char *const *strings)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(strings[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * Write the checks added since the last flush, in one statement ($1..$8
 * of LEDGER_PLAN_CHECKS).  A transaction that writes nothing else (answers
 * that repeated their rows) commits without waiting for the disk: a check
 * a crash loses is only asked again, and the next durable commit makes it
 * durable.
 */
void
ledger_flush_checks(LedgerDue *due)
{
	bool		only_checks = !TransactionIdIsValid(GetTopTransactionIdIfAny());
	int			n = due->nchecks;
	Datum		values[8];
	Datum	   *failed;
	Datum	   *errors;
	bool	   *error_nulls;
	int			dims[1] = {n};
	int			lbs[1] = {1};
	OwnerContext ctx;

	if (n == 0)
		return;
	failed = palloc(sizeof(Datum) * n);
	errors = palloc(sizeof(Datum) * n);
	error_nulls = palloc(sizeof(bool) * n);
	for (int i = 0; i < n; i++)
	{
		failed[i] = BoolGetDatum(due->check_failed[i]);
		error_nulls[i] = due->check_errors[i] == NULL;
		errors[i] = error_nulls[i] ? (Datum) 0 :
			CStringGetTextDatum(qiwi_redact_secrets(due->check_errors[i]));
	}
	values[0] = text_array(n, due->check_merchants);
	values[1] = text_array(n, due->check_ids);
	values[2] = PointerGetDatum(construct_array(failed, n, BOOLOID, 1, true, TYPALIGN_CHAR));
	values[3] = PointerGetDatum(construct_md_array(errors, error_nulls, 1, dims, lbs, TEXTOID, -1,
												   false, TYPALIGN_INT));
	values[4] = Float8GetDatum((double) qiwi_reconcile_interval_s);
	values[5] = Float8GetDatum((double) qiwi_reconcile_max_interval_s);
	values[6] = TimestampTzGetDatum(due->claimed_at);
	values[7] = TimestampTzGetDatum(due->watermark);
	ledger_begin_kind(&ctx, due->kind);
	ledger_run_own(due->kind, LEDGER_PLAN_CHECKS, values, NULL, SPI_OK_UPDATE);
	ledger_end(&ctx);
	due->nchecks = 0;
	if (only_checks)
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
}

/* Add a check of due item i to the chunk's: answered, or failed with error */
void
ledger_add_check(LedgerDue *due, int i, bool failed, const char *error)
{
	int			k = due->nchecks++;

	due->check_merchants[k] = due->merchant_names[i];
	due->check_ids[k] = due->ids[i];
	due->check_failed[k] = failed;
	due->check_errors[k] = error;
}

/*
 * Record a failed call about due item i (a ReconcileKind's record, on an
 * error): a refused key, QK401, or QK403 (valid but without the permission
 * the call needs), stops the merchant rather than the item, until its
 * options change; any other error is a failed check, due again after its
 * backoff.
 */
void
ledger_add_failure(LedgerDue *due, int i, const QiwiError *error, bool *failed,
				   bool *key_refused)
{
	if (error->sqlstate == ERRCODE_QIWI_AUTHENTICATION ||
		error->sqlstate == ERRCODE_QIWI_FORBIDDEN)
	{
		*key_refused = true;
		return;
	}
	*failed = true;
	ledger_add_check(due, i, true, error->message);
}

/*
 * Read QIWI's answer about due item i into op->result (a ReconcileKind's
 * record, first); false if it cannot be recorded, the failure then counted
 * by ledger_add_failure
 */
bool
ledger_answer_taken(LedgerDue *due, int i, QiwiOperation *op, const HttpResponse *resp,
					bool *failed, bool *key_refused)
{
	QiwiError	error;

	*failed = false;
	if (qiwi_exchange_answer(op, resp, &error))
		return true;
	ledger_add_failure(due, i, &error, failed, key_refused);
	return false;
}

/* Append the rows SPI returned (n) to the claimed ones, flattened, in the caller's context */
static void
take_claimed(LedgerDue *due, int *claimed, int n, OwnerContext *ctx)
{
	MemoryContext spi_context = MemoryContextSwitchTo(ctx->caller_context);

	if (due->desc == NULL)
		due->desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	if (n > 0)
		due->rows = due->rows == NULL ? palloc(sizeof(HeapTuple) * n) :
			repalloc(due->rows, sizeof(HeapTuple) * (*claimed + n));
	/* the operations read them with no transaction open: no TOAST pointers */
	for (int i = 0; i < n; i++)
		due->rows[(*claimed)++] = toast_flatten_tuple(SPI_tuptable->vals[i], due->desc);
	MemoryContextSwitchTo(spi_context);
}

/* Read the n claimed rows' merchant, id and status; make room for their checks */
static void
read_claimed(LedgerDue *due, int n)
{
	int			size = Max(n, 1);
	bool		isnull;

	if (due->rows == NULL)
		due->rows = palloc(sizeof(HeapTuple) * size);
	due->merchant_names = palloc(sizeof(char *) * size);
	due->ids = palloc(sizeof(char *) * size);
	due->statuses = palloc(sizeof(char *) * size);
	due->merchants = palloc(sizeof(Merchant *) * size);
	due->answers = palloc0(sizeof(void *) * size);
	due->check_merchants = palloc(sizeof(char *) * size);
	due->check_ids = palloc(sizeof(char *) * size);
	due->check_failed = palloc(sizeof(bool) * size);
	due->check_errors = palloc(sizeof(char *) * size);
	for (int i = 0; i < n; i++)
	{
		due->merchant_names[i] = TextDatumGetCString(heap_getattr(due->rows[i], 1, due->desc, &isnull));
		due->ids[i] = TextDatumGetCString(heap_getattr(due->rows[i], 2, due->desc, &isnull));
		due->statuses[i] = TextDatumGetCString(heap_getattr(due->rows[i], 3, due->desc, &isnull));
	}
}

/*
 * No JIT for the statements over every followed row (inside
 * ledger_begin_kind, to its end): compiling them took longer than running
 * them (0.7 s against 0.1 s for 100,000 Payin invoices), every round
 */
static void
ledger_without_jit(void)
{
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
							 false);
}

/* The due watermark: rows scheduled before it are due (-infinity: none) */
static TimestampTz
read_watermark(const LedgerKind *kind)
{
	bool		isnull = true;
	Datum		d = (Datum) 0;

	if (ledger_run_own(kind, LEDGER_PLAN_WATERMARK, NULL, NULL, SPI_OK_SELECT) > 0)
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
}

/*
 * Keep the n claimed items whose merchants can be asked, with their
 * merchants; the others are failed checks, with the reason
 */
static void
sort_out_merchants(LedgerDue *due, int n, char *(*merchant_problem) (const Merchant *merchant))
{
	for (int i = 0; i < n; i++)
	{
		const char *name = due->merchant_names[i];
		const Merchant *merchant = NULL;
		char	   *problem = NULL;

		/* items come in no merchant's order; a round has few merchants */
		for (int j = 0; j < due->n && merchant == NULL; j++)
			if (strcmp(due->merchants[j]->name, name) == 0)
				merchant = due->merchants[j];
		if (merchant == NULL)
			merchant = merchant_by_name(name);
		if (merchant == NULL)
			problem = psprintf("merchant \"%s\" no longer exists: there is no server %s of the wrapper qiwi",
							   name, quote_identifier(name));
		else if (merchant_problem != NULL)
			problem = merchant_problem(merchant);
		if (problem != NULL)
		{
			ledger_add_check(due, i, true, problem);
			continue;
		}
		due->merchant_names[due->n] = due->merchant_names[i];
		due->ids[due->n] = due->ids[i];
		due->statuses[due->n] = due->statuses[i];
		due->rows[due->n] = due->rows[i];
		due->merchants[due->n++] = merchant;
	}
}

/*
 * Claim up to limit due items of a kind, of the merchants not in skip, in
 * a transaction: those due by their schedule, most overdue first, then
 * those the watermark makes due; with sweeping, its items sent with an
 * outcome not known instead, due or not (the sweep at the reconciler's
 * start, intent.c).  An item whose merchant no longer exists, or cannot be
 * asked (merchant_problem, if given, says why), is a failed check, with
 * the reason; the others are returned, with their merchants.
 */
LedgerDue *
ledger_claim_due(const LedgerKind *kind, int limit, Datum skip,
				 char *(*merchant_problem) (const Merchant *merchant), bool sweeping)
{
	Datum		values[4];
	LedgerDue  *due = palloc0(sizeof(LedgerDue));
	TimestampTz *swept = ledger_kind_swept(kind);
	OwnerContext ctx;
	int			claimed = 0;

	due->kind = kind;
	due->claimed_at = GetCurrentTimestamp();
	due->sweeping = sweeping;
	ledger_begin_kind(&ctx, kind);
	ledger_without_jit();
	due->watermark = read_watermark(kind);
	values[0] = Int32GetDatum(limit);
	values[1] = skip;
	values[2] = TimestampTzGetDatum(due->claimed_at);
	values[3] = TimestampTzGetDatum(due->watermark);
	/* rows another writer holds right now are skipped, not waited for */
	take_claimed(due, &claimed, (int) ledger_run_own(kind, sweeping ? LEDGER_PLAN_SWEEP : LEDGER_PLAN_CLAIM,
													 values, NULL, SPI_OK_SELECT), &ctx);
	/*
	 * A claim by the watermark that finds nothing ends the kind's sweep in
	 * this process: the rounds after it do not scan the followed rows again
	 * until qiwi_reconcile_now() raises the watermark (or ledger_sweep_again)
	 */
	if (!sweeping && claimed < limit && due->watermark > *swept)
	{
		int			before = claimed;

		values[0] = Int32GetDatum(limit - claimed);
		take_claimed(due, &claimed, (int) ledger_run_own(kind, LEDGER_PLAN_CLAIM_SWEPT, values, NULL,
														 SPI_OK_SELECT), &ctx);
		if (claimed == before)
			*swept = due->watermark;
	}
	ledger_end(&ctx);
	read_claimed(due, claimed);
	sort_out_merchants(due, claimed, merchant_problem);
	ledger_flush_checks(due);
	return due;
}

/* Column column (1: the first of the kind's due_columns) of due item i */
Datum
ledger_due_value(const LedgerDue *due, int i, int column, bool *isnull)
{
	return heap_getattr(due->rows[i], column + 3, due->desc, isnull);
}

/* Column column of due item i as text, or NULL */
char *
ledger_due_text(const LedgerDue *due, int i, int column)
{
	bool		isnull;
	Datum		d = ledger_due_value(due, i, column, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Make every item of a kind the reconciler follows due now, by raising the
 * due watermark (no row is written: its claims compare rows with it); how
 * many it follows
 */
int64
ledger_make_all_due(const LedgerKind *kind)
{
	OwnerContext ctx;
	bool		isnull;
	int64		n;

	ledger_begin_kind(&ctx, kind);
	ledger_without_jit();
	ledger_run_own(kind, LEDGER_PLAN_RAISE_WATERMARK, NULL, NULL, SPI_OK_INSERT);
	ledger_run_own(kind, LEDGER_PLAN_COUNT_FOLLOWED, NULL, NULL, SPI_OK_SELECT);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	ledger_end(&ctx);
	return n;
}

/*
 * The items of this transaction that QIWI answered about exactly as their
 * rows say: their checked_at is written once, at pre-commit, in one
 * statement per kind, instead of rewriting each row per answer.  In
 * TopTransactionContext; an entry made in a subtransaction that rolls back
 * is forgotten with it.
 */
typedef struct CheckedItem
{
	const LedgerKind *kind;
	char	   *merchant;
	char	   *id;
	TimestampTz at;
	SubTransactionId subxact;
} CheckedItem;

static CheckedItem *checked_items = NULL;
static int	nchecked_items = 0;
static int	checked_items_cap = 0;
static bool checked_callbacks_registered = false;

/* Write the checked_at of one kind's unchanged items among the n remembered */
static void
flush_checked_kind(const LedgerKind *kind, int n)
{
	const char **merchants = palloc(sizeof(char *) * n);
	const char **ids = palloc(sizeof(char *) * n);
	Datum	   *ats = palloc(sizeof(Datum) * n);
	int			k = 0;
	Datum		values[3];
	OwnerContext ctx;

	for (int i = 0; i < n; i++)
	{
		if (checked_items[i].kind != kind)
			continue;
		merchants[k] = checked_items[i].merchant;
		ids[k] = checked_items[i].id;
		ats[k++] = TimestampTzGetDatum(checked_items[i].at);
	}
	if (k == 0)
		return;
	if (k == 1)
	{
		values[0] = CStringGetTextDatum(merchants[0]);
		values[1] = CStringGetTextDatum(ids[0]);
		values[2] = ats[0];
	}
	else
	{
		values[0] = text_array(k, merchants);
		values[1] = text_array(k, ids);
		values[2] = PointerGetDatum(construct_array(ats, k, TIMESTAMPTZOID, sizeof(TimestampTz),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	}
	ledger_begin_kind(&ctx, kind);
	ledger_run_own(kind, k == 1 ? LEDGER_PLAN_CHECKED_ONE : LEDGER_PLAN_CHECKED_MANY, values, NULL,
				   SPI_OK_UPDATE);
	ledger_end(&ctx);
}

/* Write the checked_at of the transaction's unchanged items */
static void
flush_checked_items(void)
{
	int			n = nchecked_items;

	nchecked_items = 0;
	/* DROP EXTENSION after the calls took the rows with it */
	if (n == 0 || ledger_extension_state() != EXTENSION_READY)
		return;
	/* at pre-commit the statements' snapshots are gone: SPI needs one */
	PushActiveSnapshot(GetTransactionSnapshot());
	for (int i = 0; i < ledger_nkinds(); i++)
		flush_checked_kind(ledger_kind_at(i), n);
	PopActiveSnapshot();
}

/* At pre-commit, write the checked_at of unchanged items; forget them at the end */
static void
checked_items_xact(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			flush_checked_items();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* the memory went with TopTransactionContext */
			checked_items = NULL;
			nchecked_items = 0;
			checked_items_cap = 0;
			break;
		default:
			break;
	}
}

/* When a subtransaction rolls back, forget the items it (or a child) checked */
static void
checked_items_subxact(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	/* subtransactions nest: every later id is this one's or a child's */
	while (nchecked_items > 0 && checked_items[nchecked_items - 1].subxact >= mySubid)
		nchecked_items--;
}

/* Remember that QIWI confirmed an item's row as it is, for checked_at at pre-commit */
void
ledger_defer_checked_at(const LedgerKind *kind, const char *merchant, const char *id)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	CheckedItem *c;

	if (!checked_callbacks_registered)
	{
		RegisterXactCallback(checked_items_xact, NULL);
		RegisterSubXactCallback(checked_items_subxact, NULL);
		checked_callbacks_registered = true;
	}
	if (nchecked_items == checked_items_cap)
	{
		checked_items_cap = Max(64, checked_items_cap * 2);
		checked_items = checked_items == NULL ?
			palloc(sizeof(CheckedItem) * checked_items_cap) :
			repalloc(checked_items, sizeof(CheckedItem) * checked_items_cap);
	}
	c = &checked_items[nchecked_items++];
	c->kind = kind;
	c->merchant = pstrdup(merchant);
	c->id = pstrdup(id);
	c->at = GetCurrentTimestamp();
	c->subxact = GetCurrentSubTransactionId();
	MemoryContextSwitchTo(old);
}
