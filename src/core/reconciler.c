/*
 * reconciler.c
 *		The reconciler: background workers that keep every open item of
 *		every API (a WAITING bill, ...) current by asking QIWI about it.  Each
 *		API registers a kind of thing to reconcile (reconciler_add_kind);
 *		this file knows none of them.
 *
 * A launcher, connected to no database, starts the reconciler for
 * qiwi.database as a dynamic worker and starts it again when it ends.  The
 * reconciler works in rounds: it claims the due bills in a short
 * transaction, asks QIWI about all of them with no transaction open while
 * it waits (up to qiwi.reconcile_concurrency requests at once, through the
 * same operations as the SQL functions, sent by a second process, the
 * requester), and records the answers a chunk at a time in short
 * transactions while the next requests are in flight.  It leaves as soon as
 * someone waits to drop or alter its
 * database, so DROP DATABASE is never blocked; it holds no lock between its
 * short transactions, so DROP EXTENSION is not either.
 */
#include "core/core.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void qiwi_launcher_main(Datum main_arg);
PGDLLEXPORT void qiwi_reconciler_main(Datum main_arg);
PGDLLEXPORT void qiwi_requester_main(Datum main_arg);

PG_FUNCTION_INFO_V1(qiwi_reconciler_seen_error);
PG_FUNCTION_INFO_V1(qiwi_reconcile_now);

/* Answers recorded per transaction, at least (more if more finished meanwhile) */
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

/* What a round did, over all kinds */
typedef struct RoundCounts
{
	int64		checked;
	int64		changed;
	int64		failed;
} RoundCounts;

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
static void
publish_error(const char *message)
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
		publish_error(psprintf("%lld of %lld checks failed in the last round",
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
	BackgroundWorker worker;

	DefineCustomStringVariable("qiwi.database",
							   "Database whose qiwi_bills the reconciler keeps current.",
							   "Empty turns the reconciler off.",
							   &qiwi_database,
							   "postgres",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_interval",
							"First wait before a WAITING bill is checked again, and between rounds.",
							"Each further check of the same bill waits twice as long, up to qiwi.reconcile_max_interval.",
							&qiwi_reconcile_interval_s,
							10, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_max_interval",
							"Longest wait between two checks of a WAITING bill.",
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
							"Most bills one reconciler round checks.",
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
	state = ledger_extension_state();
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

/*
 * Start a worker of this library (main: its function; what: "reconciler",
 * "requester"), never restarted by the postmaster, that tells this process
 * when it ends; NULL if no worker slot is free
 */
static BackgroundWorkerHandle *
start_worker(const char *main, const char *what, Datum main_arg)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	worker.bgw_main_arg = main_arg;
	worker.bgw_notify_pid = MyProcPid;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "qiwi_kassa");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", main);
	snprintf(worker.bgw_name, BGW_MAXLEN, "qiwi_kassa %s", what);
	snprintf(worker.bgw_type, BGW_MAXLEN, "qiwi_kassa %s", what);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return NULL;
	return handle;
}

/* Start the reconciler for a database (the launcher restarts it); NULL if no slot is free */
static BackgroundWorkerHandle *
start_reconciler(Oid dboid)
{
	return start_worker("qiwi_reconciler_main", "reconciler", ObjectIdGetDatum(dboid));
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
						 errhint("Raise max_worker_processes (the reconciler and its launcher need one each, its requester one more, kept while the reconciler runs).")));
			said_no_slot = true;
			publish_error("no background worker slot is free: raise max_worker_processes");
			stopped = now;
		}
		else
			said_no_slot = false;
	}
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
		if (database_wanted_by_others(dboid))
			proc_exit(0);
	}
}

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

/* Publish whether some merchant's key is refused */
static void
publish_refusals(void)
{
	SpinLockAcquire(&shared->mutex);
	shared->stopped_by_auth = nrefused > 0;
	SpinLockRelease(&shared->mutex);
}

/* Stop asking QIWI for a merchant whose key it refused; said once */
static void
refuse_merchant(const Merchant *merchant)
{
	for (int i = 0; i < nrefused; i++)
		if (strcmp(refused[i].name, merchant->name) == 0)
			return;
	if (nrefused == MAX_REFUSED)
		return;					/* its next 401 stops it once a slot is free */
	strlcpy(refused[nrefused].name, merchant->name, NAMEDATALEN);
	refused[nrefused++].fingerprint = merchant_fingerprint(merchant);
	ereport(LOG,
			(errcode(ERRCODE_QIWI_AUTHENTICATION),
			 errmsg("QIWI refused the secret key of merchant \"%s\"; the qiwi_kassa reconciler leaves its items until its key changes",
					merchant->name),
			 errhint("Reload the configuration with the right key, or change the merchant's user mapping.")));
	publish_error(psprintf("QIWI refused the secret key of merchant \"%s\" (HTTP 401); its items wait for its key to change",
						   merchant->name));
	publish_refusals();
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
	/* the only merchant lacking its key: say so, as before there were merchants */
	if (list_length(unusable) == 1 && merchant_count() == 1)
		publish_error(psprintf("qiwi.secret_key is not set"));
	return makeArrayResult(astate, CurrentMemoryContext);
}

/* ---------- the requester ---------- */

/*
 * A round's requests are sent by a second process, the requester, while
 * the reconciler reads and records the answers: one process could not do
 * both at once, and recording takes as long as requesting.  The requester
 * is connected to no database and opens no transaction.  It is started at
 * the first round and kept for the next ones (a process start and new
 * connections to QIWI cost a small round more than it gains): through a
 * queue in a segment of its own it gets, per round, the handle of a
 * dynamic shared memory segment holding the round's requests, and sends
 * each answer back through a queue in that segment.  It ends when the
 * reconciler does (its queue is detached).  If it dies, the answers not
 * yet back count as abandoned: their items stay due and are checked by a
 * later round, which starts another requester.  With no worker slot free,
 * the reconciler sends the round itself.
 */

#define REQUESTER_MAGIC 0x71776b72
#define REQUESTER_QUEUE_BYTES (1024 * 1024)
#define REQUESTER_ORDERS_BYTES 1024
#define REQUESTER_KEY_BATCH 1
#define REQUESTER_KEY_REQUESTS 2
#define REQUESTER_KEY_QUEUE 3
#define REQUESTER_KEY_ORDERS 4

/* A round for the requester, at the start of its segment */
typedef struct RequesterBatch
{
	int			n;
	int			concurrency;
	int			timeout_ms;
	int			connect_timeout_ms;
	bool		has_ca_file;
	char		ca_file[MAXPGPATH];
	Size		requests_bytes;
} RequesterBatch;

/* What precedes an answer's body and error in the queue */
typedef struct RequesterAnswer
{
	int32		index;
	int32		failure;
	int64		status;
	int32		body_len;		/* -1: no body */
	int32		error_len;		/* -1: no error */
} RequesterAnswer;

/* The reconciler's requester, kept across rounds (NULL: none runs) */
static BackgroundWorkerHandle *requester = NULL;

/*
 * A requester died before answering its round: the next round is sent by
 * the reconciler itself, so that a requester that keeps dying (on a
 * request it cannot survive, or a segment it cannot map) never stops the
 * reconciliation; the round after that starts a new requester.
 */
static bool requester_died = false;
static dsm_segment *requester_segment = NULL;
static shm_mq_handle *requester_orders = NULL;

/* Append len bytes to buf at *pos; only count them when buf is NULL */
static void
put_bytes(char *buf, Size *pos, const void *data, Size len)
{
	if (buf != NULL)
		memcpy(buf + *pos, data, len);
	*pos += len;
}

/* Append a string (or NULL): its length (-1 for NULL), then it with its NUL */
static void
put_string(char *buf, Size *pos, const char *s)
{
	int32		len = s == NULL ? -1 : (int32) strlen(s);

	put_bytes(buf, pos, &len, sizeof(len));
	if (s != NULL)
		put_bytes(buf, pos, s, len + 1);
}

/* The next len of the size bytes of buf, in place; an error past the end */
static char *
get_bytes(char *buf, Size size, Size *pos, Size len)
{
	char	   *p = buf + *pos;

	if (len > size - *pos)
		elog(ERROR, "truncated request in the qiwi_kassa requester's segment");
	*pos += len;
	return p;
}

/* The next int32 of the size bytes of buf */
static int32
get_int(char *buf, Size size, Size *pos)
{
	int32		v;

	memcpy(&v, get_bytes(buf, size, pos, sizeof(v)), sizeof(v));
	return v;
}

/* The next string put_string wrote, in place (NULL if none) */
static char *
get_string(char *buf, Size size, Size *pos)
{
	int32		len = get_int(buf, size, pos);
	char	   *s;

	if (len == -1)
		return NULL;
	if (len < 0)
		elog(ERROR, "bad string length in the qiwi_kassa requester's segment");
	s = get_bytes(buf, size, pos, (Size) len + 1);
	if (s[len] != '\0' || strlen(s) != (size_t) len)
		elog(ERROR, "bad string in the qiwi_kassa requester's segment");
	return s;
}

/* Write n requests into buf, or only measure them when buf is NULL; their size */
static Size
put_requests(char *buf, const HttpRequest *requests, int n)
{
	Size		pos = 0;

	for (int i = 0; i < n; i++)
	{
		int32		head[3] = {(int32) requests[i].method, requests[i].nheaders,
							   (int32) requests[i].fresh_connection};

		put_bytes(buf, &pos, head, sizeof(head));
		put_string(buf, &pos, requests[i].url);
		for (int h = 0; h < requests[i].nheaders; h++)
			put_string(buf, &pos, requests[i].headers[h]);
		put_string(buf, &pos, requests[i].body);
		put_string(buf, &pos, requests[i].content_type);
	}
	return pos;
}

/* Read the n requests put_requests wrote into size bytes of buf, in place */
static HttpRequest *
get_requests(char *buf, Size size, int n)
{
	HttpRequest *requests = palloc(sizeof(HttpRequest) * Max(n, 1));
	Size		pos = 0;

	for (int i = 0; i < n; i++)
	{
		int32		method = get_int(buf, size, &pos);
		int32		nheaders = get_int(buf, size, &pos);
		const char **headers;

		/* a header takes four bytes at least */
		if (method < HTTP_GET || method > HTTP_DELETE ||
			nheaders < 0 || (Size) nheaders > (size - pos) / sizeof(int32))
			elog(ERROR, "bad request in the qiwi_kassa requester's segment");
		requests[i].method = (HttpMethod) method;
		requests[i].fresh_connection = get_int(buf, size, &pos) != 0;
		requests[i].url = get_string(buf, size, &pos);
		headers = palloc(sizeof(char *) * Max(nheaders, 1));
		for (int h = 0; h < nheaders; h++)
			headers[h] = get_string(buf, size, &pos);
		requests[i].headers = headers;
		requests[i].nheaders = nheaders;
		requests[i].body = get_string(buf, size, &pos);
		requests[i].content_type = get_string(buf, size, &pos);
		if (requests[i].url == NULL)
			elog(ERROR, "request without a URL in the qiwi_kassa requester's segment");
	}
	return requests;
}

/*
 * Wipe the requests of a round's segment as it is detached, whatever ends
 * it (an on_dsm_detach callback of both processes): they hold credentials
 */
static void
wipe_requests(dsm_segment *seg, Datum arg)
{
	shm_toc    *toc = shm_toc_attach(REQUESTER_MAGIC, dsm_segment_address(seg));
	RequesterBatch *batch;
	char	   *buf;

	if (toc == NULL)
		return;
	batch = shm_toc_lookup(toc, REQUESTER_KEY_BATCH, true);
	buf = shm_toc_lookup(toc, REQUESTER_KEY_REQUESTS, true);
	if (batch != NULL && buf != NULL)
		explicit_bzero(buf, batch->requests_bytes);
}

/* The requester's side of a round */
typedef struct RequesterState
{
	shm_mq_handle *mqh;
	HttpResponse *responses;
} RequesterState;

/*
 * Send the requester's finished answers to the reconciler (an HttpProgress,
 * called between libcurl calls); false once the reconciler is gone
 */
static bool
send_answers(void *arg, const int *finished, int nfinished)
{
	RequesterState *state = (RequesterState *) arg;

	for (int k = 0; k < nfinished; k++)
	{
		HttpResponse *resp = &state->responses[finished[k]];
		RequesterAnswer head;
		shm_mq_iovec iov[3];
		shm_mq_result res;

		head.index = finished[k];
		head.failure = (int32) resp->failure;
		head.status = resp->status;
		head.body_len = resp->body == NULL ? -1 : (int32) resp->body_len;
		head.error_len = resp->error == NULL ? -1 : (int32) strlen(resp->error);
		iov[0].data = (const char *) &head;
		iov[0].len = sizeof(head);
		iov[1].data = resp->body;
		iov[1].len = Max(head.body_len, 0);
		iov[2].data = resp->error;
		iov[2].len = Max(head.error_len, 0);
		/* made visible to the reconciler at the last answer of the call */
		res = shm_mq_sendv(state->mqh, iov, 3, false, k == nfinished - 1);
		if (resp->body != NULL)
			pfree(resp->body);
		if (resp->error != NULL)
			pfree(resp->error);
		resp->body = resp->error = NULL;
		if (res != SHM_MQ_SUCCESS)
			return false;
	}
	return true;
}

/* The requester's round: send the requests in the segment h, answer each */
static void
requester_round(dsm_handle h)
{
	dsm_segment *seg = dsm_attach(h);
	shm_toc    *toc;
	RequesterBatch *batch;
	RequesterState state;
	HttpRequest *requests;
	HttpOptions options;
	shm_mq	   *mq;

	if (seg == NULL)
		return;					/* the reconciler gave up on the round already */
	on_dsm_detach(seg, wipe_requests, (Datum) 0);
	toc = shm_toc_attach(REQUESTER_MAGIC, dsm_segment_address(seg));
	if (toc == NULL)
		elog(ERROR, "bad qiwi_kassa requester segment");
	batch = shm_toc_lookup(toc, REQUESTER_KEY_BATCH, false);
	mq = shm_toc_lookup(toc, REQUESTER_KEY_QUEUE, false);
	shm_mq_set_sender(mq, MyProc);
	state.mqh = shm_mq_attach(mq, seg, NULL);
	requests = get_requests(shm_toc_lookup(toc, REQUESTER_KEY_REQUESTS, false),
							batch->requests_bytes, batch->n);
	options.timeout_ms = batch->timeout_ms;
	options.connect_timeout_ms = batch->connect_timeout_ms;
	options.ca_file = batch->has_ca_file ? batch->ca_file : NULL;
	state.responses = palloc0(sizeof(HttpResponse) * Max(batch->n, 1));
	http_perform_many(requests, batch->n, batch->concurrency, &options, state.responses,
					  send_answers, &state);
	shm_mq_detach(state.mqh);
	dsm_detach(seg);
}

/*
 * The requester (main_arg: the segment of its queue of rounds): sends the
 * rounds it is given until the reconciler is gone
 */
void
qiwi_requester_main(Datum main_arg)
{
	dsm_segment *seg;
	shm_toc    *toc;
	shm_mq	   *mq;
	shm_mq_handle *orders;
	MemoryContext round_context;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* connected to no database: only to be seen in pg_stat_activity */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("qiwi_kassa requester");
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "qiwi_kassa requester");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		proc_exit(0);			/* the reconciler is gone already */
	toc = shm_toc_attach(REQUESTER_MAGIC, dsm_segment_address(seg));
	if (toc == NULL)
		elog(ERROR, "bad qiwi_kassa requester segment");
	mq = shm_toc_lookup(toc, REQUESTER_KEY_ORDERS, false);
	shm_mq_set_receiver(mq, MyProc);
	orders = shm_mq_attach(mq, seg, NULL);
	round_context = AllocSetContextCreate(TopMemoryContext, "qiwi_kassa requester round",
										  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		Size		len;
		void	   *data;
		dsm_handle	h;

		/* waits for a round; detached when the reconciler ends */
		if (shm_mq_receive(orders, &len, &data, false) != SHM_MQ_SUCCESS)
			proc_exit(0);
		if (len != sizeof(h))
			elog(ERROR, "bad message to the qiwi_kassa requester");
		memcpy(&h, data, sizeof(h));
		MemoryContextSwitchTo(round_context);
		requester_round(h);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(round_context);
#ifdef __GLIBC__
		/*
		 * A round's answers and libcurl's and OpenSSL's buffers, freed now,
		 * would stay in glibc's heap, whose high-water mark creeps up round
		 * after round: give them back while the requester waits.
		 */
		malloc_trim(0);
#endif
	}
}

/* Start the requester and its queue of rounds; false if no worker slot is free */
static bool
start_requester(void)
{
	MemoryContext caller_context = MemoryContextSwitchTo(TopMemoryContext);
	shm_toc_estimator e;
	dsm_segment *seg;
	shm_toc    *toc;
	shm_mq	   *mq;

	shm_toc_initialize_estimator(&e);
	shm_toc_estimate_chunk(&e, REQUESTER_ORDERS_BYTES);
	shm_toc_estimate_keys(&e, 1);
	seg = dsm_create(shm_toc_estimate(&e), DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
	{
		MemoryContextSwitchTo(caller_context);
		return false;
	}
	/* kept across rounds and their transactions */
	dsm_pin_mapping(seg);
	toc = shm_toc_create(REQUESTER_MAGIC, dsm_segment_address(seg), shm_toc_estimate(&e));
	mq = shm_mq_create(shm_toc_allocate(toc, REQUESTER_ORDERS_BYTES), REQUESTER_ORDERS_BYTES);
	shm_toc_insert(toc, REQUESTER_KEY_ORDERS, mq);
	shm_mq_set_sender(mq, MyProc);

	/* a later round starts another if it ends */
	requester = start_worker("qiwi_requester_main", "requester",
							 UInt32GetDatum(dsm_segment_handle(seg)));
	if (requester == NULL)
	{
		dsm_detach(seg);
		MemoryContextSwitchTo(caller_context);
		return false;
	}
	/* with the handle, a requester that dies or never starts detaches the queue */
	requester_orders = shm_mq_attach(mq, seg, requester);
	requester_segment = seg;
	MemoryContextSwitchTo(caller_context);
	return true;
}

/* Stop the requester (if it still runs) and forget it: a later round starts another */
static void
forget_requester(void)
{
	if (requester == NULL)
		return;
	TerminateBackgroundWorker(requester);
	shm_mq_detach(requester_orders);
	dsm_detach(requester_segment);
	pfree(requester);
	requester = NULL;
	requester_orders = NULL;
	requester_segment = NULL;
}

/*
 * Give the round in seg to the requester, starting one if none runs or the
 * one there was has died; false if none can be started
 */
static bool
hand_to_requester(dsm_segment *seg)
{
	dsm_handle	h = dsm_segment_handle(seg);

	for (int attempt = 0; attempt < 2; attempt++)
	{
		if (requester == NULL && !start_requester())
			return false;
		if (shm_mq_send(requester_orders, sizeof(h), &h, false, true) == SHM_MQ_SUCCESS)
			return true;
		forget_requester();
	}
	return false;
}

/* Fill responses[i] from an answer the requester sent; i */
static int
take_answer(const char *data, Size len, int n, HttpResponse *responses)
{
	RequesterAnswer head;
	HttpResponse *resp;

	if (len < sizeof(head))
		elog(ERROR, "short message from the qiwi_kassa requester");
	memcpy(&head, data, sizeof(head));
	if (head.index < 0 || head.index >= n ||
		head.failure < HTTP_OK || head.failure > HTTP_FAIL_ABANDONED ||
		head.body_len < -1 || head.error_len < -1 ||
		len != sizeof(head) + Max(head.body_len, 0) + Max(head.error_len, 0))
		elog(ERROR, "bad message from the qiwi_kassa requester");
	resp = &responses[head.index];
	resp->failure = (HttpFailure) head.failure;
	resp->status = head.status;
	resp->body = head.body_len < 0 ? NULL : pnstrdup(data + sizeof(head), head.body_len);
	resp->body_len = Max(head.body_len, 0);
	resp->error = head.error_len < 0 ? NULL :
		pnstrdup(data + sizeof(head) + Max(head.body_len, 0), head.error_len);
	return head.index;
}

/*
 * Send a round's requests through the requester while this process records
 * the answers (an HttpBatchPerformer); in this process when no worker slot
 * or segment is to be had.  Answers that never come back are abandoned.
 */
static void
perform_in_requester(const HttpRequest *requests, int n, int concurrency,
					 const HttpOptions *options, HttpResponse *responses,
					 HttpProgress progress, void *arg)
{
	Size		requests_bytes;
	shm_toc_estimator e;
	dsm_segment *seg;
	shm_toc    *toc;
	RequesterBatch *batch;
	char	   *buf;
	shm_mq	   *mq;
	shm_mq_handle *mqh;
	bool	   *answered;
	int		   *order;
	int			nanswered = 0;
	int			reported = 0;
	bool		go_on = true;

	if (requester_died)
	{
		requester_died = false;
		http_perform_many(requests, n, concurrency, options, responses, progress, arg);
		return;
	}
	requests_bytes = put_requests(NULL, requests, n);
	shm_toc_initialize_estimator(&e);
	shm_toc_estimate_chunk(&e, sizeof(RequesterBatch));
	shm_toc_estimate_chunk(&e, requests_bytes);
	shm_toc_estimate_chunk(&e, REQUESTER_QUEUE_BYTES);
	shm_toc_estimate_keys(&e, 3);
	seg = dsm_create(shm_toc_estimate(&e), DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
	{
		http_perform_many(requests, n, concurrency, options, responses, progress, arg);
		return;
	}
	toc = shm_toc_create(REQUESTER_MAGIC, dsm_segment_address(seg), shm_toc_estimate(&e));
	batch = shm_toc_allocate(toc, sizeof(RequesterBatch));
	batch->n = n;
	batch->concurrency = concurrency;
	batch->timeout_ms = options->timeout_ms;
	batch->connect_timeout_ms = options->connect_timeout_ms;
	batch->has_ca_file = options->ca_file != NULL;
	strlcpy(batch->ca_file, options->ca_file ? options->ca_file : "", MAXPGPATH);
	batch->requests_bytes = requests_bytes;
	shm_toc_insert(toc, REQUESTER_KEY_BATCH, batch);
	buf = shm_toc_allocate(toc, requests_bytes);
	shm_toc_insert(toc, REQUESTER_KEY_REQUESTS, buf);
	on_dsm_detach(seg, wipe_requests, (Datum) 0);
	put_requests(buf, requests, n);
	mq = shm_mq_create(shm_toc_allocate(toc, REQUESTER_QUEUE_BYTES), REQUESTER_QUEUE_BYTES);
	shm_toc_insert(toc, REQUESTER_KEY_QUEUE, mq);
	shm_mq_set_receiver(mq, MyProc);

	if (!hand_to_requester(seg))
	{
		dsm_detach(seg);
		http_perform_many(requests, n, concurrency, options, responses, progress, arg);
		return;
	}
	/* with the handle, a requester that dies or never attaches detaches the queue */
	mqh = shm_mq_attach(mq, seg, requester);
	answered = palloc0(sizeof(bool) * Max(n, 1));
	order = palloc(sizeof(int) * Max(n, 1));

	while (nanswered < n)
	{
		Size		len;
		void	   *data;
		shm_mq_result res = shm_mq_receive(mqh, &len, &data, true);

		if (res == SHM_MQ_SUCCESS)
		{
			int			i = take_answer(data, len, n, responses);

			if (!answered[i])
				order[nanswered++] = i;
			answered[i] = true;
			/* a chunk came: record it while the requester goes on */
			if (nanswered - reported < WRITE_CHUNK)
				continue;
		}
		else if (res == SHM_MQ_DETACHED)
			break;
		go_on = progress(arg, order + reported, nanswered - reported);
		reported = nanswered;
		if (!go_on)
			break;
		if (res == SHM_MQ_SUCCESS)
			continue;
		/* nothing new: wait for more */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 DROP_CHECK_INTERVAL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	shm_mq_detach(mqh);
	/* it died, or is still at an abandoned round: the next round starts another */
	if (nanswered < n)
	{
		forget_requester();
		requester_died = go_on;
	}
	dsm_detach(seg);
	for (int i = 0; i < n; i++)
		if (!answered[i])
		{
			responses[i].failure = HTTP_FAIL_ABANDONED;
			responses[i].status = 0;
			responses[i].body = NULL;
			responses[i].body_len = 0;
			responses[i].error = pstrdup(go_on ? "the requester ended before answering" : "abandoned");
			order[nanswered++] = i;
		}
	(void) progress(arg, order + reported, nanswered - reported);
	pfree(answered);
	pfree(order);
}

/* A kind's round in flight: its items, their answers, those not yet recorded */
typedef struct RoundWork
{
	const ReconcileKind *kind;
	void	   *items;
	QiwiOperation *ops;
	HttpResponse *responses;
	int		   *unrecorded;		/* indices of finished requests */
	int			nunrecorded;
	MemoryContext round_context;
	RoundCounts *counts;
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
		if (w->kind->record(w->items, i, &w->ops[i], &w->responses[i], &failed, &key_refused))
			w->counts->changed++;
		if (failed)
			w->counts->failed++;
		if (key_refused)
			refuse_merchant(w->ops[i].merchant);
		/* the answer is recorded: its body is not needed any more */
		if (w->responses[i].body != NULL)
			pfree(w->responses[i].body);
		w->responses[i].body = NULL;
	}
	if (w->kind->flush != NULL)
		w->kind->flush(w->items);
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
	return round_may_go_on();
}

/*
 * One round of one kind: claim its due items, ask QIWI about them, record
 * the answers.  Adds to the round's counts; returns how many it claimed.
 */
static int
reconcile_kind(const ReconcileKind *kind, MemoryContext round_context, RoundCounts *counts)
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
	w.items = kind->claim(qiwi_reconcile_batch_size, merchants_to_skip(kind), &n);
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
		kind->operation(w.items, i, &w.ops[i]);
	qiwi_exchange_batch(w.ops, n, qiwi_reconcile_concurrency, w.responses, perform_in_requester,
						round_progress, &w);
	record_answers(&w);
	counts->checked += n;
	return n;
}

/*
 * One round: every kind's due items.  Returns whether some kind claimed a
 * full batch (more are due).
 */
static bool
reconcile_round(MemoryContext round_context)
{
	TimestampTz start = GetCurrentTimestamp();
	RoundCounts counts = {0, 0, 0};
	bool		full = false;

	round_errors = 0;
	for (int k = 0; k < nkinds; k++)
	{
		if (reconcile_kind(kinds[k], round_context, &counts) >= qiwi_reconcile_batch_size)
			full = true;
	}
	if (counts.checked == 0)
	{
		pgstat_report_activity(STATE_IDLE, NULL);
		return false;
	}
	/* once a round: monitoring and autovacuum see the writes right away */
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);

	/* before the counts: whoever sees the round sees its error */
	publish_round_errors(counts.failed, counts.checked);
	SpinLockAcquire(&shared->mutex);
	shared->rounds++;
	shared->last_round_start = start;
	shared->last_round_us = GetCurrentTimestamp() - start;
	shared->checked = counts.checked;
	shared->changed = counts.changed;
	shared->failed = counts.failed;
	SpinLockRelease(&shared->mutex);
	return full;
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

		MemoryContextReset(round_context);
		more_due = reconcile_round(round_context);
		MemoryContextSwitchTo(TopMemoryContext);
		if (more_due)
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
 * qiwi_reconcile_now(): make every kind's followed items due now (each
 * kind's own statement), wake the reconciler at commit; how many
 */
Datum
qiwi_reconcile_now(PG_FUNCTION_ARGS)
{
	int64		due = 0;

	guard_require_reconciler("qiwi_reconcile_now", "no item made due would be checked");
	for (int k = 0; k < nkinds; k++)
		due += kinds[k]->make_due();
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
