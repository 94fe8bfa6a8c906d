/*
 * syncs.c
 *		The syncs the APIs register beside their kinds: in every round the
 *		reconciler runs each one for each merchant having its options (a
 *		wallet's history read into a table), after the kinds' due items.
 *		A merchant whose key QIWI refused is left alone until its options
 *		change, as its items are (reconciler.c).  A sync's read runs in
 *		transactions committed as it goes, and an error it raises ends that
 *		merchant's read only.
 */
#include "core/reconciler_internal.h"

#include "access/xact.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

/* The syncs, registered by the APIs in _PG_init */
#define MAX_SYNCS 4
static const ReconcileSync *syncs[MAX_SYNCS];
static int	nsyncs = 0;

/* Add a sync the reconciler runs every round (from an API's init, in _PG_init) */
void
reconciler_add_sync(const ReconcileSync *sync)
{
	if (nsyncs >= MAX_SYNCS)
		elog(ERROR, "too many syncs for the reconciler");
	syncs[nsyncs++] = sync;
}

/* Run fn(arg) in a short transaction of the worker's, in the caller's memory */
bool
reconciler_in_transaction(bool (*fn) (void *arg), void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	bool		result;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(caller);
	result = fn(arg);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	return result;
}

/*
 * Start a transaction of a sync's read, in caller's memory, whose commit
 * need not wait for the disk: the one recording the read's end does, and
 * makes every one before durable
 */
void
reconciler_start_read_transaction(MemoryContext caller)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	MemoryContextSwitchTo(caller);
}

/*
 * Run a sync's read(arg, error) in a read transaction, which it may commit
 * and start anew (reconciler_start_read_transaction), committed at its end:
 * true, or false with *error, the read's own or any error it raised (which
 * ends this merchant's read only; *rolled_back then: what the transaction
 * open held is lost)
 */
bool
reconciler_sync_read(bool (*read) (void *arg, QiwiError *error), void *arg, QiwiError *error,
					 bool *rolled_back)
{
	MemoryContext caller = CurrentMemoryContext;
	volatile bool ok = false;

	*rolled_back = false;
	PG_TRY();
	{
		reconciler_start_read_transaction(caller);
		ok = read(arg, error);
		CommitTransactionCommand();
		MemoryContextSwitchTo(caller);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(caller);
		memset(error, 0, sizeof(*error));
		error->sqlstate = edata->sqlerrcode;
		error->message = edata->message ? edata->message : "an error without a message";
		*rolled_back = true;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* The merchants sync runs for this round, in round_context: those with its options, not refused */
static List *
sync_merchants(const ReconcileSync *sync, MemoryContext round_context)
{
	List	   *names;
	List	   *merchants = NIL;
	ListCell   *lc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(round_context);
	names = merchant_usable(sync->required_options, sync->nrequired);
	foreach(lc, names)
	{
		const Merchant *merchant = merchant_by_name(lfirst(lc));

		if (merchant != NULL && !reconciler_merchant_refused(merchant))
			merchants = lappend(merchants, (void *) merchant);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(round_context);
	return merchants;
}

/*
 * One round of every sync, for each of its merchants, with no transaction
 * open; adds to *counts.  Returns whether some merchant has more to read.
 */
bool
reconciler_syncs_round(MemoryContext round_context, ReconcileCounts *counts)
{
	bool		more = false;

	for (int s = 0; s < nsyncs && reconciler_may_go_on(); s++)
	{
		List	   *merchants = sync_merchants(syncs[s], round_context);
		ListCell   *lc;

		foreach(lc, merchants)
		{
			const Merchant *merchant = lfirst(lc);
			long		refused_status = 0;
			char		activity[128];

			if (!reconciler_may_go_on())
				break;
			snprintf(activity, sizeof(activity), "qiwi_kassa: syncing the %s of merchant \"%s\"",
					 syncs[s]->what, merchant->name);
			pgstat_report_activity(STATE_RUNNING, activity);
			if (syncs[s]->sync(merchant, counts, &refused_status))
				more = true;
			MemoryContextSwitchTo(round_context);
			if (refused_status != 0)
				reconciler_refuse_merchant(merchant, refused_status);
		}
	}
	return more;
}
