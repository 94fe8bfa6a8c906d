/*
 * launcher.c
 *		The reconcilers' launcher: a background worker, connected to no
 *		database, that keeps a reconciler running for each database that
 *		has the extension (of those qiwi.database lets through), at most
 *		qiwi.max_reconcilers at once; and the worker slots the reconcilers
 *		and their requesters are started in.
 *
 * Every second (or when a worker ends, or CREATE EXTENSION commits
 * somewhere) it reads pg_database, gives each new database a slot of
 * shared memory and frees the slots of those gone.  Whether a database has
 * the extension is known only inside it: a new database gets a reconciler,
 * which leaves at once, saying so, where the extension is missing; the
 * launcher then leaves that database alone until CREATE EXTENSION commits
 * there or NO_EXTENSION_RECHECK_MS pass (a database copied from a template
 * that has the extension is seen at once, being new).  Templates and
 * databases that refuse connections are never entered: a session in a
 * template would make CREATE DATABASE fail.
 *
 * When more databases wait than slots are free, the launcher asks every
 * running reconciler to end after its round; the database that has waited
 * longest starts first, so none starves.  A reconciler that fails within a
 * minute of starting is started again after a growing delay.
 */
#include "core/reconciler_internal.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void qiwi_launcher_main(Datum main_arg);

/* Register the launcher, which the postmaster restarts (from reconciler_init, in _PG_init) */
void
launcher_register(void)
{
	BackgroundWorker worker;

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

/*
 * Is somebody holding or waiting for an exclusive lock on the database
 * (DROP DATABASE, ALTER DATABASE ... RENAME or SET TABLESPACE)?  Must be
 * called outside a transaction.
 */
bool
launcher_database_wanted(Oid dboid)
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

/*
 * Start a worker of this library (main: its function; what: "reconciler",
 * "requester"), never restarted by the postmaster, that tells this process
 * when it ends; NULL if no worker slot is free
 */
BackgroundWorkerHandle *
launcher_start_worker(const char *main, const char *what, Datum main_arg)
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

/* How long a database found without the extension is left alone (unless CREATE EXTENSION) */
#define NO_EXTENSION_RECHECK_MS (5 * 60 * 1000)

/* A database reconcilers may serve, as pg_database has it */
typedef struct ServableDatabase
{
	Oid			oid;
	char		name[NAMEDATALEN];
} ServableDatabase;

/* What the launcher alone keeps about a slot's database */
typedef struct LauncherSlot
{
	BackgroundWorkerHandle *handle; /* its reconciler, NULL when none runs */
	TimestampTz started;
	TimestampTz next_start;		/* not started again before */
	int			quick_failures;
	bool		said_no_extension;
} LauncherSlot;

static LauncherSlot *local_slots;
static bool said_full = false;
static bool said_turns = false;
static bool said_no_slot = false;
static bool said_missing = false;

/*
 * The databases a reconciler may serve now: connectable, not a template,
 * not being dropped half-way, let through by qiwi.database.  Connected to
 * no database, the launcher can read shared catalogs only by heap scan
 * (their indexes' descriptors may need pg_class).
 */
static ServableDatabase *
servable_databases(int *n)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	int			size = 16;
	ServableDatabase *dbs = palloc(sizeof(ServableDatabase) * size);

	*n = 0;
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		if (!db->datallowconn || db->datistemplate || database_is_invalid_form(db) ||
			!reconciler_serves(NameStr(db->datname)))
			continue;
		if (*n == size)
		{
			size *= 2;
			dbs = repalloc(dbs, sizeof(ServableDatabase) * size);
		}
		dbs[*n].oid = db->oid;
		strlcpy(dbs[*n].name, NameStr(db->datname), NAMEDATALEN);
		(*n)++;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/* Say once that qiwi.database names a database that does not exist (or is a template) */
static void
say_if_missing(const ServableDatabase *dbs, int n)
{
	bool		named = qiwi_database != NULL && qiwi_database[0] != '\0' &&
		strcmp(qiwi_database, "*") != 0;

	if (!named || n > 0)
	{
		said_missing = false;
		return;
	}
	if (!said_missing)
		ereport(LOG,
				(errmsg("qiwi_kassa reconciler is waiting for database \"%s\"", qiwi_database)));
	said_missing = true;
}

/*
 * Match the slots to the databases: free the slots of databases gone (or
 * filtered out) whose reconciler has ended, take a slot for each new one
 */
static void
match_slots(const ServableDatabase *dbs, int n, TimestampTz now)
{
	bool		full = false;

	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < reconciler_shared->nslots; i++)
	{
		ReconcilerSlot *slot = &reconciler_shared->slots[i];
		bool		listed = false;

		for (int d = 0; d < n && !listed; d++)
		{
			listed = dbs[d].oid == slot->dboid;
			if (listed)			/* renamed meanwhile? */
				strlcpy(slot->database, dbs[d].name, NAMEDATALEN);
		}
		if (!OidIsValid(slot->dboid) || listed || local_slots[i].handle != NULL || slot->pid != 0)
			continue;
		memset(slot, 0, sizeof(*slot));
		memset(&local_slots[i], 0, sizeof(local_slots[i]));
	}
	for (int d = 0; d < n; d++)
	{
		ReconcilerSlot *free_slot = NULL;
		bool		known = false;

		for (int i = 0; i < reconciler_shared->nslots && !known; i++)
		{
			known = reconciler_shared->slots[i].dboid == dbs[d].oid;
			if (free_slot == NULL && !OidIsValid(reconciler_shared->slots[i].dboid))
				free_slot = &reconciler_shared->slots[i];
		}
		if (known)
			continue;
		if (free_slot == NULL)
		{
			full = true;
			continue;
		}
		free_slot->dboid = dbs[d].oid;
		strlcpy(free_slot->database, dbs[d].name, NAMEDATALEN);
		free_slot->state = SLOT_WAITING;
		free_slot->waiting_since = now;
	}
	LWLockRelease(reconciler_shared->lock);
	if (full && !said_full)
		ereport(LOG,
				(errmsg("qiwi_kassa serves at most %d databases: some are left out",
						reconciler_shared->nslots),
				 errhint("Raise qiwi.max_databases (takes a restart), or name the database to serve in qiwi.database.")));
	said_full = full;
}

/*
 * A slot's reconciler ended: its database waits for its next turn, is left
 * alone (no extension), or, if it failed soon after starting, waits a
 * growing delay.  The caller holds the lock.
 */
static void
reconciler_ended(ReconcilerSlot *slot, LauncherSlot *local, TimestampTz now)
{
	ReconcilerExit why = slot->exit;

	slot->exit = EXIT_UNSAID;
	slot->turn_over = false;
	slot->state = SLOT_WAITING;
	slot->waiting_since = now;
	local->next_start = now;
	if (why == EXIT_NO_EXTENSION)
	{
		slot->state = SLOT_NO_EXTENSION;
		slot->checked_at = now;
		/* a database named in qiwi.database is worth a line */
		if (!local->said_no_extension && strcmp(qiwi_database, slot->database) == 0)
			ereport(LOG,
					(errmsg("qiwi_kassa reconciler is waiting for CREATE EXTENSION qiwi_kassa in database \"%s\"",
							slot->database)));
		local->said_no_extension = true;
		return;
	}
	local->said_no_extension = false;
	if (why != EXIT_UNSAID)
	{
		local->quick_failures = 0;
		return;
	}
	/* a reconciler that ends within a minute of starting is failing */
	local->quick_failures = TimestampDifferenceExceeds(local->started, now, 60000) ?
		0 : local->quick_failures + 1;
	if (local->quick_failures > 0)
		local->next_start = TimestampTzPlusMilliseconds(now,
														Min(60000L, 1000L << Min(local->quick_failures, 6)));
}

/*
 * Note the reconcilers that ended; look again at databases found without
 * the extension where CREATE EXTENSION committed or long enough ago
 */
static void
reap_reconcilers(TimestampTz now)
{
	pid_t		pid;

	for (int i = 0; i < reconciler_shared->nslots; i++)
	{
		LauncherSlot *local = &local_slots[i];

		if (local->handle == NULL || GetBackgroundWorkerPid(local->handle, &pid) != BGWH_STOPPED)
			continue;
		pfree(local->handle);
		local->handle = NULL;
		LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
		reconciler_ended(&reconciler_shared->slots[i], local, now);
		LWLockRelease(reconciler_shared->lock);
	}
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < reconciler_shared->nslots; i++)
	{
		ReconcilerSlot *slot = &reconciler_shared->slots[i];

		/* started by a launcher before this one, and ended since */
		if (slot->state == SLOT_RUNNING && local_slots[i].handle == NULL && slot->pid == 0)
			reconciler_ended(slot, &local_slots[i], now);
		if (slot->state != SLOT_NO_EXTENSION ||
			(!slot->extension_created &&
			 !TimestampDifferenceExceeds(slot->checked_at, now, NO_EXTENSION_RECHECK_MS)))
			continue;
		slot->extension_created = false;
		slot->state = SLOT_WAITING;
		slot->waiting_since = now;
	}
	LWLockRelease(reconciler_shared->lock);
}

/* The waiting slot that may start now and has waited longest; -1 if none */
static int
longest_waiting(TimestampTz now)
{
	int			best = -1;

	LWLockAcquire(reconciler_shared->lock, LW_SHARED);
	for (int i = 0; i < reconciler_shared->nslots; i++)
	{
		ReconcilerSlot *slot = &reconciler_shared->slots[i];

		if (!OidIsValid(slot->dboid) || slot->state != SLOT_WAITING ||
			local_slots[i].next_start > now)
			continue;
		if (best < 0 || slot->waiting_since < reconciler_shared->slots[best].waiting_since)
			best = i;
	}
	LWLockRelease(reconciler_shared->lock);
	return best;
}

/* Running reconcilers (or starting) */
static int
running_count(void)
{
	int			running = 0;

	LWLockAcquire(reconciler_shared->lock, LW_SHARED);
	for (int i = 0; i < reconciler_shared->nslots; i++)
		running += reconciler_shared->slots[i].state == SLOT_RUNNING;
	LWLockRelease(reconciler_shared->lock);
	return running;
}

/* Start the reconciler of slot i; false if no background worker slot is free */
static bool
start_reconciler(int i, TimestampTz now)
{
	ReconcilerSlot *slot = &reconciler_shared->slots[i];
	LauncherSlot *local = &local_slots[i];

	MemoryContext tick_context = MemoryContextSwitchTo(TopMemoryContext);

	/* the handle outlives the tick */
	local->handle = launcher_start_worker("qiwi_reconciler_main", "reconciler",
										  ObjectIdGetDatum(slot->dboid));
	MemoryContextSwitchTo(tick_context);
	local->started = now;
	if (local->handle == NULL)
	{
		/* no free worker slot: say so once, show it, try again later */
		if (!said_no_slot)
			ereport(LOG,
					(errmsg("qiwi_kassa reconciler cannot start: no background worker slot is free"),
					 errhint("Raise max_worker_processes (the launcher needs one, each reconciler one, and its requester one more, kept while the reconciler runs).")));
		said_no_slot = true;
		reconciler_publish_slot_error(slot, "no background worker slot is free: raise max_worker_processes");
		local->next_start = TimestampTzPlusMilliseconds(now, 1000);
		return false;
	}
	said_no_slot = false;
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	slot->state = SLOT_RUNNING;
	slot->turn_over = false;
	LWLockRelease(reconciler_shared->lock);
	return true;
}

/*
 * Start reconcilers for the databases that waited longest, within
 * qiwi.max_reconcilers and the free worker slots; if some still wait, ask
 * the running ones to end after their round: the databases take turns
 */
static void
start_reconcilers(TimestampTz now)
{
	int			i;
	int			waiting = 0;

	while ((i = longest_waiting(now)) >= 0 && running_count() < qiwi_max_reconcilers)
	{
		/* DROP DATABASE waits for it: never enter a database being dropped */
		if (launcher_database_wanted(reconciler_shared->slots[i].dboid))
			local_slots[i].next_start = TimestampTzPlusMilliseconds(now, 1000);
		else if (!start_reconciler(i, now))
			break;				/* no worker slot: they take turns too */
	}
	/* none waits, and the budget (lowered by a reload?) is kept */
	if (i < 0 && running_count() <= qiwi_max_reconcilers)
	{
		said_turns = false;
		return;
	}
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	for (int s = 0; s < reconciler_shared->nslots; s++)
	{
		ReconcilerSlot *slot = &reconciler_shared->slots[s];

		waiting += slot->state == SLOT_WAITING;
		if (slot->state != SLOT_RUNNING || slot->turn_over)
			continue;
		slot->turn_over = true;
		if (slot->latch != NULL)
			SetLatch(slot->latch);
	}
	LWLockRelease(reconciler_shared->lock);
	if (!said_turns && waiting > 0)
		ereport(LOG,
				(errmsg("qiwi_kassa reconcilers take turns: %d databases wait while %d run (qiwi.max_reconcilers = %d)",
						waiting, running_count(), qiwi_max_reconcilers),
				 errdetail("Each reconciler ends after its round and the database that waited longest starts next."),
				 errhint("Raise qiwi.max_reconcilers (and max_worker_processes) to serve every database at once.")));
	said_turns = waiting > 0;
}

/* Forget the launcher's latch when it exits */
static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	reconciler_shared->launcher_latch = NULL;
	LWLockRelease(reconciler_shared->lock);
}

/*
 * The launcher: keeps a reconciler running for each database that has
 * the extension, within qiwi.max_reconcilers.  A restarted launcher finds
 * the slots of the reconcilers started before it, running: it starts
 * those databases' again once they end (reap_reconcilers).
 */
void
qiwi_launcher_main(Datum main_arg)
{
	MemoryContext tick_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("qiwi_kassa launcher");

	local_slots = MemoryContextAllocZero(TopMemoryContext,
										 sizeof(LauncherSlot) * reconciler_shared->nslots);
	tick_context = AllocSetContextCreate(TopMemoryContext, "qiwi_kassa launcher",
										 ALLOCSET_DEFAULT_SIZES);
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	reconciler_shared->launcher_latch = MyLatch;
	LWLockRelease(reconciler_shared->lock);
	on_shmem_exit(launcher_detach, 0);

	for (;;)
	{
		TimestampTz now;
		ServableDatabase *dbs;
		int			n;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(tick_context);
		MemoryContextSwitchTo(tick_context);
		now = GetCurrentTimestamp();
		reap_reconcilers(now);
		dbs = servable_databases(&n);
		MemoryContextSwitchTo(tick_context);
		say_if_missing(dbs, n);
		match_slots(dbs, n, now);
		start_reconcilers(now);
		MemoryContextSwitchTo(TopMemoryContext);
	}
}
