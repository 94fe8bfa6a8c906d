/*
 * syncs.c
 *		The syncs the APIs register beside their kinds: in every round the
 *		reconciler runs each one for each merchant having its options (a
 *		wallet's history read into a table), after the kinds' due items.
 *		A merchant whose key QIWI refused is left alone until its options
 *		change, as its items are (reconciler.c).
 */
#include "core/reconciler_internal.h"

#include "access/xact.h"
#include "pgstat.h"
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
