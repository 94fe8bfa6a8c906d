/*
 * reconciler_internal.h
 *		What the reconciler's files share and nothing else uses:
 *		launcher.c (starts the reconciler and the workers it needs),
 *		reconciler.c (the rounds and the shared state), syncs.c (the APIs'
 *		per-merchant syncs), requester.c (the process that sends a round's
 *		requests) and intent.c (the sweep at the reconciler's start).
 */
#ifndef QIWI_RECONCILER_INTERNAL_H
#define QIWI_RECONCILER_INTERNAL_H

#include "core/core.h"

#include "postmaster/bgworker.h"

/* Answers recorded per transaction, at least (more if more finished meanwhile) */
#define WRITE_CHUNK 100

/* How often, at most, a round in flight looks whether its database is wanted */
#define DROP_CHECK_INTERVAL_MS 500

/* ---------- launcher.c ---------- */

extern void launcher_register(void);
extern bool launcher_database_wanted(Oid dboid);
extern BackgroundWorkerHandle *launcher_start_worker(const char *main, const char *what,
													 Datum main_arg);

/* ---------- reconciler.c ---------- */

extern void reconciler_publish_error(const char *message);
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
