/*
 * worker.c
 *		The reconciler: background workers that keep every WAITING bill in
 *		qiwi_bills current by asking QIWI about it.
 *
 * A launcher, connected to no database, starts the reconciler for
 * qiwi.database as a dynamic worker and starts it again when it ends.  The
 * reconciler works in rounds: it claims the due bills in a short
 * transaction, asks QIWI about all of them with no transaction open (up to
 * qiwi.reconcile_concurrency requests at once, through the same protocol
 * code as qiwi_bill_status), then records the answers in short
 * transactions.  It leaves as soon as someone waits to drop or alter its
 * database, so DROP DATABASE is never blocked; it holds no lock between its
 * short transactions, so DROP EXTENSION is not either.
 */
#include "qiwi_kassa.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void qiwi_launcher_main(Datum main_arg);
PGDLLEXPORT void qiwi_reconciler_main(Datum main_arg);

/* Answers recorded per transaction */
#define WRITE_CHUNK 100

/* How often, at most, a round in flight looks whether its database is wanted */
#define DROP_CHECK_INTERVAL_MS 500

/* What the reconciler shows to qiwi_reconciler_status, in shared memory */
typedef struct ReconcilerShared
{
	slock_t		mutex;
	pid_t		pid;			/* 0 when no reconciler runs */
	Latch	   *latch;
	char		database[NAMEDATALEN];
	TimestampTz started_at;
	int64		rounds;
	TimestampTz last_round_start;
	int64		last_round_us;
	int64		checked;
	int64		changed;
	int64		failed;
	bool		stopped_by_auth;
	char		last_error[256];
	TimestampTz last_error_at;
} ReconcilerShared;

static ReconcilerShared *shared = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

static bool wake_registered = false;
static TimestampTz last_drop_check = 0;

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

/* Remember an error for qiwi_reconciler_status */
static void
publish_error(const char *message)
{
	SpinLockAcquire(&shared->mutex);
	strlcpy(shared->last_error, message, sizeof(shared->last_error));
	shared->last_error_at = GetCurrentTimestamp();
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

/* Register the launcher and the shared state (from _PG_init) */
void
reconciler_register(void)
{
	BackgroundWorker worker;

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

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "qiwi_kassa");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "qiwi_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "qiwi_kassa launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "qiwi_kassa launcher");
	RegisterBackgroundWorker(&worker);
}

/* ---------- the database ---------- */

/*
 * Is somebody holding or waiting for an exclusive lock on the database
 * (DROP DATABASE, ALTER DATABASE ... RENAME or SET TABLESPACE)?  Must be
 * called outside a transaction.
 */
static bool
database_wanted_by_others(Oid dboid)
{
	LOCKTAG		tag;
	bool		busy;
	MemoryContext caller_context = CurrentMemoryContext;

	StartTransactionCommand();
	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, dboid, 0);
	busy = LockAcquire(&tag, AccessShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL;
	CommitTransactionCommand();
	/* commit leaves TopMemoryContext current; a round in flight allocates on */
	MemoryContextSwitchTo(caller_context);
	return busy;
}

/* Is the extension installed in this database, at the library's version? */
static ExtensionState
extension_state(void)
{
	ExtensionState state;
	MemoryContext caller_context = CurrentMemoryContext;

	StartTransactionCommand();
	state = store_extension_state();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller_context);
	return state;
}

/* ---------- the launcher ---------- */

/* The oid of qiwi.database if it exists and nobody is dropping it, else InvalidOid */
static Oid
available_database(void)
{
	Oid			dboid;

	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;

	if (qiwi_database == NULL || qiwi_database[0] == '\0')
		return InvalidOid;

	/*
	 * Connected to no database, the launcher can read shared catalogs only
	 * by heap scan (their indexes' descriptors may need pg_class).
	 */
	dboid = InvalidOid;
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (strcmp(NameStr(db->datname), qiwi_database) == 0)
			dboid = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	if (OidIsValid(dboid) && database_wanted_by_others(dboid))
		return InvalidOid;
	return dboid;
}

/* Start the reconciler for a database; NULL if no worker slot is free */
static BackgroundWorkerHandle *
start_reconciler(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "qiwi_kassa");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "qiwi_reconciler_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "qiwi_kassa reconciler");
	snprintf(worker.bgw_type, BGW_MAXLEN, "qiwi_kassa reconciler");
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return NULL;
	return handle;
}

/*
 * The launcher: keeps one reconciler running for qiwi.database.  It waits,
 * without log noise, while the database does not exist or is being dropped,
 * and backs off when the reconciler keeps failing right after it starts.
 */
void
qiwi_launcher_main(Datum main_arg)
{
	BackgroundWorkerHandle *handle = NULL;
	TimestampTz started = 0;
	TimestampTz stopped = 0;
	int			quick_failures = 0;
	bool		said_missing = false;
	bool		said_no_slot = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("qiwi_kassa launcher");

	for (;;)
	{
		TimestampTz now;
		Oid			dboid;
		pid_t		pid;
		long		delay_ms;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		now = GetCurrentTimestamp();
		if (handle != NULL)
		{
			if (GetBackgroundWorkerPid(handle, &pid) != BGWH_STOPPED)
				continue;
			pfree(handle);
			handle = NULL;
			stopped = now;
			/* a reconciler that ends within a minute of starting is failing */
			quick_failures = TimestampDifferenceExceeds(started, now, 60000) ? 0 : quick_failures + 1;
		}

		delay_ms = quick_failures == 0 ? 1000L : Min(60000L, 1000L << Min(quick_failures, 6));
		if (!TimestampDifferenceExceeds(stopped, now, (int) delay_ms))
			continue;

		dboid = available_database();
		if (!OidIsValid(dboid))
		{
			if (!said_missing && qiwi_database != NULL && qiwi_database[0] != '\0')
				ereport(LOG,
						(errmsg("qiwi_kassa reconciler is waiting for database \"%s\"",
								qiwi_database)));
			said_missing = true;
			continue;
		}
		said_missing = false;
		handle = start_reconciler(dboid);
		started = now;
		if (handle == NULL)
		{
			/* no free worker slot: say so once, show it, try again later */
			if (!said_no_slot)
				ereport(LOG,
						(errmsg("qiwi_kassa reconciler cannot start: no background worker slot is free"),
						 errhint("Raise max_worker_processes (the reconciler and its launcher need one each).")));
			said_no_slot = true;
			publish_error("no background worker slot is free: raise max_worker_processes");
			stopped = now;
		}
		else
			said_no_slot = false;
	}
}

/* ---------- the reconciler ---------- */

/* Between waits of a round in flight: go on unless the database is wanted */
static bool
round_may_go_on(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(last_drop_check, now, DROP_CHECK_INTERVAL_MS))
		return true;
	last_drop_check = now;
	return !database_wanted_by_others(MyDatabaseId);
}

/*
 * Record a failed check or creation: backoff, or for good if QIWI refused
 * the creation.  A lost or malformed answer to a create is no refusal: the
 * PUT is idempotent, and QIWI may well have the bill, so it is sent again.
 */
static void
record_failure(const DueBill *due, const QiwiError *error, bool *auth_failed)
{
	if (error->sqlstate == ERRCODE_QIWI_AUTHENTICATION)
		*auth_failed = true;
	else if (due->creating && error->sqlstate == ERRCODE_QIWI_INVALID_REQUEST)
		store_create_failed(due->bill_id, error->message);
	else
		store_check_result(due->bill_id, true, error->message);
}

/* Record one answer (or failure) for a bill; true if its status changed */
static bool
record_answer(const DueBill *due, const HttpResponse *resp, bool *failed, bool *auth_failed)
{
	QiwiBill	bill;
	QiwiError	error;
	StoredBill	stored;
	bool		ok;
	bool		shop_money;

	*failed = false;
	ok = due->creating ? qiwi_create_bill_answer(&due->create, resp, &bill, &error)
		: qiwi_get_bill_answer(due->bill_id, resp, &bill, &error);
	if (!ok)
	{
		*failed = error.sqlstate != ERRCODE_QIWI_AUTHENTICATION;
		record_failure(due, &error, auth_failed);
		return false;
	}
	shop_money = strcmp(bill.currency, due->create.currency) == 0 &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(bill.amount),
										  NumericGetDatum(due->create.amount))) == 0;
	if (!due->creating && shop_money && strcmp(bill.status, "WAITING") == 0)
	{
		store_check_result(due->bill_id, false, NULL);
		return false;
	}
	switch (store_bill(&bill, SOURCE_RECONCILER, &stored))
	{
		case STORE_INSERTED:
		case STORE_ADVANCED:
			return true;
		case STORE_MISMATCH:
			ereport(LOG,
					(errcode(ERRCODE_QIWI_AMOUNT_MISMATCH),
					 errmsg("QIWI reports bill \"%s\" for %s %s, but the shop's bill is for %s %s; it is recorded as MISMATCH",
							bill.bill_id, qiwi_format_amount(bill.amount), bill.currency,
							qiwi_format_amount(stored.amount), stored.currency)));
			return strcmp(stored.status, "MISMATCH") != 0;
		default:
			return false;	/* a call or a notification got there first */
	}
}

/*
 * One round: claim the due bills, ask QIWI about them, record the answers.
 * Returns how many bills it claimed.
 */
static int
reconcile_round(MemoryContext round_context, bool *auth_failed)
{
	TimestampTz start = GetCurrentTimestamp();
	DueBill    *due;
	int			n;
	HttpRequest *requests;
	HttpResponse *responses;
	int64		changed = 0;
	int64		failed = 0;
	char		activity[128];

	/* claim */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "qiwi_kassa: claiming due bills");
	MemoryContextSwitchTo(round_context);
	due = store_due_bills(qiwi_reconcile_batch_size, &n);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(round_context);
	if (n == 0)
	{
		pgstat_report_activity(STATE_IDLE, NULL);
		return 0;
	}

	/* ask QIWI, with no transaction open */
	snprintf(activity, sizeof(activity), "qiwi_kassa: checking %d bills with QIWI", n);
	pgstat_report_activity(STATE_RUNNING, activity);
	requests = palloc(sizeof(HttpRequest) * n);
	responses = palloc(sizeof(HttpResponse) * n);
	for (int i = 0; i < n; i++)
	{
		if (due[i].creating)
			qiwi_create_bill_request(&due[i].create, &requests[i]);
		else
			qiwi_get_bill_request(due[i].bill_id, &requests[i]);
	}
	http_perform_many(requests, n, qiwi_reconcile_concurrency, qiwi_secret_key,
					  responses, round_may_go_on);

	/* record, a chunk per short transaction */
	pgstat_report_activity(STATE_RUNNING, "qiwi_kassa: recording answers");
	for (int first = 0; first < n; first += WRITE_CHUNK)
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		for (int i = first; i < Min(n, first + WRITE_CHUNK); i++)
		{
			bool		bill_failed;

			/* an abandoned round leaves its bills due: they are checked next time */
			if (responses[i].failure == HTTP_FAIL_ABANDONED)
				continue;
			if (record_answer(&due[i], &responses[i], &bill_failed, auth_failed))
				changed++;
			if (bill_failed)
				failed++;
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(round_context);
	}
	/* once a round: monitoring and autovacuum see the writes right away */
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);

	SpinLockAcquire(&shared->mutex);
	shared->rounds++;
	shared->last_round_start = start;
	shared->last_round_us = GetCurrentTimestamp() - start;
	shared->checked = n;
	shared->changed = changed;
	shared->failed = failed;
	SpinLockRelease(&shared->mutex);
	if (failed > 0)
		publish_error(psprintf("%lld of %d checks failed in the last round",
							   (long long) failed, n));
	return n;
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
	bool		auth_failed = false;
	long		wait_ms = 0;

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
		int			claimed;

		if (wait_ms > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 wait_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
		wait_ms = qiwi_reconcile_interval_s * 1000L;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* a new configuration may carry the right key */
			if (auth_failed)
				ereport(LOG, (errmsg("qiwi_kassa reconciler resumes after a configuration reload")));
			auth_failed = false;
			SpinLockAcquire(&shared->mutex);
			shared->stopped_by_auth = false;
			SpinLockRelease(&shared->mutex);
		}
		/* qiwi.database now names another database: the launcher starts that one */
		if (strcmp(qiwi_database, shared->database) != 0)
			proc_exit(0);
		if (database_wanted_by_others(dboid))
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
		if (auth_failed)
			continue;
		if (qiwi_secret_key == NULL || qiwi_secret_key[0] == '\0')
		{
			publish_error("qiwi.secret_key is not set");
			continue;
		}

		MemoryContextReset(round_context);
		claimed = reconcile_round(round_context, &auth_failed);
		MemoryContextSwitchTo(TopMemoryContext);
		if (auth_failed)
		{
			/* said once; no request is sent until the configuration changes */
			ereport(LOG,
					(errcode(ERRCODE_QIWI_AUTHENTICATION),
					 errmsg("QIWI refused the secret key; the qiwi_kassa reconciler stops until the configuration is reloaded")));
			publish_error("QIWI refused the secret key (HTTP 401); waiting for a configuration reload");
			SpinLockAcquire(&shared->mutex);
			shared->stopped_by_auth = true;
			SpinLockRelease(&shared->mutex);
		}
		else if (claimed >= qiwi_reconcile_batch_size)
			wait_ms = 0;		/* more are due */
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

/* A snapshot of the reconciler's state, as the columns of qiwi_reconciler_state() */
void
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
