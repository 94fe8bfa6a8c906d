/*
 * reconciler_shared.c
 *		The reconciler's settings and its state in shared memory: a slot
 *		per database the launcher knows of (whose turn it is, what its
 *		reconciler did), read by qiwi_reconciler_status (this database's)
 *		and qiwi_reconcilers() (every database's).
 *
 * The launcher alone takes and frees slots and moves them between
 * waiting, running and "no extension"; a reconciler writes its own slot's
 * figures and says why it ends; a backend asks for a wake or marks that
 * CREATE EXTENSION committed in its database.  One LWLock guards them all:
 * each holder only copies a few fields.
 */
#include "core/reconciler_internal.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(qiwi_reconciler_seen_error);
PG_FUNCTION_INFO_V1(qiwi_reconciler_state);
PG_FUNCTION_INFO_V1(qiwi_reconcilers);

ReconcilerShared *reconciler_shared = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

/* This reconciler's slot and its database's name (in a reconciler only) */
static ReconcilerSlot *my_slot = NULL;
static char my_database[NAMEDATALEN];

static bool wake_registered = false;
static bool created_registered = false;

char	   *qiwi_database = NULL;
int			qiwi_reconcile_interval_s = 10;
int			qiwi_reconcile_max_interval_s = 3600;
int			qiwi_reconcile_concurrency = 16;
int			qiwi_reconcile_batch_size = 1000;
int			qiwi_unsent_after_s = SECS_PER_HOUR;
int			qiwi_max_reconcilers = 2;
static int	qiwi_max_databases = 256;

/* Errors published during the round in progress (in the reconciler) */
int			reconciler_round_errors = 0;

/* ---------- shared memory ---------- */

/* The size of the shared state */
static Size
shared_size(void)
{
	return add_size(offsetof(ReconcilerShared, slots),
					mul_size(sizeof(ReconcilerSlot), qiwi_max_databases));
}

#if PG_VERSION_NUM >= 150000
/* Ask for the shared state's memory and its lock */
static void
reconciler_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(shared_size()));
	RequestNamedLWLockTranche("qiwi_kassa reconcilers", 1);
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
	reconciler_shared = ShmemInitStruct("qiwi_kassa reconcilers", shared_size(), &found);
	if (!found)
	{
		memset(reconciler_shared, 0, shared_size());
		reconciler_shared->lock = &(GetNamedLWLockTranche("qiwi_kassa reconcilers"))->lock;
		reconciler_shared->nslots = qiwi_max_databases;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* The slot of database dboid, or NULL (the caller holds the lock) */
static ReconcilerSlot *
slot_of(Oid dboid)
{
	for (int i = 0; i < reconciler_shared->nslots; i++)
		if (reconciler_shared->slots[i].dboid == dboid)
			return &reconciler_shared->slots[i];
	return NULL;
}

/* ---------- settings ---------- */

/* Define the reconciler's settings; register the launcher and the shared state (from _PG_init) */
void
reconciler_init(void)
{
	DefineCustomStringVariable("qiwi.database",
							   "Databases whose open items (bills, invoices, ...) the reconcilers keep current: * for every database that has the extension, or one database's name.",
							   "Empty turns the reconcilers off.",
							   &qiwi_database, "*", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qiwi.max_reconcilers",
							"Reconcilers (one per database) running at once; more databases take turns.",
							"Each reconciler may start a requester too: both take a background worker slot.",
							&qiwi_max_reconcilers, 2, 1, 1024, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qiwi.max_databases",
							"Databases the launcher keeps a slot of shared memory for.",
							NULL,
							&qiwi_max_databases, 256, 1, 65536, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qiwi.reconcile_interval",
							"First wait before an open item is checked again, and between rounds.",
							"Each further check of the same item waits twice as long, up to qiwi.reconcile_max_interval.",
							&qiwi_reconcile_interval_s, 10, 1, 86400, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("qiwi.reconcile_max_interval",
							"Longest wait between two checks of an open item.",
							NULL,
							&qiwi_reconcile_max_interval_s, 3600, 1, 86400 * 7, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("qiwi.reconcile_concurrency",
							"Requests the reconciler keeps in flight at once.",
							NULL,
							&qiwi_reconcile_concurrency, 16, 1, 256, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qiwi.reconcile_batch_size",
							"Most items of each kind one reconciler round checks.",
							NULL,
							&qiwi_reconcile_batch_size, 1000, 1, 100000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("qiwi.unsent_after",
							"How long an intent whose send's outcome is unknown (a Wallet transfer, a Payin capture or refund) stays 'sending' while QIWI does not have it.",
							"Past it, the second look that finds it absent makes it UNSENT: QIWI may record it late.",
							&qiwi_unsent_after_s, SECS_PER_HOUR, 1, INT_MAX / 2, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	if (IsBinaryUpgrade)
		return;

#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = reconciler_shmem_request;
#else
	RequestAddinShmemSpace(MAXALIGN(shared_size()));
	RequestNamedLWLockTranche("qiwi_kassa reconcilers", 1);
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = reconciler_shmem_startup;

	launcher_register();
}

/* Does qiwi.database let a reconciler serve this database ("*": every one)? */
bool
reconciler_serves(const char *database)
{
	if (qiwi_database == NULL || qiwi_database[0] == '\0')
		return false;
	return strcmp(qiwi_database, "*") == 0 || strcmp(qiwi_database, database) == 0;
}

/* Is the reconciler registered in this server (not in binary-upgrade mode)? */
bool
reconciler_registered(void)
{
	return reconciler_shared != NULL;
}

/* ---------- the reconciler's own slot ---------- */

/* Clear the published state when the reconciler exits */
static void
reconciler_detach(int code, Datum arg)
{
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	my_slot->pid = 0;
	my_slot->latch = NULL;
	LWLockRelease(reconciler_shared->lock);
}

/* Take the slot the launcher gave database dboid; leave if there is none */
void
reconciler_attach(Oid dboid)
{
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	my_slot = slot_of(dboid);
	if (my_slot != NULL)
	{
		my_slot->pid = MyProcPid;
		my_slot->latch = MyLatch;
		my_slot->started_at = GetCurrentTimestamp();
		my_slot->stopped_by_auth = false;
		my_slot->exit = EXIT_UNSAID;
		strlcpy(my_database, my_slot->database, NAMEDATALEN);
	}
	LWLockRelease(reconciler_shared->lock);
	if (my_slot == NULL)
		proc_exit(0);			/* the launcher freed it meanwhile: nothing to serve */
	on_shmem_exit(reconciler_detach, 0);
}

/* The name of this reconciler's database, as the launcher found it */
const char *
reconciler_database(void)
{
	return my_database;
}

/* End the reconciler, telling the launcher why and whether the extension is there */
void
reconciler_exit(ReconcilerExit why, bool has_extension)
{
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	my_slot->exit = why;
	my_slot->has_extension = has_extension;
	LWLockRelease(reconciler_shared->lock);
	proc_exit(0);
}

/* The reconciler found the extension in its database */
void
reconciler_found_extension(void)
{
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	my_slot->has_extension = true;
	LWLockRelease(reconciler_shared->lock);
}

/* Remember an error in a slot, as now and as the latest seen (the caller holds no lock) */
void
reconciler_publish_slot_error(ReconcilerSlot *slot, const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	strlcpy(slot->last_error, message, sizeof(slot->last_error));
	slot->last_error_at = now;
	strlcpy(slot->seen_error, message, sizeof(slot->seen_error));
	slot->seen_error_at = now;
	LWLockRelease(reconciler_shared->lock);
}

/* Clear this reconciler's error now (a condition that no longer holds; seen_error stays) */
void
reconciler_clear_error(void)
{
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	my_slot->last_error[0] = '\0';
	my_slot->last_error_at = 0;
	LWLockRelease(reconciler_shared->lock);
}

/* Remember an error of this reconciler's for qiwi_reconciler_status */
void
reconciler_publish_error(const char *message)
{
	reconciler_publish_slot_error(my_slot, message);
	reconciler_round_errors++;
}

/*
 * A round that checked items ended: publish its figures, and clear
 * last_error when the round left it clean (seen_error stays)
 */
void
reconciler_publish_round(TimestampTz start, const ReconcileCounts *counts, bool clear_error)
{
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	if (clear_error)
	{
		my_slot->last_error[0] = '\0';
		my_slot->last_error_at = 0;
	}
	my_slot->rounds++;
	my_slot->last_round_start = start;
	my_slot->last_round_us = GetCurrentTimestamp() - start;
	my_slot->checked = counts->checked;
	my_slot->changed = counts->changed;
	my_slot->failed = counts->failed;
	LWLockRelease(reconciler_shared->lock);
}

/* Publish whether some merchant's key is refused */
void
reconciler_publish_refusals(bool refused)
{
	LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
	my_slot->stopped_by_auth = refused;
	LWLockRelease(reconciler_shared->lock);
}

/* How many wakes were asked for so far in this reconciler's database */
uint64
reconciler_wakeups(void)
{
	uint64		wakeups;

	LWLockAcquire(reconciler_shared->lock, LW_SHARED);
	wakeups = my_slot->wakeups;
	LWLockRelease(reconciler_shared->lock);
	return wakeups;
}

/* Has the launcher asked this reconciler to end its turn (other databases wait)? */
bool
reconciler_turn_over(void)
{
	bool		over;

	LWLockAcquire(reconciler_shared->lock, LW_SHARED);
	over = my_slot->turn_over;
	LWLockRelease(reconciler_shared->lock);
	return over;
}

/* ---------- for the backends ---------- */

/* At commit, wake this database's reconciler (set up by reconciler_wake_at_commit) */
static void
wake_at_commit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && reconciler_shared != NULL)
	{
		ReconcilerSlot *slot;

		LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
		slot = slot_of(MyDatabaseId);
		if (slot != NULL)
		{
			slot->wakeups++;
			if (slot->latch != NULL)
				SetLatch(slot->latch);
		}
		LWLockRelease(reconciler_shared->lock);
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

/* At commit of a CREATE EXTENSION, have the launcher look at this database again */
static void
created_at_commit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT)
	{
		ReconcilerSlot *slot;

		LWLockAcquire(reconciler_shared->lock, LW_EXCLUSIVE);
		slot = slot_of(MyDatabaseId);
		if (slot != NULL)
			slot->extension_created = true;
		if (reconciler_shared->launcher_latch != NULL)
			SetLatch(reconciler_shared->launcher_latch);
		LWLockRelease(reconciler_shared->lock);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		UnregisterXactCallback(created_at_commit, NULL);
		created_registered = false;
	}
}

/*
 * An extension (any: cheap to look again) is being created in this
 * database (from guard.c's object access hook): a database the launcher
 * found without qiwi_kassa gets a reconciler as soon as this commits
 */
void
reconciler_extension_created(void)
{
	if (reconciler_shared == NULL || created_registered)
		return;
	RegisterXactCallback(created_at_commit, NULL);
	created_registered = true;
}

/* ---------- the SQL functions ---------- */

/* A copy of this database's slot; a zeroed one named after it if it has none */
static void
this_database_slot(ReconcilerSlot *copy)
{
	ReconcilerSlot *slot = NULL;

	if (reconciler_shared != NULL)	/* not in binary-upgrade mode */
	{
		LWLockAcquire(reconciler_shared->lock, LW_SHARED);
		slot = slot_of(MyDatabaseId);
		if (slot != NULL)
			memcpy(copy, slot, sizeof(*copy));
		LWLockRelease(reconciler_shared->lock);
	}
	if (slot == NULL)
	{
		memset(copy, 0, sizeof(*copy));
		strlcpy(copy->database, get_database_name(MyDatabaseId), NAMEDATALEN);
	}
}

/*
 * qiwi_reconciler_seen_error(): this database's reconciler's latest error
 * and when it happened, kept after the rounds that cleared last_error
 */
Datum
qiwi_reconciler_seen_error(PG_FUNCTION_ARGS)
{
	TupleDesc	desc = arg_result_desc(fcinfo, 2, "a row of 2 columns");
	Datum		values[2];
	bool		nulls[2] = {false, false};
	ReconcilerSlot s;

	this_database_slot(&s);
	values[0] = CStringGetTextDatum(s.seen_error);
	nulls[0] = s.seen_error[0] == '\0';
	values[1] = TimestampTzGetDatum(s.seen_error_at);
	nulls[1] = s.seen_error_at == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* A duration in microseconds as an interval */
static Datum
interval_of_us(int64 us)
{
	return DirectFunctionCall7(make_interval, Int32GetDatum(0), Int32GetDatum(0),
							   Int32GetDatum(0), Int32GetDatum(0), Int32GetDatum(0),
							   Int32GetDatum(0), Float8GetDatum(us / 1e6));
}

/* qiwi_reconciler_state(): what this database's reconciler is doing (qiwi_reconciler_status) */
Datum
qiwi_reconciler_state(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = arg_result_desc(fcinfo, 13, "a row of 13 columns");
	Datum		values[13];
	bool		nulls[13];
	ReconcilerSlot s;

	this_database_slot(&s);
	memset(nulls, false, sizeof(nulls));
	values[0] = BoolGetDatum(s.pid != 0);
	values[1] = Int32GetDatum(s.pid);
	nulls[1] = s.pid == 0;
	values[2] = CStringGetTextDatum(s.database);
	values[3] = TimestampTzGetDatum(s.started_at);
	nulls[3] = s.started_at == 0;
	values[4] = Int64GetDatum(s.rounds);
	values[5] = TimestampTzGetDatum(s.last_round_start);
	nulls[5] = s.last_round_start == 0;
	values[6] = interval_of_us(s.last_round_us);
	nulls[6] = s.last_round_start == 0;
	values[7] = Int64GetDatum(s.checked);
	values[8] = Int64GetDatum(s.changed);
	values[9] = Int64GetDatum(s.failed);
	values[10] = BoolGetDatum(s.stopped_by_auth);
	values[11] = CStringGetTextDatum(s.last_error);
	nulls[11] = s.last_error[0] == '\0';
	values[12] = TimestampTzGetDatum(s.last_error_at);
	nulls[12] = s.last_error_at == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* What a slot's state is called in qiwi_reconcilers() */
static const char *
slot_state_name(const ReconcilerSlot *s)
{
	if (s->pid != 0)
		return "running";
	if (s->state == SLOT_RUNNING)
		return "starting";
	if (s->state == SLOT_WAITING)
		return "waiting for a slot";
	return "stopped";
}

/* The columns of qiwi_reconcilers() for one slot */
static void
reconcilers_row(const ReconcilerSlot *s, Datum *values, bool *nulls)
{
	memset(nulls, false, sizeof(bool) * 11);
	values[0] = CStringGetTextDatum(s->database);
	values[1] = CStringGetTextDatum(slot_state_name(s));
	values[2] = Int32GetDatum(s->pid);
	nulls[2] = s->pid == 0;
	values[3] = TimestampTzGetDatum(s->waiting_since);
	nulls[3] = s->pid != 0 || s->state != SLOT_WAITING;
	values[4] = TimestampTzGetDatum(s->started_at);
	nulls[4] = s->pid == 0;
	values[5] = Int64GetDatum(s->rounds);
	values[6] = TimestampTzGetDatum(s->last_round_start);
	nulls[6] = s->last_round_start == 0;
	values[7] = interval_of_us(s->last_round_us);
	nulls[7] = s->last_round_start == 0;
	values[8] = Int64GetDatum(s->checked);
	values[9] = Int64GetDatum(s->failed);
	values[10] = CStringGetTextDatum(s->last_error);
	nulls[10] = s->last_error[0] == '\0';
}

/*
 * qiwi_reconcilers(): one row per database of the cluster where a
 * reconciler found the extension (as the launcher knows them)
 */
Datum
qiwi_reconcilers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n = reconciler_shared == NULL ? 0 : reconciler_shared->nslots;
	ReconcilerSlot *copy = palloc(sizeof(ReconcilerSlot) * Max(n, 1));

	InitMaterializedSRF(fcinfo, 0);
	if (n > 0)
	{
		LWLockAcquire(reconciler_shared->lock, LW_SHARED);
		memcpy(copy, reconciler_shared->slots, sizeof(ReconcilerSlot) * n);
		LWLockRelease(reconciler_shared->lock);
	}
	for (int i = 0; i < n; i++)
	{
		Datum		values[11];
		bool		nulls[11];

		if (!OidIsValid(copy[i].dboid) || !copy[i].has_extension)
			continue;
		reconcilers_row(&copy[i], values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
