/*
 * ratelimit.c
 *		A request-rate limiter in shared memory, for the APIs whose accounts
 *		QIWI blocks when they send too much (the Wallet API: 100 requests a
 *		minute per wallet, then 423 for 5 minutes).  Every backend and
 *		worker passes it before sending a request of a limited account, so
 *		that QIWI never sees more than the API's limit in any window.
 *
 *		An account's state is the times of its last `requests` passes (a
 *		sliding log): a pass is let through when the oldest of them is a
 *		window old, else it waits on its latch until then.  Nothing is held
 *		while waiting, so a backend that is cancelled or exits leaves
 *		nothing behind; a pass counts whether or not its request then
 *		reaches QIWI.  Times are CLOCK_MONOTONIC, shared by all processes,
 *		so a step of the wall clock neither blocks nor frees an account.
 *		An operation of an API that declares no limit takes no lock.
 *
 *		When QIWI blocks an account anyway (its 423, with when the block
 *		ends), the account is marked blocked until then: every pass of it,
 *		from any process, waits for the block's end, or a SQL call whose
 *		deadline comes first fails at once with QK423.
 */
#include "core/core.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* Longest limit name and account a key holds, with their NUL */
#define RATE_NAME_LEN		32
#define RATE_ACCOUNT_LEN	64
#define RATE_TRANCHE		"qiwi_kassa rate limiter"

static int	qiwi_rate_limit_accounts = 256;

/* What a limit counts: one account of one limit, zero-padded (a blob key) */
typedef struct RateKey
{
	char		name[RATE_NAME_LEN];
	char		account[RATE_ACCOUNT_LEN];
} RateKey;

/* An account's last passes, oldest first from `head`, a ring of `requests` */
typedef struct RateEntry
{
	RateKey		key;
	int			requests;		/* of the limit it counts for */
	int64		window_us;
	int			count;			/* passes recorded, at most requests */
	int			head;			/* the oldest of them */
	int64		blocked_until;	/* QIWI's block ends (CLOCK_MONOTONIC, µs); 0: none */
	int64		passes[QIWI_RATE_MAX_REQUESTS];	/* CLOCK_MONOTONIC, µs */
} RateEntry;

/* What a try to pass found, told after the lock is released */
typedef enum RateOutcome
{
	RATE_PASSED,
	RATE_WAIT,					/* the account's next turn is in *wait_us */
	RATE_BLOCKED,				/* QIWI blocks the account for *wait_us */
	RATE_TABLE_FULL,
	RATE_LIMIT_CHANGED			/* the name counts for another limit */
} RateOutcome;

static LWLock *rate_lock = NULL;
static HTAB *rate_table = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* ---------- shared memory ---------- */

/* Shared memory the table of qiwi.rate_limit_accounts accounts takes */
static Size
rate_shmem_size(void)
{
	return hash_estimate_size(qiwi_rate_limit_accounts, sizeof(RateEntry));
}

/* Ask for the table's memory and its lock (before shared memory is made) */
static void
rate_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(rate_shmem_size());
	RequestNamedLWLockTranche(RATE_TRANCHE, 1);
}

/* Make or find the shared table (in the postmaster, and in each EXEC_BACKEND child) */
static void
rate_shmem_startup(void)
{
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	info.keysize = sizeof(RateKey);
	info.entrysize = sizeof(RateEntry);
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rate_table = ShmemInitHash("qiwi_kassa rate limits", qiwi_rate_limit_accounts,
							   qiwi_rate_limit_accounts, &info, HASH_ELEM | HASH_BLOBS);
	rate_lock = &(GetNamedLWLockTranche(RATE_TRANCHE))->lock;
	LWLockRelease(AddinShmemInitLock);
}

/* Define qiwi.rate_limit_accounts and hook the table into shared memory (from _PG_init) */
void
ratelimit_init(void)
{
	DefineCustomIntVariable("qiwi.rate_limit_accounts",
							"Accounts of rate-limited QIWI APIs counted at once.",
							"An account is counted while it sent a request in its limit's window; a call for one more fails.",
							&qiwi_rate_limit_accounts,
							256, 1, 100000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	/* loaded later (binary upgrade only), it has no table: qiwi_rate_pass says so */
	if (!process_shared_preload_libraries_in_progress)
		return;
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = rate_shmem_request;
#else
	rate_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = rate_shmem_startup;
}

/* ---------- passing ---------- */

/* Now, on the limiter's clock: CLOCK_MONOTONIC, in microseconds */
static int64
rate_now(void)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	return (int64) INSTR_TIME_GET_MICROSEC(now);
}

/* The key of a limit's account; errors (with no lock held) for what cannot be one */
static void
rate_key(const QiwiRateLimit *limit, const char *account, RateKey *key)
{
	if (rate_table == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the rate limiter of qiwi_kassa has no shared memory"),
				 errhint("Add qiwi_kassa to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (limit->requests < 1 || limit->requests > QIWI_RATE_MAX_REQUESTS ||
		limit->window_ms < 1 || strlen(limit->name) >= RATE_NAME_LEN)
		elog(ERROR, "invalid rate limit \"%s\": %d requests per %d ms", limit->name,
			 limit->requests, limit->window_ms);
	if (account == NULL || strlen(account) >= RATE_ACCOUNT_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("account of the %s rate limit is longer than %d bytes",
						limit->name, RATE_ACCOUNT_LEN - 1)));
	memset(key, 0, sizeof(*key));
	strcpy(key->name, limit->name);
	strcpy(key->account, account);
}

/* Whether an account's passes are all a window old: it may be forgotten */
static bool
rate_entry_idle(const RateEntry *entry, int64 now)
{
	int			newest;

	if (entry->blocked_until > now)
		return false;
	if (entry->count == 0)
		return true;
	newest = (entry->head + entry->count - 1) % entry->requests;
	return entry->passes[newest] + entry->window_us <= now;
}

/*
 * The entry of key, made for limit if it has none; when the table is full,
 * an idle account's entry is forgotten first.  NULL if none is idle.
 * Under the lock, exclusive.
 */
static RateEntry *
rate_entry(const RateKey *key, const QiwiRateLimit *limit, int64 now)
{
	RateEntry  *entry = hash_search(rate_table, key, HASH_FIND, NULL);
	bool		found;

	if (entry != NULL)
		return entry;
	if (hash_get_num_entries(rate_table) >= qiwi_rate_limit_accounts)
	{
		HASH_SEQ_STATUS scan;
		RateEntry  *idle;

		hash_seq_init(&scan, rate_table);
		while ((idle = hash_seq_search(&scan)) != NULL && !rate_entry_idle(idle, now))
			;
		if (idle == NULL)
			return NULL;
		hash_seq_term(&scan);
		hash_search(rate_table, &idle->key, HASH_REMOVE, NULL);
	}
	entry = hash_search(rate_table, key, HASH_ENTER_NULL, &found);
	if (entry == NULL)
		return NULL;
	entry->requests = limit->requests;
	entry->window_us = (int64) limit->window_ms * 1000;
	entry->count = 0;
	entry->head = 0;
	entry->blocked_until = 0;
	return entry;
}

/*
 * Take a pass for key at now if its limit lets one through, else say when
 * it will (*wait_us).  Under the lock, exclusive.
 */
static RateOutcome
rate_take(const RateKey *key, const QiwiRateLimit *limit, int64 now, int64 *wait_us)
{
	RateEntry  *entry = rate_entry(key, limit, now);

	if (entry == NULL)
		return RATE_TABLE_FULL;
	if (entry->requests != limit->requests || entry->window_us != (int64) limit->window_ms * 1000)
		return RATE_LIMIT_CHANGED;
	*wait_us = entry->blocked_until - now;
	if (*wait_us > 0)
		return RATE_BLOCKED;
	if (entry->count < entry->requests)
	{
		entry->passes[(entry->head + entry->count) % entry->requests] = now;
		entry->count++;
		return RATE_PASSED;
	}
	*wait_us = entry->passes[entry->head] + entry->window_us - now;
	if (*wait_us > 0)
		return RATE_WAIT;
	entry->passes[entry->head] = now;
	entry->head = (entry->head + 1) % entry->requests;
	return RATE_PASSED;
}

/* Raise what a try found that is neither a pass nor a wait */
static void
rate_refuse(RateOutcome outcome, const QiwiRateLimit *limit)
{
	if (outcome == RATE_TABLE_FULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many accounts of rate-limited QIWI APIs at once"),
				 errdetail("All %d accounts the rate limiter counts sent a request within their limit's window; nothing was sent.",
						   qiwi_rate_limit_accounts),
				 errhint("Raise qiwi.rate_limit_accounts (it takes effect at server start), or repeat the call later.")));
	if (outcome == RATE_LIMIT_CHANGED)
		elog(ERROR, "rate limit \"%s\" is declared with different values", limit->name);
}

/* Sleep on the latch for wait_us at most, interruptibly */
static void
rate_sleep(int64 wait_us)
{
	long		wait_ms = (long) Max((wait_us + 999) / 1000, 1);

	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms,
					 PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Refuse, before waiting wait_us, a wait after which a SQL call that began
 * at call_start would have less than QIWI_RATE_MIN_ATTEMPT_MS left before
 * qiwi.call_deadline or statement_timeout (counted from the statement's
 * start).  The error is QK429: nothing was sent, and the call may succeed
 * later, as after QIWI's own 429; QK423, saying when it ends, if the wait
 * is for QIWI's block.
 */
static void
rate_check_deadline(const QiwiRateLimit *limit, const char *account, int64 wait_us,
					TimestampTz call_start, bool blocked)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz turn = now + wait_us + (int64) QIWI_RATE_MIN_ATTEMPT_MS * 1000;
	TimestampTz deadline = TimestampTzPlusMilliseconds(call_start, qiwi_call_deadline_ms);
	TimestampTz statement_end = TimestampTzPlusMilliseconds(GetCurrentStatementStartTimestamp(),
															StatementTimeout);
	const char *setting = "qiwi.call_deadline";

	if (StatementTimeout > 0 && statement_end < deadline)
	{
		deadline = statement_end;
		setting = "statement_timeout";
	}
	if (turn <= deadline)
		return;
	if (blocked)
		ereport(ERROR,
				(errcode(ERRCODE_QIWI_BLOCKED),
				 errmsg("QIWI blocks %s account \"%s\" until %s", limit->name, account,
						timestamptz_to_str(now + wait_us)),
				 errdetail("QIWI answered 423: every request of the account waits for the block to end, and %s ends this call in %ld ms. The request was not sent.",
						   setting, (long) Max((deadline - now) / 1000, 0)),
				 errhint("Repeat the call after %s.", timestamptz_to_str(now + wait_us))));
	ereport(ERROR,
			(errcode(ERRCODE_QIWI_RATE_LIMIT),
			 errmsg("the %s rate limit of account \"%s\" leaves this call no time before %s",
					limit->name, account, setting),
			 errdetail_plural("At most %d request per %d ms is sent for an account; its next may go in %ld ms, and %s ends the call in %ld ms. The request was not sent.",
							  "At most %d requests per %d ms are sent for an account; its next may go in %ld ms, and %s ends the call in %ld ms. The request was not sent.",
							  limit->requests,
							  limit->requests, limit->window_ms, (long) ((wait_us + 999) / 1000),
							  setting, (long) Max((deadline - now) / 1000, 0)),
			 errhint("Repeat the call later, or give it more time with %s.", setting)));
}

/*
 * Pass limit for account before sending it a request: let through at once
 * if the account sent fewer than limit->requests in the last window, else
 * after waiting (on the latch, interruptibly) for the oldest of them to be
 * a window old.  limit NULL: the API has no limit, and this costs nothing.
 * call_start is when a SQL call began, whose qiwi.call_deadline and
 * statement_timeout the wait may not outlast (QK429 up front when it
 * would); 0 for a wait bound by neither (the reconciler's rounds).  A
 * cancel ends the wait with 57014.  Returns when the pass was taken, on the
 * limiter's clock (µs of CLOCK_MONOTONIC), for tests.
 */
int64
qiwi_rate_pass(const QiwiRateLimit *limit, const char *account, TimestampTz call_start)
{
	RateKey		key;

	if (limit == NULL)
		return 0;
	rate_key(limit, account, &key);
	for (;;)
	{
		int64		now;
		int64		wait_us = 0;
		RateOutcome outcome;

		LWLockAcquire(rate_lock, LW_EXCLUSIVE);
		now = rate_now();
		outcome = rate_take(&key, limit, now, &wait_us);
		LWLockRelease(rate_lock);
		if (outcome == RATE_PASSED)
			return now;
		rate_refuse(outcome, limit);
		if (call_start != 0)
			rate_check_deadline(limit, account, wait_us, call_start, outcome == RATE_BLOCKED);
		rate_sleep(wait_us);
	}
}

/*
 * Mark account blocked by QIWI until `until` (a QK423's blocked_until), for
 * every process: its passes wait until then.  An account the full table
 * has no room for is not marked; its passes are counted as before.
 */
void
qiwi_rate_block(const QiwiRateLimit *limit, const char *account, TimestampTz until)
{
	RateKey		key;
	RateEntry  *entry;
	int64		now;

	rate_key(limit, account, &key);
	LWLockAcquire(rate_lock, LW_EXCLUSIVE);
	now = rate_now();
	entry = rate_entry(&key, limit, now);
	if (entry != NULL)
		entry->blocked_until = Max(entry->blocked_until,
								   now + (until - GetCurrentTimestamp()));
	LWLockRelease(rate_lock);
}

/* ---------- batches ---------- */

/* A batch sent in runs: its progress, told of each run's requests by their index in the batch */
typedef struct RateRuns
{
	HttpProgress progress;
	void	   *arg;
	int			offset;			/* of the run being sent */
	int		   *finished;		/* a run's finished requests, shifted */
	bool		go_on;
} RateRuns;

/* Tell the batch's progress of a run's finished requests (an HttpProgress) */
static bool
rate_run_progress(void *arg, const int *finished, int nfinished)
{
	RateRuns   *runs = (RateRuns *) arg;

	for (int i = 0; i < nfinished; i++)
		runs->finished[i] = finished[i] + runs->offset;
	if (runs->progress != NULL)
		runs->go_on = runs->progress(runs->arg, runs->finished, nfinished) && runs->go_on;
	return runs->go_on;
}

/*
 * How many of the n operations from ops on go out now, at most max: passes
 * taken for their limited ones, up to the first that would wait; 0, with
 * *wait_us, if the first would.
 */
static int
rate_take_run(const QiwiOperation *ops, int n, int max, int64 *wait_us)
{
	int			len = Min(n, max);
	RateKey    *keys = palloc(sizeof(RateKey) * len);
	bool		limited = false;
	int64		now;

	for (int i = 0; i < len; i++)
		if (ops[i].rate_limit != NULL)
		{
			rate_key(ops[i].rate_limit, ops[i].rate_account, &keys[i]);
			limited = true;
		}
	if (!limited)
	{
		pfree(keys);
		return len;
	}
	LWLockAcquire(rate_lock, LW_EXCLUSIVE);
	now = rate_now();
	for (int i = 0; i < len; i++)
	{
		RateOutcome outcome;

		if (ops[i].rate_limit == NULL)
			continue;
		outcome = rate_take(&keys[i], ops[i].rate_limit, now, wait_us);
		if (outcome == RATE_PASSED)
			continue;
		LWLockRelease(rate_lock);
		rate_refuse(outcome, ops[i].rate_limit);
		pfree(keys);
		return i;
	}
	LWLockRelease(rate_lock);
	pfree(keys);
	return len;
}

/*
 * Send a batch through perform, passing the limits of its operations: the
 * requests go out in runs of at most `concurrency`, each sent as soon as its
 * passes are taken, so that a pass is never counted long before its request
 * leaves.  A batch with no limited operation is one run, with no lock
 * taken.  Waits are bound by no deadline; progress is asked whether to go
 * on after each (nothing finished), and the requests not sent when it says
 * no are abandoned, as a performer abandons them.
 */
void
qiwi_rate_perform(const QiwiOperation *ops, const HttpRequest *requests, int n, int concurrency,
				  const HttpOptions *options, HttpResponse *responses,
				  HttpBatchPerformer perform, HttpProgress progress, void *arg)
{
	RateRuns	runs = {progress, arg, 0, NULL, true};
	int			start = 0;
	bool		limited = false;

	for (int i = 0; i < n && !limited; i++)
		limited = ops[i].rate_limit != NULL;
	if (!limited)
	{
		perform(requests, n, concurrency, options, responses, progress, arg);
		return;
	}
	runs.finished = palloc(sizeof(int) * n);
	while (start < n && runs.go_on)
	{
		int64		wait_us = 0;
		int			len = rate_take_run(ops + start, n - start, Max(concurrency, 1), &wait_us);

		if (len == 0)
		{
			rate_sleep(wait_us);
			(void) rate_run_progress(&runs, NULL, 0);
			continue;
		}
		runs.offset = start;
		perform(requests + start, len, concurrency, options, responses + start,
				rate_run_progress, &runs);
		start += len;
	}
	for (int i = start; i < n; i++)
	{
		memset(&responses[i], 0, sizeof(HttpResponse));
		responses[i].failure = HTTP_FAIL_ABANDONED;
		responses[i].error = pstrdup("abandoned");
		runs.finished[i - start] = i;
	}
	if (start < n && progress != NULL)
		(void) progress(arg, runs.finished, n - start);
	pfree(runs.finished);
}
