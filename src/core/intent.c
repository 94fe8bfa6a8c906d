/*
 * intent.c
 *		A SQL call that moves money with an operation that is not idempotent
 *		records its intent with a commit of its own before it sends: a
 *		function cannot commit its caller's transaction, so a dynamic
 *		background worker, connected to the caller's database as the
 *		session's user, runs the statement (a ledger statement of the item's
 *		kind, its values passed in a DSM segment) and commits it durably
 *		(ledger_commit_durably: on disk and acknowledged by a synchronous
 *		standby, if any) while the caller waits for it to say so (its latch
 *		set; its exit is not waited for).  The caller then locks the
 *		row (the reconciler's SKIP LOCKED claims pass it by), sends, and
 *		records the answer in its own transaction; if that rolls back, the
 *		committed intent stays for the reconciler, which asks QIWI and never
 *		sends it again.  With no free worker slot the call is refused before
 *		anything is recorded or sent.  A call whose item may be the intent
 *		of another call (a Payin capture or refund repeated with its id)
 *		first becomes the item's one sender, to its transaction's end, before
 *		it looks at the row or commits an intent of its own (ledger_lock_id).
 *
 * After a start (a crash, a promotion), the reconciler sweeps first: every
 * item of a kind with unknown_outcome rows (a transfer 'sending', or
 * 'queued' whose move to 'sending' a promoted asynchronous standby never
 * got; a Payin capture or refund 'sending') is asked about once, by its
 * id, sending nothing, before any round can send something new; a log line
 * says how many.  One QIWI still does not have at a second look once
 * qiwi.unsent_after has passed since its intent
 * (ledger_due_past_grace) is given up by its API as never sent (UNSENT).
 */
#include "core/ledger_internal.h"
#include "core/reconciler_internal.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void qiwi_intent_main(Datum main_arg);
static void rethrow_rolled_back(MemoryContext caller, ResourceOwner owner) pg_attribute_noreturn();

#define INTENT_TEXT_LEN 1024

/* One value of the statement: by value, or its bytes at offset in the segment */
typedef struct IntentValue
{
	bool		isnull;
	bool		byval;
	Datum		value;
	Size		offset;
} IntentValue;

/* What the caller asks of the worker, and what the worker did, in the DSM segment */
typedef struct IntentSegment
{
	Oid			database;
	Oid			role;
	int			kind;			/* its registration number */
	int			plan;
	int			expected;
	int			nvalues;
	int			lock_timeout_ms;	/* the caller's qiwi.timeout */
	Latch	   *caller_latch;	/* set once the outcome is written */
	Size		merchant;		/* offsets of strings in the segment */
	Size		id;
	Size		status;
	Size		source;
	/* the worker's outcome */
	bool		done;			/* it got as far as saying what happened */
	bool		durable;		/* committed on disk, and acknowledged */
	bool		wrote;
	int			sqlstate;		/* of its error; 0: none */
	char		message[INTENT_TEXT_LEN];
	char		detail[INTENT_TEXT_LEN];
	IntentValue values[FLEXIBLE_ARRAY_MEMBER];
} IntentSegment;

/* The registration number of a kind, for the worker (which registered the same, in _PG_init) */
static int
kind_number(const LedgerKind *kind)
{
	for (int i = 0; i < ledger_nkinds(); i++)
		if (ledger_kind_at(i) == kind)
			return i;
	elog(ERROR, "ledger kind of table %s is not registered", kind->table->name);
	return -1;
}

/* Copy len bytes to the segment's free space at *used; their offset */
static Size
put_bytes(IntentSegment *s, Size *used, const void *bytes, Size len)
{
	Size		offset = *used;

	memcpy((char *) s + offset, bytes, len);
	*used += MAXALIGN(len);
	return offset;
}

/*
 * A segment holding the statement's values (the bytes of those passed by
 * reference: the worker runs the same server, so they read the same) and
 * the event's strings
 */
static dsm_segment *
intent_segment(Datum *values, const char *nulls, const Oid *types, int n, const char *const strings[4])
{
	Size		size = MAXALIGN(offsetof(IntentSegment, values) + sizeof(IntentValue) * n);
	Size	   *lengths = palloc0(sizeof(Size) * n);
	bool	   *byval = palloc(sizeof(bool) * n);
	dsm_segment *seg;
	IntentSegment *s;
	Size		used;

	for (int i = 0; i < n; i++)
	{
		int16		typlen;

		get_typlenbyval(types[i], &typlen, &byval[i]);
		if (nulls[i] == 'n' || byval[i])
			continue;
		if (typlen == -1)
			values[i] = PointerGetDatum(PG_DETOAST_DATUM_PACKED(values[i]));
		lengths[i] = datumGetSize(values[i], false, typlen);
		size += MAXALIGN(lengths[i]);
	}
	for (int k = 0; k < 4; k++)
		size += MAXALIGN(strlen(strings[k]) + 1);
	seg = dsm_create(size, 0);
	s = dsm_segment_address(seg);
	memset(s, 0, offsetof(IntentSegment, values));
	used = MAXALIGN(offsetof(IntentSegment, values) + sizeof(IntentValue) * n);
	s->nvalues = n;
	for (int i = 0; i < n; i++)
	{
		s->values[i] = (IntentValue) {.isnull = nulls[i] == 'n', .byval = byval[i]};
		if (s->values[i].isnull)
			continue;
		if (byval[i])
			s->values[i].value = values[i];
		else
			s->values[i].offset = put_bytes(s, &used, DatumGetPointer(values[i]), lengths[i]);
	}
	s->merchant = put_bytes(s, &used, strings[0], strlen(strings[0]) + 1);
	s->id = put_bytes(s, &used, strings[1], strlen(strings[1]) + 1);
	s->status = put_bytes(s, &used, strings[2], strlen(strings[2]) + 1);
	s->source = put_bytes(s, &used, strings[3], strlen(strings[3]) + 1);
	return seg;
}

/*
 * Run the worker on a segment and wait until it has written its outcome
 * (not for its exit, which takes longer) or ended without; refused, before
 * anything was recorded, when no worker slot is free
 */
static void
run_worker(dsm_segment *seg, const char *what)
{
	IntentSegment *s = dsm_segment_address(seg);
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "qiwi_kassa");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "qiwi_intent_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "qiwi_kassa intent of %s", what);
	snprintf(worker.bgw_type, BGW_MAXLEN, "qiwi_kassa intent");
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not record the intent to %s: no background worker slot is free", what),
				 errdetail("The intent is committed by a worker of its own before anything is sent. Nothing was recorded or sent to QIWI."),
				 errhint("Raise max_worker_processes: each such call takes a worker for a moment.")));
	/* bgw_notify_pid: its start and its end set this latch too */
	for (;;)
	{
		pg_memory_barrier();
		if (s->done || GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	pg_memory_barrier();
	pfree(handle);
}

/*
 * Refuse, before anything is recorded, a caller whose transaction could
 * not see the intent another process commits (its snapshot is older)
 */
static void
require_fresh_snapshots(const char *what)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot %s in a REPEATABLE READ or SERIALIZABLE transaction", what),
				 errdetail("Its intent is committed apart before it is sent, and this transaction's snapshot could not see it. Nothing was recorded or sent to QIWI."),
				 errhint("Call it in a READ COMMITTED transaction, or use the function's _after_commit form where it has one.")));
}

/*
 * Commit an item's change (statement plan of kind with an answer's values,
 * as ledger_write_change takes them) in a worker of its own, durably,
 * before the caller sends anything (what: "transfer 123", for messages):
 * whether it wrote.  Its error is the caller's; an outcome not known (the
 * worker ended without saying, or its commit may not have reached the
 * synchronous standby) is an error too: the caller sends nothing.
 */
bool
intent_commit(const LedgerKind *kind, int plan, const LedgerParam *params, int n, const void *answer,
			  int expected, const char *merchant, const char *id, const char *status, const char *source,
			  const char *what)
{
	Datum	   *values = palloc(sizeof(Datum) * n);
	char	   *nulls = palloc(n + 1);
	Oid		   *types = palloc(sizeof(Oid) * n);
	const char *strings[4] = {merchant, id, status, source};
	dsm_segment *seg;
	IntentSegment *s;
	bool		wrote;

	require_fresh_snapshots(what);
	ledger_fill(params, n, answer, values, nulls);
	for (int i = 0; i < n; i++)
		types[i] = params[i].type;
	seg = intent_segment(values, nulls, types, n, strings);
	s = dsm_segment_address(seg);
	s->database = MyDatabaseId;
	s->role = GetSessionUserId();
	s->kind = kind_number(kind);
	s->plan = plan;
	s->expected = expected;
	s->lock_timeout_ms = qiwi_timeout_ms;
	s->caller_latch = MyLatch;
	run_worker(seg, what);
	if (!s->done)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not record the intent to %s: its worker ended without saying whether it did", what),
				 errdetail("Nothing was sent to QIWI. If the intent was recorded, the reconciler settles it; the server log has the worker's error.")));
	if (s->sqlstate != 0)
		ereport(ERROR,
				(errcode(s->sqlstate), errmsg("could not record the intent to %s: %s", what, s->message),
				 s->detail[0] ? errdetail("%s Nothing was sent to QIWI.", s->detail) :
				 errdetail("Nothing was sent to QIWI.")));
	if (!s->durable)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("could not record the intent to %s: the wait for the synchronous standby was cut short", what),
				 errdetail("Nothing was sent to QIWI. The intent was committed locally; the reconciler settles it.")));
	wrote = s->wrote;
	dsm_detach(seg);
	return wrote;
}

/* The worker: attach the segment, connect, run the statement, commit durably, say what happened */
void
qiwi_intent_main(Datum main_arg)
{
	dsm_segment *seg;
	IntentSegment *s;
	Datum	   *values;
	char	   *nulls;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("qiwi_kassa intent worker: the caller is gone")));
	s = dsm_segment_address(seg);
	BackgroundWorkerInitializeConnectionByOid(s->database, s->role, 0);
	pgstat_report_appname("qiwi_kassa intent");
	values = palloc(sizeof(Datum) * s->nvalues);
	nulls = palloc(s->nvalues + 1);
	for (int i = 0; i < s->nvalues; i++)
	{
		const IntentValue *v = &s->values[i];

		nulls[i] = v->isnull ? 'n' : ' ';
		values[i] = v->isnull ? (Datum) 0 : v->byval ? v->value : PointerGetDatum((char *) s + v->offset);
	}
	nulls[s->nvalues] = '\0';
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		/* a lock the caller holds (LOCK TABLE ...) would be waited for forever: it waits for us */
		(void) set_config_option("lock_timeout", psprintf("%d", s->lock_timeout_ms), PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		PushActiveSnapshot(GetTransactionSnapshot());
		s->wrote = ledger_write_values(ledger_kind_at(s->kind), s->plan, values, nulls, s->expected,
									   (char *) s + s->merchant, (char *) s + s->id, (char *) s + s->status,
									   (char *) s + s->source);
		PopActiveSnapshot();
		s->durable = ledger_commit_durably();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		s->sqlstate = edata->sqlerrcode ? edata->sqlerrcode : ERRCODE_INTERNAL_ERROR;
		strlcpy(s->message, edata->message ? edata->message : "an error without a message", INTENT_TEXT_LEN);
		strlcpy(s->detail, edata->detail ? edata->detail : "", INTENT_TEXT_LEN);
	}
	PG_END_TRY();
	pg_memory_barrier();
	s->done = true;
	SetLatch(s->caller_latch);
	dsm_detach(seg);
	proc_exit(0);
}

/* In a PG_CATCH of a subtransaction begun in caller with owner: roll it back, raise its error */
static void
rethrow_rolled_back(MemoryContext caller, ResourceOwner owner)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(caller);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
	ReThrowError(edata);
}

/*
 * Send op, the operation of an item whose intent the caller committed
 * (intent_commit), or found committed by an earlier call, in status
 * intent_status, from a SQL call in READ COMMITTED: the item's row
 * locked first, in a subtransaction, so that the reconciler leaves it to
 * the call.  True if QIWI answered (the caller records the answer in its
 * own transaction, which keeps the lock to its end: a reconciler's check
 * that claimed the row just before waits for it); false, with a WARNING
 * ending with kept, when the outcome is unknown (the row stays as the intent left it,
 * for the reconciler).  A refusal releases the row, is recorded by
 * refused(arg, error) (with intent_commit: the caller's transaction is
 * about to roll back) and raised, with the HINT hints give its code.
 */
bool
intent_send(const LedgerKind *kind, const char *merchant, const char *id, const char *intent_status,
			QiwiOperation *op, const char *const (*hints)[2], int nhints, const char *kept,
			void (*refused) (void *arg, const QiwiError *error), void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	QiwiError	error;
	bool		answered = false;
	char	   *status;
	Numeric		amount;
	char	   *currency;

	/* a repeat of an intent committed before too: QIWI's refusal would be withdrawn apart */
	require_fresh_snapshots(op->context);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		if (!ledger_lock_item(kind, merchant, id, &status, &amount, &currency) || strcmp(status, intent_status) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("could not %s: its record in %s changed before it was sent", op->context,
							kind->table->name),
					 errdetail("Nothing was sent to QIWI.")));
		answered = qiwi_exchange(op, &error);
	}
	PG_CATCH();
	{
		rethrow_rolled_back(caller, owner);
	}
	PG_END_TRY();
	if (answered || error.retry_safe || error.sqlstate == ERRCODE_QIWI_MALFORMED)
	{
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
		if (!answered)
			ereport(WARNING,
					(errcode(error.sqlstate), errmsg("%s", error.message),
					 errdetail("%s %s", error.detail ? error.detail : "", kept)));
		return answered;
	}
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(caller);
	CurrentResourceOwner = owner;
	refused(arg, &error);
	for (int i = 0; i < nhints && error.error_code; i++)
		if (strcmp(error.error_code, hints[i][0]) == 0)
			error.hint = (char *) hints[i][1];
	qiwi_raise(&error);
}

/*
 * The reconciler's sweep at its start, before its first round: each
 * kind's items sent with an outcome not known, asked about once (the API's
 * operation sees due->sweeping and sends nothing new), in one batch per
 * kind; logged with the counts
 */
void
reconciler_sweep(const ReconcileKind *const *kinds, int nkinds, MemoryContext round_context)
{
	ReconcileCounts counts = {0, 0, 0};
	int			swept = 0;
	bool		any = false;

	for (int k = 0; k < nkinds; k++)
	{
		if (kinds[k]->ledger->unknown_outcome == NULL)
			continue;
		any = true;
		swept += reconcile_kind(kinds[k], round_context, &counts, true);
	}
	if (any)
		ereport(LOG,
				(errmsg_plural("qiwi_kassa reconciler swept %d item sent with an outcome not known before sending anything new: %lld changed, %lld failed",
							   "qiwi_kassa reconciler swept %d items sent with an outcome not known before sending anything new: %lld changed, %lld failed",
							   swept, swept, (long long) counts.changed, (long long) counts.failed)));
}
