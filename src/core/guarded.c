/*
 * guarded.c
 *		Work run in a subtransaction whose errors of some kinds are a
 *		problem to report, not an error: an answer's reader (a hostile
 *		value PostgreSQL's input routines refuse), a notification's apply
 *		step, and the reconciler's recording of its answers.  An error of the moment (a cancel, a deadlock, a lock timeout)
 *		always goes on up, so that the work is done again.
 */
#include "core/core.h"

#include "access/xact.h"
#include "utils/resowner.h"

/*
 * Is this an error of the moment, that says nothing of what was being done
 * (a cancel, a deadlock, a serialization failure, a lock timeout, out of
 * memory), so that the same work may succeed when done again?
 */
static bool
error_of_the_moment(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_TRANSACTION_ROLLBACK ||
		category == ERRCODE_INSUFFICIENT_RESOURCES ||
		category == ERRCODE_OPERATOR_INTERVENTION ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/*
 * Run fn(arg, problem) in a subtransaction and say whether it succeeded.
 * An error it raises that `which` allows is one more *problem (its
 * message), and the caller's transaction, a background worker's included,
 * goes on; any other error (a cancel, out of memory) goes on up.
 */
bool
qiwi_guarded(GuardedFn fn, void *arg, GuardedErrors which, char **problem)
{
	MemoryContext caller_context = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	volatile bool ok = false;

	BeginInternalSubTransaction(NULL);
	/* what fn makes outlives the subtransaction */
	MemoryContextSwitchTo(caller_context);
	PG_TRY();
	{
		ok = fn(arg, problem);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			category;

		MemoryContextSwitchTo(caller_context);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller_context);
		CurrentResourceOwner = caller_owner;
		category = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
		if (which == GUARD_DATA_ERRORS ?
			(category != ERRCODE_DATA_EXCEPTION && category != ERRCODE_PROGRAM_LIMIT_EXCEEDED) :
			error_of_the_moment(edata->sqlerrcode))
			ReThrowError(edata);
		*problem = edata->message;
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller_context);
	CurrentResourceOwner = caller_owner;
	return ok;
}
