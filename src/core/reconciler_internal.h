/*
 * reconciler_internal.h
 *		What the reconciler's files share and nothing else uses:
 *		launcher.c (starts a reconciler per database and the workers they
 *		need), reconciler_shared.c (the settings and the per-database
 *		state in shared memory), reconciler.c (the rounds), syncs.c (the
 *		APIs' per-merchant syncs), requester.c (the process that sends
 *		a round's requests) and intent.c (the sweep at the reconciler's
 *		start).
 */
#ifndef QIWI_RECONCILER_INTERNAL_H
#define QIWI_RECONCILER_INTERNAL_H

#include "core/core.h"

#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

/* Answers recorded per transaction, at least (more if more finished meanwhile) */
#define WRITE_CHUNK 100

/* How often, at most, a round in flight looks whether its database is wanted */
#define DROP_CHECK_INTERVAL_MS 500

/* ---------- launcher.c ---------- */

extern void launcher_register(void);
extern bool launcher_database_wanted(Oid dboid);
extern BackgroundWorkerHandle *launcher_start_worker(const char *main, const char *what,
													 Datum main_arg);

/* ---------- reconciler_shared.c ---------- */

/* Where a database stands with the launcher */
typedef enum ReconcilerSlotState
{
	SLOT_FREE = 0,				/* no database */
	SLOT_WAITING,				/* wants a reconciler: waits for a worker slot or its turn */
	SLOT_RUNNING,				/* its reconciler runs */
	SLOT_NO_EXTENSION			/* its reconciler found no extension there */
} ReconcilerSlotState;

/* Why a reconciler ended, as it tells the launcher before it leaves */
typedef enum ReconcilerExit
{
	EXIT_UNSAID = 0,			/* an error or a crash: the launcher backs off */
	EXIT_TURN,					/* its turn is over: others wait for a slot */
	EXIT_NO_EXTENSION,			/* the database has no qiwi_kassa */
	EXIT_LEFT					/* the database is wanted (DROP DATABASE) or filtered out */
} ReconcilerExit;

/*
 * One database's state in shared memory: the launcher's part (which
 * database, its state, whose turn it is), and what its reconciler shows to
 * qiwi_reconciler_status and qiwi_reconcilers()
 */
typedef struct ReconcilerSlot
{
	Oid			dboid;			/* InvalidOid: a free slot */
	char		database[NAMEDATALEN];
	ReconcilerSlotState state;
	TimestampTz waiting_since;	/* SLOT_WAITING: since when */
	TimestampTz checked_at;		/* SLOT_NO_EXTENSION: when found so */
	bool		has_extension;	/* its reconciler found the extension there */
	bool		turn_over;		/* end after the round in progress: others wait */
	bool		extension_created;	/* CREATE EXTENSION committed there since */
	ReconcilerExit exit;
	pid_t		pid;			/* 0 when no reconciler runs */
	Latch	   *latch;
	uint64		wakeups;		/* wakes asked for (qiwi_reconcile_now ...) */
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
} ReconcilerSlot;

/* The databases' slots (qiwi.max_databases of them) and the launcher's latch */
typedef struct ReconcilerShared
{
	LWLock	   *lock;			/* guards everything here */
	Latch	   *launcher_latch;
	int			nslots;
	ReconcilerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} ReconcilerShared;

extern ReconcilerShared *reconciler_shared;
extern int	qiwi_max_reconcilers;
extern int	reconciler_round_errors;

extern void reconciler_attach(Oid dboid);
extern const char *reconciler_database(void);
extern void reconciler_exit(ReconcilerExit why, bool has_extension) pg_attribute_noreturn();
extern void reconciler_publish_error(const char *message);
extern void reconciler_clear_error(void);
extern void reconciler_publish_slot_error(ReconcilerSlot *slot, const char *message);
extern void reconciler_publish_round(TimestampTz start, const ReconcileCounts *counts,
									 bool clear_error);
extern void reconciler_publish_refusals(bool refused);
extern void reconciler_found_extension(void);
extern uint64 reconciler_wakeups(void);
extern bool reconciler_turn_over(void);

/* ---------- reconciler.c ---------- */

extern void reconciler_refuse_merchant(const Merchant *merchant, long http_status);
extern bool reconciler_merchant_refused(const Merchant *merchant);
extern int	reconcile_kind(const ReconcileKind *kind, MemoryContext round_context, ReconcileCounts *counts,
						   bool sweeping);

/* ---------- intent.c ---------- */

extern void reconciler_sweep(const ReconcileKind *const *kinds, int nkinds, MemoryContext round_context);

/* ---------- syncs.c ---------- */

extern bool reconciler_syncs_round(MemoryContext round_context, ReconcileCounts *counts);

/* ---------- requester.c ---------- */

extern void requester_perform(const HttpRequest *requests, int n, int concurrency,
							  const HttpOptions *options, HttpResponse *responses,
							  HttpProgress progress, void *arg);

#endif							/* QIWI_RECONCILER_INTERNAL_H */
