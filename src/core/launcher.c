/*
 * launcher.c
 *		The reconciler's launcher: a background worker, connected to no
 *		database, that starts the reconciler for qiwi.database as a dynamic
 *		worker and starts it again when it ends; and the worker slots the
 *		reconciler and its requester are started in.
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
	if (OidIsValid(dboid) && launcher_database_wanted(dboid))
		return InvalidOid;
	return dboid;
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

/* Start the reconciler for a database (the launcher restarts it); NULL if no slot is free */
static BackgroundWorkerHandle *
start_reconciler(Oid dboid)
{
	return launcher_start_worker("qiwi_reconciler_main", "reconciler", ObjectIdGetDatum(dboid));
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
			reconciler_publish_error("no background worker slot is free: raise max_worker_processes");
			stopped = now;
		}
		else
			said_no_slot = false;
	}
}

