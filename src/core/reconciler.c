/*
 * reconciler.c
 *		The reconciler: a background worker that keeps every open item of
 *		every API (a WAITING bill, ...) current by asking QIWI about it.  Each
 *		API registers a kind of thing to reconcile (reconciler_add_kind);
 *		this file knows none of them.  launcher.c starts one for each
 *		database that has the extension (qiwi.database filters them);
 *		requester.c sends its requests; reconciler_shared.c holds the state
 *		it shows.
 *
 * The reconciler works in rounds: it claims each kind's due items in a
 * short transaction, asks QIWI about all of them with no transaction open
 * while it waits (up to qiwi.reconcile_concurrency requests at once,
 * through the same operations as the SQL functions, sent by a second
 * process, the requester), and records the answers a chunk at a time in
 * short transactions while the next requests are in flight (an answer the
 * tables refuse fails its item's check, not the reconciler).  It leaves as
 * soon as someone waits to drop or alter its database, so DROP DATABASE is
 * never blocked; it holds no lock between its short transactions, so DROP
 * EXTENSION is not either.  When the launcher has more databases to serve
 * than qiwi.max_reconcilers, it asks each reconciler to end after its
 * round, so that the databases take turns.
 */
#include "core/reconciler_internal.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void qiwi_reconciler_main(Datum main_arg);

PG_FUNCTION_INFO_V1(qiwi_reconcile_now);

/* The kinds of things to reconcile, registered by the APIs in _PG_init */
#define MAX_KINDS 8
static const ReconcileKind *kinds[MAX_KINDS];
static int	nkinds = 0;

static TimestampTz last_drop_check = 0;

/*
 * A merchant whose key QIWI refused, with the fingerprint of the options it
 * was refused with: its items are left alone until its options change (a
 * reload of the settings, a new user mapping), and only then.  Other
 * merchants go on.
 */
typedef struct RefusedMerchant
{
	char		name[NAMEDATALEN];
	uint32		fingerprint;
} RefusedMerchant;

#define MAX_REFUSED 64
static RefusedMerchant refused[MAX_REFUSED];
static int	nrefused = 0;

/* ---------- registration ---------- */

/* Add a kind of thing to reconcile (from an API's init, in _PG_init) */
void
reconciler_add_kind(const ReconcileKind *kind)
{
	if (nkinds >= MAX_KINDS)
		elog(ERROR, "too many kinds of things to reconcile");
	kinds[nkinds++] = kind;
}


/* Is the extension installed in this database, at the library's version? */
static ExtensionState
extension_state(void)
{
	ExtensionState state;
	MemoryContext caller_context = CurrentMemoryContext;

	StartTransactionCommand();
	state = ledger_extension_state();
	if (state == EXTENSION_READY && guard_reporting_copy(NULL))
		state = EXTENSION_REPORTING_COPY;
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller_context);
	return state;
}


/* ---------- the reconciler ---------- */

/*
 * Wait up to wait_ms for the next round, or until the latch is set.  DROP
 * DATABASE waits only 5 s for other sessions to leave: look every
 * DROP_CHECK_INTERVAL_MS whether somebody wants the database, and leave.
 */
static void
wait_between_rounds(long wait_ms, Oid dboid)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	for (;;)
	{
		long		left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
		int			rc;

		if (left_ms <= 0)
			return;
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   Min(left_ms, DROP_CHECK_INTERVAL_MS), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (rc & WL_LATCH_SET)
			return;
		CHECK_FOR_INTERRUPTS();
		if (launcher_database_wanted(dboid))
			reconciler_exit(EXIT_LEFT, true);
		if (reconciler_turn_over())
			reconciler_exit(EXIT_TURN, true);
	}
}

/* Between waits of a round in flight (a sync's too): go on unless the database is wanted */
bool
reconciler_may_go_on(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(last_drop_check, now, DROP_CHECK_INTERVAL_MS))
		return true;
	last_drop_check = now;
	return !launcher_database_wanted(MyDatabaseId);
}

/* Stop asking QIWI for a merchant whose key it refused (HTTP 401 or 403); said once */
void
reconciler_refuse_merchant(const Merchant *merchant, long http_status)
{
	for (int i = 0; i < nrefused; i++)
		if (strcmp(refused[i].name, merchant->name) == 0)
			return;
	if (nrefused == MAX_REFUSED)
		return;					/* its next 401 stops it once a slot is free */
	strlcpy(refused[nrefused].name, merchant->name, NAMEDATALEN);
	refused[nrefused++].fingerprint = merchant_fingerprint(merchant);
	ereport(LOG,
			(errcode(http_status == 403 ? ERRCODE_QIWI_FORBIDDEN : ERRCODE_QIWI_AUTHENTICATION),
			 errmsg("QIWI refused the secret key of merchant \"%s\"; the qiwi_kassa reconciler leaves its items until its key changes",
					merchant->name),
			 errhint("Reload the configuration with the right key, or change the merchant's user mapping.")));
	reconciler_publish_error(psprintf("QIWI refused the secret key of merchant \"%s\" (HTTP %ld); its items wait for its key to change",
									  merchant->name, http_status));
	reconciler_publish_refusals(nrefused > 0);
}

/* Is merchant, with its options as they are, one whose key QIWI refused? */
bool
reconciler_merchant_refused(const Merchant *merchant)
{
	for (int i = 0; i < nrefused; i++)
		if (strcmp(refused[i].name, merchant->name) == 0)
			return refused[i].fingerprint == merchant_fingerprint(merchant);
	return false;
}

/*
 * The merchants a kind must leave alone this round, as a text[]: those
 * whose key QIWI refused (until their options change) and those lacking an
 * option the kind needs.  In a transaction (it reads the merchants).
 */
static Datum
merchants_to_skip(const ReconcileKind *kind)
{
	List	   *unusable = merchant_unusable(kind->required_options, kind->nrequired);
	ArrayBuildState *astate = initArrayResult(TEXTOID, CurrentMemoryContext, false);
	ListCell   *lc;
	int			kept = 0;

	for (int i = 0; i < nrefused; i++)
	{
		const Merchant *m = merchant_by_name(refused[i].name);

		if (m == NULL || merchant_fingerprint(m) != refused[i].fingerprint)
		{
			ereport(LOG,
					(errmsg("qiwi_kassa reconciler resumes merchant \"%s\": its options changed",
							refused[i].name)));
			/* its items a qiwi_reconcile_now() made due were left to it */
			ledger_sweep_again();
			continue;
		}
		refused[kept++] = refused[i];
		astate = accumArrayResult(astate, CStringGetTextDatum(refused[i].name), false,
								  TEXTOID, CurrentMemoryContext);
	}
	if (kept != nrefused)
	{
		nrefused = kept;
		reconciler_publish_refusals(nrefused > 0);
	}
	foreach(lc, unusable)
		astate = accumArrayResult(astate, CStringGetTextDatum(lfirst(lc)), false,
								  TEXTOID, CurrentMemoryContext);
	/* the only merchant, the default one, lacks an option: say which setting */
	if (list_length(unusable) == 1 && merchant_count() == 1)
		reconciler_publish_error(merchant_default_lacks(kind->required_options, kind->nrequired));
	return makeArrayResult(astate, CurrentMemoryContext);
}


/* A kind's round in flight: its items, their answers, those not yet recorded */
typedef struct RoundWork
{
	const ReconcileKind *kind;
	LedgerDue  *due;
	QiwiOperation *ops;
	HttpResponse *responses;
	int		   *unrecorded;		/* indices of finished requests */
	int			nunrecorded;
	MemoryContext round_context;
	ReconcileCounts *counts;
} RoundWork;

/* Answers w->unrecorded[from..to) to record (a GuardedFn's argument) */
typedef struct RecordRange
{
	RoundWork  *w;
	int			from;
	int			to;
} RecordRange;

/* Record a range of answers (a GuardedFn), counted; a merchant whose key QIWI refused is stopped */
static bool
record_range(void *arg, char **problem)
{
	RecordRange *r = (RecordRange *) arg;
	RoundWork  *w = r->w;

	for (int k = r->from; k < r->to; k++)
	{
		int			i = w->unrecorded[k];
		bool		failed = false;
		bool		key_refused = false;

		/* an abandoned round leaves its items due: they are checked next time */
		if (w->responses[i].failure == HTTP_FAIL_ABANDONED)
			continue;
		if (w->kind->record(w->due, i, &w->ops[i], &w->responses[i], &failed, &key_refused))
			w->counts->changed++;
		if (failed)
			w->counts->failed++;
		if (key_refused)
			reconciler_refuse_merchant(w->ops[i].merchant, w->responses[i].status);
	}
	return true;
}

/*
 * Record the answers of a chunk again one at a time, after the chunk's
 * recording failed: the answer whose recording fails again (one the tables
 * refuse: a capture of more than its payment, a status they do not know)
 * fails its item's check, with the error, and the others are recorded
 */
static void
record_one_by_one(RoundWork *w)
{
	for (int k = 0; k < w->nunrecorded; k++)
	{
		RecordRange one = {w, k, k + 1};
		int			nchecks = w->due->nchecks;
		char	   *problem = NULL;

		if (qiwi_guarded(record_range, &one, GUARD_ALL_BUT_CANCEL, &problem))
			continue;
		w->due->nchecks = nchecks;
		w->counts->failed++;
		ledger_add_check(w->due, w->unrecorded[k], true, problem);
		ereport(LOG,
				(errmsg("qiwi_kassa reconciler could not record QIWI's answer about %s \"%s\": %s",
						w->kind->what, w->due->ids[w->unrecorded[k]], qiwi_redact_secrets(problem))));
	}
}

/*
 * Record the finished answers not yet recorded, in one short transaction;
 * an answer that cannot be recorded fails its item's check, not the
 * reconciler (record_one_by_one).  An error of the moment (a cancel, a
 * deadlock) goes on up.
 */
static void
record_answers(RoundWork *w)
{
	RecordRange chunk = {w, 0, w->nunrecorded};
	ReconcileCounts counted = *w->counts;
	int			nchecks = w->due->nchecks;
	char	   *problem = NULL;

	if (w->nunrecorded == 0)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!qiwi_guarded(record_range, &chunk, GUARD_ALL_BUT_CANCEL, &problem))
	{
		*w->counts = counted;
		w->due->nchecks = nchecks;
		record_one_by_one(w);
	}
	/* the answers are recorded: their bodies are not needed any more */
	for (int k = 0; k < w->nunrecorded; k++)
	{
		HttpResponse *resp = &w->responses[w->unrecorded[k]];

		if (resp->body != NULL)
			pfree(resp->body);
		resp->body = NULL;
	}
	ledger_flush_checks(w->due);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(w->round_context);
	w->nunrecorded = 0;
}

/*
 * Between waits of a round (an HttpProgress): the finished answers are
 * recorded a chunk at a time while the next requests are in flight, and
 * the round goes on unless someone wants the database.
 */
static bool
round_progress(void *arg, const int *finished, int nfinished)
{
	RoundWork  *w = (RoundWork *) arg;

	memcpy(w->unrecorded + w->nunrecorded, finished, sizeof(int) * nfinished);
	w->nunrecorded += nfinished;
	if (w->nunrecorded >= WRITE_CHUNK)
		record_answers(w);
	return reconciler_may_go_on();
}

/*
 * One round of one kind: claim its due items (sweeping: those sent with an
 * outcome not known, intent.c), ask QIWI about them, record the answers.
 * Adds to the round's counts; returns how many it claimed.
 */
int
reconcile_kind(const ReconcileKind *kind, MemoryContext round_context, ReconcileCounts *counts, bool sweeping)
{
	RoundWork	w;
	int			n;
	char		activity[128];

	/* claim */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	snprintf(activity, sizeof(activity), "qiwi_kassa: claiming due %s", kind->what);
	pgstat_report_activity(STATE_RUNNING, activity);
	MemoryContextSwitchTo(round_context);
	w.due = ledger_claim_due(kind->ledger, sweeping ? INT_MAX : qiwi_reconcile_batch_size, merchants_to_skip(kind),
							 kind->merchant_problem, sweeping);
	n = w.due->n;
	PopActiveSnapshot();
	/* the claimed rows' commits (an _after_commit call's) at the synchronous standby before any send */
	if (!ledger_commit_durably())
		n = 0;
	MemoryContextSwitchTo(round_context);
	if (n == 0)
		return 0;

	/*
	 * Ask QIWI with no transaction open while waiting; the answers are
	 * recorded, a chunk per short transaction, as they come.
	 */
	snprintf(activity, sizeof(activity), "qiwi_kassa: checking %d %s with QIWI", n, kind->what);
	pgstat_report_activity(STATE_RUNNING, activity);
	w.kind = kind;
	w.ops = palloc0(sizeof(QiwiOperation) * n);
	w.responses = palloc(sizeof(HttpResponse) * n);
	w.unrecorded = palloc(sizeof(int) * n);
	w.nunrecorded = 0;
	w.round_context = round_context;
	w.counts = counts;
	for (int i = 0; i < n; i++)
		kind->operation(w.due, i, &w.ops[i]);
	qiwi_exchange_batch(w.ops, n, qiwi_reconcile_concurrency, w.responses, requester_perform,
						round_progress, &w);
	record_answers(&w);
	counts->checked += n;
	return n;
}

/*
 * A round that checked items ended: its error stands, or, when it had none
 * and no merchant's key is refused, last_error is cleared (seen_error stays)
 */
static void
publish_round(TimestampTz start, const ReconcileCounts *counts)
{
	if (counts->failed > 0)
		reconciler_publish_error(psprintf("%lld of %lld checks failed in the last round",
										  (long long) counts->failed, (long long) counts->checked));
	reconciler_publish_round(start, counts, reconciler_round_errors == 0 && nrefused == 0);
}

/*
 * One round: every kind's due items, then every sync.  Returns whether some
 * kind claimed a full batch or some sync has more to read (more are due).
 */
static bool
reconcile_round(MemoryContext round_context)
{
	TimestampTz start = GetCurrentTimestamp();
	ReconcileCounts counts = {0, 0, 0};
	bool		full = false;

	reconciler_round_errors = 0;
	for (int k = 0; k < nkinds; k++)
	{
		if (reconcile_kind(kinds[k], round_context, &counts, false) >= qiwi_reconcile_batch_size)
			full = true;
	}
	if (reconciler_syncs_round(round_context, &counts))
		full = true;
	if (counts.checked == 0)
	{
		pgstat_report_activity(STATE_IDLE, NULL);
		return false;
	}
	/* once a round: monitoring and autovacuum see the writes right away */
	pgstat_report_stat(true);

	/*
	 * The error before the counts, the counts before "idle": whoever sees the
	 * reconciler idle sees the round counted, and whoever sees the round its
	 * error
	 */
	publish_round(start, &counts);
	pgstat_report_activity(STATE_IDLE, NULL);
	return full;
}

/*
 * Before a round: leave if qiwi.database filters this database out or
 * someone wants it, or if it has no extension (the launcher looks again
 * later); wait, saying so once, while the extension is not up to date or
 * the database is a reporting copy.
 * Returns whether a round may run.
 */
static bool
round_may_start(Oid dboid, ExtensionState *said_about)
{
	ExtensionState state;
	const char *database = reconciler_database();

	if (!reconciler_serves(database))
		reconciler_exit(EXIT_LEFT, true);
	if (launcher_database_wanted(dboid))
		reconciler_exit(EXIT_LEFT, true);
	state = extension_state();
	if (state == EXTENSION_NOT_INSTALLED)
	{
		ereport(DEBUG1,
				(errmsg("qiwi_kassa reconciler found no extension qiwi_kassa in database \"%s\"",
						database)));
		reconciler_exit(EXIT_NO_EXTENSION, false);
	}
	reconciler_found_extension();
	if (state == EXTENSION_REPORTING_COPY)	/* said at each look: it looked */
		reconciler_publish_error("this database is a reporting copy (it subscribes to the tables of qiwi_kassa): no worker acts here");
	if (state == EXTENSION_READY)
	{
		if (*said_about == EXTENSION_REPORTING_COPY)
			reconciler_clear_error();	/* a copy no more: its error goes */
		*said_about = EXTENSION_READY;
		return true;
	}
	if (state != *said_about)
		ereport(LOG,
				(errmsg(state == EXTENSION_OLD_VERSION ?
						"qiwi_kassa reconciler is waiting for ALTER EXTENSION qiwi_kassa UPDATE in database \"%s\"" :
						"qiwi_kassa reconciler does nothing in database \"%s\": it is a reporting copy, subscribing to the tables of qiwi_kassa",
						database)));
	*said_about = state;
	return false;
}

/*
 * The reconciler for one database (main_arg): rounds of checks, waiting
 * qiwi.reconcile_interval between them unless a round was full or
 * qiwi_reconcile_now() wakes it; it ends after a round when the launcher
 * says other databases wait for its slot.
 */
void
qiwi_reconciler_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext round_context;
	ExtensionState said_about = EXTENSION_READY;
	long		wait_ms = 0;
	uint64		wakeups_seen;
	bool		swept = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("qiwi_kassa reconciler");
	reconciler_attach(dboid);

	round_context = AllocSetContextCreate(TopMemoryContext, "qiwi_kassa reconciler round",
										  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		bool		more_due;

		if (wait_ms > 0)
			wait_between_rounds(wait_ms, dboid);
		CHECK_FOR_INTERRUPTS();
		wait_ms = qiwi_reconcile_interval_s * 1000L;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!round_may_start(dboid, &said_about))
		{
			if (reconciler_turn_over())
				reconciler_exit(EXIT_TURN, true);
			continue;
		}

		/*
		 * A round's own waits (for the requester) reset the latch, so a wake
		 * that came during the round is told by the count, a reload by its flag
		 */
		wakeups_seen = reconciler_wakeups();
		if (!swept)
			reconciler_sweep(kinds, nkinds, round_context);
		swept = true;
		MemoryContextReset(round_context);
		more_due = reconcile_round(round_context);
		MemoryContextSwitchTo(TopMemoryContext);
		if (reconciler_turn_over())
			reconciler_exit(EXIT_TURN, true);
		if (more_due || reconciler_wakeups() != wakeups_seen || ConfigReloadPending)
			wait_ms = 0;
	}
}

/* ---------- for the SQL functions ---------- */

/*
 * qiwi_reconcile_now(): make every kind's followed items due now (the due
 * watermark, which writes no item), wake the reconciler at commit; how many
 */
Datum
qiwi_reconcile_now(PG_FUNCTION_ARGS)
{
	int64		due = 0;

	guard_require_reconciler("qiwi_reconcile_now", "no item made due would be checked");
	for (int k = 0; k < nkinds; k++)
		due += ledger_make_all_due(kinds[k]->ledger);
	reconciler_wake_at_commit();
	PG_RETURN_INT64(due);
}
