/*
 * wallet_sync.c
 *		qiwi_wallet_payments kept by the worker: in its rounds, each merchant
 *		with a wallet number and a token has its history read newest first,
 *		from where the last whole read ended less an overlap (and from its
 *		oldest WAITING payment, if older) to the time the read began, and
 *		each payment upserted forward only.  A merchant's progress is a row
 *		of qiwi_wallet_sync (shown by qiwi_wallet_sync_status); a read too
 *		long for one round goes on in the next from the oldest payment
 *		read.  A 423 stops the merchant's sync until the block ends; a
 *		refused token, until its options change (the core's rule); a token
 *		near its expiry is said in the log once a day.
 */
#include "core/core.h"
#include "wallet/wallet.h"

#include "access/xact.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/*
 * The overlap: a read starts an hour before the last whole read ended.
 * QIWI dates a payment when it was made, and it may reach the history
 * later (a payment in processing, a clock apart from ours); payments of
 * the same second may straddle a page's or a window's edge.  An hour
 * covers both and costs a page or so: upserting a payment again writes
 * nothing.
 */
#define SYNC_OVERLAP_SECS	3600

/* Settings: how often a merchant's history is read; how far back the first read goes */
static int	wallet_sync_interval_s = 60;
static int	wallet_sync_days = 365;

/* A payment's upsert: $1..$16, the columns of qiwi_wallet_payments in their order */
#define PAYMENT_NARGS 16
static const Oid payment_types[PAYMENT_NARGS] = {
	TEXTOID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, NUMERICOID, TEXTOID,
	NUMERICOID, NUMERICOID, INT4OID, TEXTOID, TEXTOID, INT4OID, TEXTOID, JSONBOID
};

/*
 * Forward only: a WAITING row takes whatever QIWI says now; a final one
 * (SUCCESS, ERROR) only the same status again, with the item's news.  An
 * answer equal to the row writes nothing.
 */
static const char *const upsert_sql =
"INSERT INTO %1$s.qiwi_wallet_payments AS p (merchant, txn_id, type, trm_txn_id, date, status, amount,"
" currency, commission, total, provider, account, comment, error_code, error, item, source) VALUES"
" ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'reconciler') ON CONFLICT"
" (merchant, txn_id, type) DO UPDATE SET (trm_txn_id, date, status, amount, currency, commission, total,"
" provider, account, comment, error_code, error, item, source, checked_at) = (SELECT $4, $5, $6, $7, $8,"
" $9, $10, $11, $12, $13, $14, $15, $16, 'reconciler', clock_timestamp())"
" WHERE p.status IN ('WAITING', EXCLUDED.status) AND (p.status, p.item) IS DISTINCT FROM ($6, $16)";

/*
 * A merchant's row ($1), and a new read from $2 (now) when none goes on,
 * none is due before $2 - $5 (the interval) and no block holds: since the
 * last whole read less $3 (the overlap), or $4 (the first read's days),
 * or the oldest WAITING payment
 */
static const char *const begin_sql[] = {
	"INSERT INTO %1$s.qiwi_wallet_sync (merchant) VALUES ($1) ON CONFLICT (merchant) DO NOTHING",
	"UPDATE %1$s.qiwi_wallet_sync s SET (pass_started_at, pass_until, pass_items, pass_failed) ="
	" ($2, $2, 0, 0), pass_since = LEAST(COALESCE(s.synced_until - $3, $2 - $4), (SELECT min(p.date)"
	" FROM %1$s.qiwi_wallet_payments p WHERE p.merchant = s.merchant AND p.status = 'WAITING'))"
	" WHERE s.merchant = $1 AND s.pass_until IS NULL AND (s.last_sync_at IS NULL OR s.last_sync_at + $5 <= $2)"
	" AND (s.blocked_until IS NULL OR s.blocked_until <= $2)",
	"SELECT pass_since, pass_until FROM %1$s.qiwi_wallet_sync WHERE merchant = $1"
	" AND pass_until IS NOT NULL AND (blocked_until IS NULL OR blocked_until <= $2)"
};

/*
 * A read's end ($1 merchant, $2 now): $3 whole (it reached its start),
 * $4 payments read, $5 not recorded, $6 where to go on, $7 error, $8 block
 */
static const char *const end_sql =
"UPDATE %1$s.qiwi_wallet_sync SET (synced_until, last_sync_at, pass_started_at, pass_since, pass_until) ="
" (SELECT pass_started_at, $2, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz WHERE $3 UNION ALL"
" SELECT synced_until, last_sync_at, pass_started_at, pass_since, COALESCE($6, pass_until) WHERE NOT $3),"
" (pass_items, pass_failed, blocked_until) = (pass_items + $4, pass_failed + $5, $8),"
" (last_error, last_error_at) = (SELECT $7, $2 WHERE $7 IS NOT NULL UNION ALL"
" SELECT NULL, NULL WHERE $7 IS NULL AND $3 AND pass_failed + $5 = 0 UNION ALL"
" SELECT last_error, last_error_at WHERE $7 IS NULL AND NOT ($3 AND pass_failed + $5 = 0))"
" WHERE merchant = $1";

static const char *const warned_sql =
"UPDATE %1$s.qiwi_wallet_sync SET token_warned_on = current_date WHERE merchant = $1"
" AND token_warned_on IS DISTINCT FROM current_date";

/* A payment read, waiting in the buffer to be upserted */
typedef struct BufferedPayment
{
	Datum		values[PAYMENT_NARGS];
	char		nulls[PAYMENT_NARGS + 1];
} BufferedPayment;

/* One round's read of one merchant's history */
typedef struct SyncRead
{
	const Merchant *merchant;
	TimestampTz since;
	TimestampTz until;
	int64		budget;			/* payments this round may read */
	int64		read;
	int64		failed;			/* payments that could not be recorded */
	TimestampTz reached;		/* the date of the oldest payment read; 0: none */
	bool		stopped;		/* the budget was spent, or the database is wanted */
	char	   *item_error;		/* the last payment's failure, or NULL */
	bool		ok;				/* the read ended without error */
	QiwiError	error;			/* else why */
	MemoryContext round_context;	/* the buffer's parent */
	MemoryContext buffer_context;
	BufferedPayment buffer[WALLET_MAX_ROWS];
	int			nbuffered;
	ReconcileCounts *counts;
} SyncRead;

/* The options a merchant's sync needs: its wallet number and token (set by wallet_sync_init) */
static int	wallet_sync_options[2];

/*
 * Run one of this file's statements as the extension's owner, its schema
 * in %1$s; the first row's first columns into row (by-value types), if
 * given.  Returns how many rows it processed.
 */
static int
run_sql(const char *sql, int nargs, const Oid *types, Datum *values, const char *nulls,
		int expected, Datum *row, int ncolumns)
{
	OwnerContext ctx;
	int			rc;
	bool		isnull;

	ledger_begin(&ctx);
	rc = SPI_execute_with_args(psprintf(sql, quote_identifier(get_namespace_name(ctx.schema))),
							   nargs, (Oid *) types, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "recording the wallet's sync failed: %s", SPI_result_code_string(rc));
	rc = (int) SPI_processed;
	for (int c = 0; rc > 0 && c < ncolumns; c++)
		row[c] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, c + 1, &isnull);
	ledger_end(&ctx);
	return rc;
}

/* The interval of so many seconds, as a Datum */
static Datum
seconds_interval(int64 seconds)
{
	Interval   *interval = palloc0(sizeof(Interval));

	interval->time = seconds * USECS_PER_SEC;
	return IntervalPGetDatum(interval);
}

/* Log, once a day, that merchant's token expires within WALLET_TOKEN_WARN_DAYS (in a transaction) */
static void
warn_token_expiry(const Merchant *merchant)
{
	const char *issued = merchant_value(merchant, wallet_option_token_issued);
	TimestampTz expires;
	Datum		name = CStringGetTextDatum(merchant->name);
	Oid			type = TEXTOID;

	if (issued == NULL)
		return;
	expires = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(issued),
													  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	expires += (int64) WALLET_TOKEN_LIFETIME_DAYS * USECS_PER_DAY;
	if (expires - GetCurrentTimestamp() > (int64) WALLET_TOKEN_WARN_DAYS * USECS_PER_DAY)
		return;
	if (run_sql(warned_sql, 1, &type, &name, NULL, SPI_OK_UPDATE, NULL, 0) == 0)
		return;
	ereport(LOG,
			(errmsg("the wallet token of merchant \"%s\" %s on %s", merchant->name,
					expires > GetCurrentTimestamp() ? "expires" : "expired", timestamptz_to_str(expires)),
			 errhint("Issue a new token at QIWI; set it (wallet_token) and its date (wallet_token_issued).")));
}

/* Start or go on with merchant's read, in a transaction; false if it has none due now */
static bool
sync_begin(SyncRead *r)
{
	Oid			types[5] = {TEXTOID, TIMESTAMPTZOID, INTERVALOID, INTERVALOID, INTERVALOID};
	Datum		values[5];
	Datum		window[2];

	values[0] = CStringGetTextDatum(r->merchant->name);
	values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[2] = seconds_interval(SYNC_OVERLAP_SECS);
	values[3] = seconds_interval((int64) wallet_sync_days * SECS_PER_DAY);
	values[4] = seconds_interval(wallet_sync_interval_s);
	warn_token_expiry(r->merchant);
	run_sql(begin_sql[0], 1, types, values, NULL, SPI_OK_INSERT, NULL, 0);
	run_sql(begin_sql[1], 5, types, values, NULL, SPI_OK_UPDATE, NULL, 0);
	if (run_sql(begin_sql[2], 2, types, values, NULL, SPI_OK_SELECT, window, 2) == 0)
		return false;
	r->since = DatumGetTimestampTz(window[0]);
	r->until = DatumGetTimestampTz(window[1]);
	return true;
}

/* Run fn(r) in a short transaction of the worker */
static bool
in_transaction(bool (*fn) (SyncRead *r), SyncRead *r)
{
	MemoryContext caller = CurrentMemoryContext;
	bool		result;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(caller);
	result = fn(r);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	return result;
}

/* Upsert the buffered payments in one short transaction, and free them */
static void
flush_payments(SyncRead *r)
{
	MemoryContext caller = MemoryContextSwitchTo(r->buffer_context);

	if (r->nbuffered > 0)
		in_transaction(upsert_buffered, r);
	MemoryContextSwitchTo(caller);
	MemoryContextReset(r->buffer_context);
}

/* Upsert one buffered payment (a GuardedFn); true if the row changed */
static bool
upsert_payment(void *arg, char **problem)
{
	BufferedPayment *p = (BufferedPayment *) arg;

	return run_sql(upsert_sql, PAYMENT_NARGS, payment_types, p->values, p->nulls,
				   SPI_OK_INSERT, NULL, 0) == 1;
}

/* Upsert the buffered payments (in a transaction), each on its own: one's failure is its own */
static bool
upsert_buffered(SyncRead *r)
{
	for (int i = 0; i < r->nbuffered; i++)
	{
		char	   *problem = NULL;

		if (qiwi_guarded(upsert_payment, &r->buffer[i], GUARD_ALL_BUT_CANCEL, &problem))
			r->counts->changed++;
		else if (problem != NULL)
		{
			r->failed++;
			r->item_error = MemoryContextStrdup(r->round_context, problem);
			ereport(LOG,
					(errmsg("could not record payment %lld of the wallet history of merchant \"%s\": %s",
							(long long) DatumGetInt64(r->buffer[i].values[1]), r->merchant->name,
							problem)));
		}
	}
	r->nbuffered = 0;
	return true;
}

/* Copy a varlena value (numeric, jsonb) into the buffer's memory, or mark it NULL */
static Datum
buffered_varlena(const void *value, char *null)
{
	*null = value == NULL ? 'n' : ' ';
	return value == NULL ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(PointerGetDatum(value)));
}

/* Take a payment of the history (a WalletPaymentConsumer): buffer it; false stops the read */
static bool
take_payment(void *arg, const WalletPayment *pay)
{
	SyncRead   *r = (SyncRead *) arg;
	BufferedPayment *p = &r->buffer[r->nbuffered++];
	MemoryContext caller = MemoryContextSwitchTo(r->buffer_context);
	char	   *n = p->nulls;

	ledger_no_nulls(p->nulls, PAYMENT_NARGS);
	p->values[0] = CStringGetTextDatum(r->merchant->name);
	p->values[1] = Int64GetDatum(pay->txn_id);
	p->values[2] = ledger_text_or_null(pay->type, &n[2]);
	p->values[3] = ledger_text_or_null(pay->trm_txn_id, &n[3]);
	p->values[4] = TimestampTzGetDatum(pay->date);
	p->values[5] = ledger_text_or_null(pay->status, &n[5]);
	p->values[6] = buffered_varlena(pay->amount, &n[6]);
	p->values[7] = ledger_text_or_null(pay->currency, &n[7]);
	p->values[8] = buffered_varlena(pay->commission, &n[8]);
	p->values[9] = buffered_varlena(pay->total, &n[9]);
	p->values[10] = Int32GetDatum(pay->provider);
	n[10] = pay->provider == 0 ? 'n' : ' ';
	p->values[11] = ledger_text_or_null(pay->account, &n[11]);
	p->values[12] = ledger_text_or_null(pay->comment, &n[12]);
	p->values[13] = Int32GetDatum(pay->error_code);
	p->values[14] = ledger_text_or_null(pay->error, &n[14]);
	p->values[15] = buffered_varlena(pay->item, &n[15]);
	MemoryContextSwitchTo(caller);
	r->read++;
	r->reached = pay->date;
	if (r->nbuffered == WALLET_MAX_ROWS)
		flush_payments(r);
	r->stopped = r->read >= r->budget || !reconciler_may_go_on();
	return !r->stopped;
}

/* Read the history of r's window into the table; r->ok, or r->error (a page's, or any error) */
static void
read_history(SyncRead *r)
{
	MemoryContext caller = CurrentMemoryContext;
	QiwiError  *error = &r->error;

	PG_TRY();
	{
		r->ok = wallet_history_each(r->merchant, r->since, r->until, "ALL", take_payment, r, error);
		flush_payments(r);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(caller);
		MemoryContextReset(r->buffer_context);
		r->nbuffered = 0;
		memset(error, 0, sizeof(*error));
		error->sqlstate = edata->sqlerrcode;
		error->message = edata->message ? edata->message : "an error without a message";
		r->ok = false;
	}
	PG_END_TRY();
}

/* Record where r's read ended, in a transaction; a block is logged once */
static bool
sync_end(SyncRead *r)
{
	bool		ok = r->ok;
	const QiwiError *error = &r->error;
	Oid			types[8] = {TEXTOID, TIMESTAMPTZOID, BOOLOID, INT8OID, INT8OID, TIMESTAMPTZOID,
	TEXTOID, TIMESTAMPTZOID};
	Datum		values[8];
	char		nulls[9];
	bool		blocked = !ok && error->sqlstate == ERRCODE_QIWI_BLOCKED;

	ledger_no_nulls(nulls, 8);
	values[0] = CStringGetTextDatum(r->merchant->name);
	values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[2] = BoolGetDatum(ok && !r->stopped);
	values[3] = Int64GetDatum(r->read);
	values[4] = Int64GetDatum(r->failed);
	/* the next read goes on from the oldest payment's second, inclusive */
	values[5] = ledger_time_or_null(r->reached + USECS_PER_SEC, r->reached != 0, &nulls[5]);
	values[6] = ledger_text_or_null(ok ? r->item_error : qiwi_redact_secrets(error->message),
									&nulls[6]);
	values[7] = ledger_time_or_null(blocked && error->blocked_until != 0 ? error->blocked_until :
									TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
																WALLET_BLOCK_SECONDS * 1000),
									blocked, &nulls[7]);
	run_sql(end_sql, 8, types, values, nulls, SPI_OK_UPDATE, NULL, 0);
	if (blocked)
		ereport(LOG,
				(errcode(ERRCODE_QIWI_BLOCKED),
				 errmsg("QIWI blocked the wallet of merchant \"%s\"; its history sync waits until %s",
						r->merchant->name, timestamptz_to_str(DatumGetTimestampTz(values[7])))));
	return true;
}


/*
 * Sync one merchant's history for a round of the reconciler (a
 * ReconcileSync's sync): at most one window of the rate limit's requests
 * a round, so that other merchants and kinds are not kept waiting
 */
static bool
sync_merchant(const Merchant *merchant, ReconcileCounts *counts, long *refused_status)
{
	SyncRead   *r = palloc0(sizeof(SyncRead));

	r->merchant = merchant;
	r->counts = counts;
	r->budget = (int64) wallet_rate_limit()->requests * WALLET_MAX_ROWS;
	if (!in_transaction(sync_begin, r))
		return false;
	r->round_context = CurrentMemoryContext;
	r->buffer_context = AllocSetContextCreate(r->round_context, "wallet sync buffer",
											  ALLOCSET_DEFAULT_SIZES);
	read_history(r);
	MemoryContextDelete(r->buffer_context);
	counts->checked += r->read;
	counts->failed += r->failed + (r->ok ? 0 : 1);
	if (!r->ok && (r->error.sqlstate == ERRCODE_QIWI_AUTHENTICATION ||
				   r->error.sqlstate == ERRCODE_QIWI_FORBIDDEN))
		*refused_status = r->error.sqlstate == ERRCODE_QIWI_AUTHENTICATION ? 401 : 403;
	in_transaction(sync_end, r);
	return r->ok && r->stopped;
}

static const ReconcileSync wallet_history_sync = {
	.what = "wallet history",
	.required_options = wallet_sync_options,
	.nrequired = 2,
	.sync = sync_merchant,
};

/* Define the sync's settings and register it with the reconciler */
void
wallet_sync_init(void)
{
	DefineCustomIntVariable("qiwi.wallet_sync_interval",
							"How often the reconciler reads each merchant's wallet history into qiwi_wallet_payments.",
							NULL, &wallet_sync_interval_s, 60, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("qiwi.wallet_sync_days",
							"How far back the first read of a merchant's wallet history goes.",
							NULL, &wallet_sync_days, 365, 1, 3650,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	wallet_sync_options[0] = wallet_option_number;
	wallet_sync_options[1] = wallet_option_token;
	reconciler_add_sync(&wallet_history_sync);
}
