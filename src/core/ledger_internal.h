/*
 * ledger_internal.h
 *		What the ledger's files share and nothing else uses: ledger_kind.c
 *		(the kinds and their plan tables), ledger_due.c (the reconciler's
 *		claims and checks, deferred checked_at), ledger_probe.c and intent.c
 *		(which names a kind to its worker by its registration number).
 */
#ifndef QIWI_LEDGER_INTERNAL_H
#define QIWI_LEDGER_INTERNAL_H

#include "core/core.h"

/* The ledger's own statements of each kind, after the API's */
enum
{
	LEDGER_PLAN_CLAIM,
	LEDGER_PLAN_CLAIM_SWEPT,
	LEDGER_PLAN_CHECKS,
	LEDGER_PLAN_COUNT_FOLLOWED,
	LEDGER_PLAN_WATERMARK,
	LEDGER_PLAN_RAISE_WATERMARK,
	LEDGER_PLAN_EVENT,
	LEDGER_PLAN_CHECKED_ONE,
	LEDGER_PLAN_CHECKED_MANY,
	LEDGER_PLAN_LOCK,
	LEDGER_PLAN_ID_LOCK,
	LEDGER_PLAN_READ,
	LEDGER_PLAN_SWEEP,			/* NULL for a kind without unknown_outcome */
	LEDGER_NPLANS
};

extern int	ledger_nkinds(void);
extern const LedgerKind *ledger_kind_at(int i);
extern TimestampTz *ledger_kind_swept(const LedgerKind *kind);
extern uint64 ledger_run_own(const LedgerKind *kind, int plan, Datum *values, const char *nulls,
							 int expected);

#endif							/* QIWI_LEDGER_INTERNAL_H */
