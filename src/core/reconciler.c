/*
 * reconciler.c
 *		The reconciler: a background worker that keeps every open item of
 *		every API (a WAITING bill, ...) current by asking QIWI about it.  Each
 *		API registers a kind of thing to reconcile (reconciler_add_kind);
 *		this file knows none of them.  launcher.c starts it for qiwi.database;
 *		requester.c sends its requests.
 *
 * The reconciler works in rounds: it claims each kind's due items in a
 * short transaction, asks QIWI about all of them with no transaction open
 * while it waits (up to qiwi.reconcile_concurrency requests at once,
 * through the same operations as the SQL functions, sent by a second
 * process, the requester), and records the answers a chunk at a time in
 * short transactions while the next requests are in flight.  It leaves as
 * soon as someone waits to drop or alter its database, so DROP DATABASE is
 * never blocked; it holds no lock between its short transactions, so DROP
 * EXTENSION is not either.  Its state is in shared memory, for the SQL
 * functions that show it.
 */
#include "core/reconciler_internal.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void qiwi_reconciler_main(Datum main_arg);

PG_FUNCTION_INFO_V1(qiwi_reconciler_seen_error);
PG_FUNCTION_INFO_V1(qiwi_reconciler_state);
PG_FUNCTION_INFO_V1(qiwi_reconcile_now);

/* What the reconciler shows to qiwi_reconciler_status, in shared memory */
typedef struct ReconcilerShared
{
	slock_t		mutex;
	pid_t		pid;			/* 0 when no reconciler runs */
	Latch	   *latch;
	uint64		wakeups;		/* wakes asked for (qiwi_reconcile_now ...) */
	char		database[NAMEDATALEN];
	TimestampTz started_at;
	int64		rounds;
	TimestampTz last_round_start;
	int64		last_round_us;
	int64		checked;
	int64		changed;
	int64		failed;
	bool		stopped_by_auth;
	char		last_error[256];	/* of the last round, or a condition that lasts */
	TimestampTz last_error_at;
	char		seen_error[256];	/* the latest ever, kept after clean rounds */
	TimestampTz seen_error_at;
} ReconcilerShared;

static ReconcilerShared *shared = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

static bool wake_registered = false;

/* The kinds of things to reconcile, registered by the APIs in _PG_init */
#define MAX_KINDS 8
static const ReconcileKind *kinds[MAX_KINDS];
static int	nkinds = 0;

char	   *qiwi_database = NULL;
int			qiwi_reconcile_interval_s = 10;
int			qiwi_reconcile_max_interval_s = 3600;
int			qiwi_reconcile_concurrency = 16;
int			qiwi_reconcile_batch_size = 1000;
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

/* ---------- shared memory ---------- */

#if PG_VERSION_NUM >= 150000
/* Ask for the shared state's memory */
static void
reconciler_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ReconcilerShared)));
}
#endif

/* Create or attach the shared state */
static void
reconciler_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("qiwi_kassa reconciler", sizeof(ReconcilerShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(*shared));
		SpinLockInit(&shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Errors published during the round in progress (in the reconciler) */
static int	round_errors = 0;

/* Remember an error for qiwi_reconciler_status, as now and as the latest seen */
void
reconciler_publish_error(const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&shared->mutex);
	strlcpy(shared->last_error, message, sizeof(shared->last_error));
	shared->last_error_at = now;
	strlcpy(shared->seen_error, message, sizeof(shared->seen_error));
	shared->seen_error_at = now;
	SpinLockRelease(&shared->mutex);
	round_errors++;
}

/*
 * A round that checked items ended: its error stands, or, when it had none
 * and no merchant's key is refused, last_error is cleared (seen_error stays)
 */
static void
publish_round_errors(int64 failed, int64 checked)
{
	if (failed > 0)
		reconciler_publish_error(psprintf("%lld of %lld checks failed in the last round",
										  (long long) failed, (long long) checked));
	if (round_errors > 0 || nrefused > 0)
		return;
	SpinLockAcquire(&shared->mutex);
	shared->last_error[0] = '\0';
	shared->last_error_at = 0;
	SpinLockRelease(&shared->mutex);
}

/* Clear the published state when the reconciler exits */
static void
reconciler_detach(int code, Datum arg)
{
	SpinLockAcquire(&shared->mutex);
	shared->pid = 0;
	shared->latch = NULL;
	SpinLockRelease(&shared->mutex);
}

/* ---------- registration ---------- */

/* Add a kind of thing to reconcile (from an API's init, in _PG_init) */
void
reconciler_add_kind(const ReconcileKind *kind)
{
	if (nkinds >= MAX_KINDS)
		elog(ERROR, "too many kinds of things to reconcile");
	kinds[nkinds++] = kind;
}

/* Define the reconciler's settings; register the launcher and the shared state (from _PG_init) */
void
reconciler_init(void)
{
	DefineCustomStringVariable("qiwi.database",
							   "Database whose open items (bills, invoices, ...) the reconciler keeps current.",
							   "Empty turns the reconciler off.",
							   &qiwi_database,
							   "postgres",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_interval",
							"First wait before an open item is checked again, and between rounds.",
							"Each further check of the same item waits twice as long, up to qiwi.reconcile_max_interval.",
							&qiwi_reconcile_interval_s,
							10, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_max_interval",
							"Longest wait between two checks of an open item.",
							NULL,
							&qiwi_reconcile_max_interval_s,
							3600, 1, 86400 * 7,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_concurrency",
							"Requests the reconciler keeps in flight at once.",
							NULL,
							&qiwi_reconcile_concurrency,
							16, 1, 256,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_batch_size",
							"Most items of each kind one reconciler round checks.",
							NULL,
							&qiwi_reconcile_batch_size,
							1000, 1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	if (IsBinaryUpgrade)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = reconciler_shmem_request;
#else
	RequestAddinShmemSpace(MAXALIGN(sizeof(ReconcilerShared)));
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = reconciler_shmem_startup;

	launcher_register();
}


/* Is the extension installed in this database, at the library's version? */
static ExtensionState
extension_state(void)
{
	ExtensionState state;
	MemoryContext caller_context = CurrentMemoryContext;

	StartTransactionCommand();
	state = ledger_extension_state();
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
			proc_exit(0);
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

/* Publish whether some merchant's key is refused */
static void
publish_refusals(void)
{
	SpinLockAcquire(&shared->mutex);
	shared->stopped_by_auth = nrefused > 0;
	SpinLockRelease(&shared->mutex);
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
	publish_refusals();
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
		publish_refusals();
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

/* Record the finished answers not yet recorded, in one short transaction */
static void
record_answers(RoundWork *w)
{
	if (w->nunrecorded == 0)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	for (int k = 0; k < w->nunrecorded; k++)
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
		/* the answer is recorded: its body is not needed any more */
		if (w->responses[i].body != NULL)
			pfree(w->responses[i].body);
		w->responses[i].body = NULL;
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
 * One round of one kind: claim its due items, ask QIWI about them, record
 * the answers.  Adds to the round's counts; returns how many it claimed.
 */
static int
reconcile_kind(const ReconcileKind *kind, MemoryContext round_context, ReconcileCounts *counts)
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
	w.due = ledger_claim_due(kind->ledger, qiwi_reconcile_batch_size, merchants_to_skip(kind),
							 kind->merchant_problem);
	n = w.due->n;
	PopActiveSnapshot();
	CommitTransactionCommand();
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
 * One round: every kind's due items, then every sync.  Returns whether some
 * kind claimed a full batch or some sync has more to read (more are due).
 */
static bool
reconcile_round(MemoryContext round_context)
{
	TimestampTz start = GetCurrentTimestamp();
	ReconcileCounts counts = {0, 0, 0};
	bool		full = false;

	round_errors = 0;
	for (int k = 0; k < nkinds; k++)
	{
		if (reconcile_kind(kinds[k], round_context, &counts) >= qiwi_reconcile_batch_size)
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
	publish_round_errors(counts.failed, counts.checked);
	SpinLockAcquire(&shared->mutex);
	shared->rounds++;
	shared->last_round_start = start;
	shared->last_round_us = GetCurrentTimestamp() - start;
	shared->checked = counts.checked;
	shared->changed = counts.changed;
	shared->failed = counts.failed;
	SpinLockRelease(&shared->mutex);
	pgstat_report_activity(STATE_IDLE, NULL);
	return full;
}

/* How many wakes were asked for so far */
static uint64
reconciler_wakeups(void)
{
	uint64		wakeups;

	SpinLockAcquire(&shared->mutex);
	wakeups = shared->wakeups;
	SpinLockRelease(&shared->mutex);
	return wakeups;
}

/*
 * The reconciler for one database (main_arg): rounds of checks, waiting
 * qiwi.reconcile_interval between them unless a round was full or
 * qiwi_reconcile_now() wakes it.
 */
void
qiwi_reconciler_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext round_context;
	ExtensionState said_about = EXTENSION_READY;
	ExtensionState state;
	long		wait_ms = 0;
	uint64		wakeups_seen;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("qiwi_kassa reconciler");

	SpinLockAcquire(&shared->mutex);
	shared->pid = MyProcPid;
	shared->latch = MyLatch;
	shared->started_at = GetCurrentTimestamp();
	shared->stopped_by_auth = false;
	strlcpy(shared->database, qiwi_database, sizeof(shared->database));
	SpinLockRelease(&shared->mutex);
	on_shmem_exit(reconciler_detach, 0);

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
		/* qiwi.database now names another database: the launcher starts that one */
		if (strcmp(qiwi_database, shared->database) != 0)
			proc_exit(0);
		if (launcher_database_wanted(dboid))
			proc_exit(0);

		state = extension_state();
		if (state != EXTENSION_READY)
		{
			if (state != said_about)
				ereport(LOG,
						(errmsg(state == EXTENSION_NOT_INSTALLED ?
								"qiwi_kassa reconciler is waiting for CREATE EXTENSION qiwi_kassa in database \"%s\"" :
								"qiwi_kassa reconciler is waiting for ALTER EXTENSION qiwi_kassa UPDATE in database \"%s\"",
								shared->database)));
			said_about = state;
			continue;
		}
		said_about = EXTENSION_READY;

		/*
		 * A round's own waits (for the requester) reset the latch, so a wake
		 * that came during the round is told by the count, a reload by its flag
		 */
		wakeups_seen = reconciler_wakeups();
		MemoryContextReset(round_context);
		more_due = reconcile_round(round_context);
		MemoryContextSwitchTo(TopMemoryContext);
		if (more_due || reconciler_wakeups() != wakeups_seen || ConfigReloadPending)
			wait_ms = 0;
	}
}

/* ---------- for the SQL functions ---------- */

/* At commit, wake the reconciler (set up by qiwi_reconcile_now) */
static void
wake_at_commit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT)
	{
		SpinLockAcquire(&shared->mutex);
		shared->wakeups++;
		if (shared->latch != NULL)
			SetLatch(shared->latch);
		SpinLockRelease(&shared->mutex);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		UnregisterXactCallback(wake_at_commit, NULL);
		wake_registered = false;
	}
}

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

/* Wake the reconciler when the current transaction commits */
void
reconciler_wake_at_commit(void)
{
	if (!wake_registered)
	{
		RegisterXactCallback(wake_at_commit, NULL);
		wake_registered = true;
	}
}

/* Is the reconciler registered in this server (not in binary-upgrade mode)? */
bool
reconciler_registered(void)
{
	return shared != NULL;
}

/*
 * qiwi_reconciler_seen_error(): the reconciler's latest error and when it
 * happened, kept after the rounds that cleared last_error
 */
Datum
qiwi_reconciler_seen_error(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	char		error[sizeof(shared->seen_error)];
	TimestampTz at;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("qiwi_reconciler_seen_error() must be called where a row is expected")));
	SpinLockAcquire(&shared->mutex);
	memcpy(error, shared->seen_error, sizeof(error));
	at = shared->seen_error_at;
	SpinLockRelease(&shared->mutex);
	values[0] = CStringGetTextDatum(error);
	nulls[0] = error[0] == '\0';
	values[1] = TimestampTzGetDatum(at);
	nulls[1] = at == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* A snapshot of the reconciler's state, as the columns of qiwi_reconciler_state() */
static void
reconciler_state(Datum *values, bool *nulls)
{
	ReconcilerShared s;

	SpinLockAcquire(&shared->mutex);
	memcpy(&s, shared, sizeof(s));
	SpinLockRelease(&shared->mutex);

	memset(nulls, false, sizeof(bool) * 13);
	values[0] = BoolGetDatum(s.pid != 0);
	values[1] = Int32GetDatum(s.pid);
	nulls[1] = s.pid == 0;
	values[2] = CStringGetTextDatum(s.database[0] ? s.database : qiwi_database);
	values[3] = TimestampTzGetDatum(s.started_at);
	nulls[3] = s.started_at == 0;
	values[4] = Int64GetDatum(s.rounds);
	values[5] = TimestampTzGetDatum(s.last_round_start);
	nulls[5] = s.last_round_start == 0;
	values[6] = DirectFunctionCall7(make_interval, Int32GetDatum(0), Int32GetDatum(0),
									Int32GetDatum(0), Int32GetDatum(0), Int32GetDatum(0),
									Int32GetDatum(0), Float8GetDatum(s.last_round_us / 1e6));
	nulls[6] = s.last_round_start == 0;
	values[7] = Int64GetDatum(s.checked);
	values[8] = Int64GetDatum(s.changed);
	values[9] = Int64GetDatum(s.failed);
	values[10] = BoolGetDatum(s.stopped_by_auth);
	values[11] = CStringGetTextDatum(s.last_error);
	nulls[11] = s.last_error[0] == '\0';
	values[12] = TimestampTzGetDatum(s.last_error_at);
	nulls[12] = s.last_error_at == 0;
}

/* qiwi_reconciler_state(): what the reconciler is doing (qiwi_reconciler_status) */
Datum
qiwi_reconciler_state(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = arg_result_desc(fcinfo, 13, "a row of 13 columns");
	Datum		values[13];
	bool		nulls[13];

	reconciler_state(values, nulls);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
