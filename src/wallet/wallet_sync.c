/*
 * wallet_sync.c
 *		qiwi_wallet_payments kept by the worker: each merchant's history read
 *		newest first, from the last whole read's end less an overlap (or its
 *		oldest WAITING payment) to the read's start, upserted forward only;
 *		progress in qiwi_wallet_sync, a long read resumed next round.  A 423
 *		or a refused token stops the merchant (the core's rules); a token
 *		near its expiry is said in the log once a day.
 */
#include "core/core.h"
#include "wallet/wallet.h"

#include "catalog/pg_type_d.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/*
 * The overlap: a read starts an hour before the last whole read ended.
 * QIWI dates a payment when it was made, and it may reach the history
 * later (a payment in processing, a clock apart from ours); payments of
 * one second may straddle a page's or a window's edge.  An hour covers
 * both and costs a page or so: a payment upserted again writes nothing.
 */
#define SYNC_OVERLAP_SECS	3600

/* Settings: how often a merchant's history is read; how far back its first read goes */
static int	wallet_sync_interval_s = 60;
static int	wallet_sync_days = 365;

/* The options a merchant's sync needs: its wallet number and token (set by wallet_sync_init) */
static int	wallet_sync_options[2];

/* A payment's upsert: $1..$16, the columns of qiwi_wallet_payments in their order */
#define PAYMENT_NARGS 16
static const Oid payment_types[PAYMENT_NARGS] = {
	TEXTOID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, NUMERICOID, TEXTOID,
	NUMERICOID, NUMERICOID, INT4OID, TEXTOID, TEXTOID, INT4OID, TEXTOID, JSONBOID
};

/*
 * Forward only: a WAITING row takes whatever QIWI says now, a final one
 * (SUCCESS, ERROR) only news of the same status; an equal one writes nothing
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
 * A merchant's row ($1); a new read at $2 (now) when none goes on, the
 * last ended $5 seconds ago (the interval) and no block holds: from the
 * last whole read less $3 seconds (the overlap), or $4 (the first read's
 * reach), or the oldest WAITING payment; the read going on, if any
 */
static const char *const begin_sql[] = {
	"INSERT INTO %1$s.qiwi_wallet_sync (merchant) VALUES ($1) ON CONFLICT (merchant) DO NOTHING",
	("UPDATE %1$s.qiwi_wallet_sync s SET (read_started_at, reading_until) = ($2, $2), reading_since ="
	" LEAST(COALESCE(s.synced_until, $2 - $4 * interval '1 s') - $3 * interval '1 s', (SELECT min(p.date)"
	" FROM %1$s.qiwi_wallet_payments p WHERE p.merchant = s.merchant AND p.status = 'WAITING'))"
	" WHERE s.merchant = $1 AND s.reading_until IS NULL AND (s.blocked_until IS NULL OR s.blocked_until <= $2)"
	" AND (s.last_sync_at IS NULL OR s.last_sync_at + $5 * interval '1 s' <= $2)"),
	("SELECT reading_since, reading_until FROM %1$s.qiwi_wallet_sync WHERE merchant = $1"
	 " AND reading_until IS NOT NULL AND (blocked_until IS NULL OR blocked_until <= $2)")
};

/* A read's end ($1 merchant, $2 now): $3 its error, $4 where it goes on, $5 a block, $6 whole */
static const char *const end_sql =
"UPDATE %1$s.qiwi_wallet_sync SET synced_until = CASE WHEN $6 THEN read_started_at ELSE synced_until END,"
" last_sync_at = CASE WHEN $6 THEN $2 ELSE last_sync_at END,"
" reading_until = CASE WHEN $6 THEN NULL ELSE COALESCE($4, reading_until) END,"
" last_error = CASE WHEN $3 IS NOT NULL OR $6 THEN $3 ELSE last_error END,"
" last_error_at = CASE WHEN $3 IS NOT NULL THEN $2 WHEN $6 THEN NULL ELSE last_error_at END,"
" blocked_until = $5 WHERE merchant = $1";

/* Once a day, a token that expires within 14 days (qiwi_wallet_tokens.warn) */
static const char *const warned_sql =
"UPDATE %1$s.qiwi_wallet_sync s SET token_warned_on = current_date FROM %1$s.qiwi_wallet_tokens t"
" WHERE s.merchant = $1 AND t.merchant = s.merchant AND t.warn"
" AND s.token_warned_on IS DISTINCT FROM current_date RETURNING t.expires";

/* A payment's row, as upsert_sql takes it */
typedef struct PaymentRow
{
	Datum		values[PAYMENT_NARGS];
	char		nulls[PAYMENT_NARGS + 1];
} PaymentRow;

/* One round's read of one merchant's history */
typedef struct SyncRead
{
	const Merchant *merchant;
	TimestampTz since;
	TimestampTz until;
	int64		budget;			/* payments this round may read */
	int64		read;
	TimestampTz reached;		/* the date of the oldest payment read; 0: none */
	TimestampTz committed;		/* of the oldest payment committed */
	bool		stopped;		/* the budget was spent, or the database is wanted */
	char	   *item_error;		/* why the last payment not read or recorded was not, or NULL */
	bool		ok;				/* the read ended without error */
	QiwiError	error;			/* else why */
	ReconcileCounts *counts;
	MemoryContext round_context;
} SyncRead;

/* Start or go on with r's merchant's read, and warn of its token (in a transaction); false: none due */
static bool
sync_begin(void *arg)
{
	SyncRead   *r = (SyncRead *) arg;
	Oid			types[5] = {TEXTOID, TIMESTAMPTZOID, FLOAT8OID, FLOAT8OID, FLOAT8OID};
	Datum		values[5];
	Datum		row[2];

	values[0] = CStringGetTextDatum(r->merchant->name);
	values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[2] = Float8GetDatum(SYNC_OVERLAP_SECS);
	values[3] = Float8GetDatum((double) wallet_sync_days * SECS_PER_DAY);
	values[4] = Float8GetDatum(wallet_sync_interval_s);
	ledger_execute(begin_sql[0], 1, types, values, NULL, SPI_OK_INSERT, NULL, 0);
	if (ledger_execute(warned_sql, 1, types, values, NULL, SPI_OK_UPDATE_RETURNING, row, 1) == 1)
		ereport(LOG,
				(errmsg("the wallet token of merchant \"%s\" expires on %s", r->merchant->name,
						timestamptz_to_str(DatumGetTimestampTz(row[0]))),
				 errhint("Issue a new token at QIWI; set it (wallet_token) and its date (wallet_token_issued).")));
	ledger_execute(begin_sql[1], 5, types, values, NULL, SPI_OK_UPDATE, NULL, 0);
	if (ledger_execute(begin_sql[2], 2, types, values, NULL, SPI_OK_SELECT, row, 2) == 0)
		return false;
	r->since = DatumGetTimestampTz(row[0]);
	r->until = DatumGetTimestampTz(row[1]);
	return true;
}

/* Upsert one payment's row (a GuardedFn); true if the row changed */
static bool
upsert_payment(void *arg, char **problem)
{
	PaymentRow *row = (PaymentRow *) arg;

	return ledger_execute(upsert_sql, PAYMENT_NARGS, payment_types, row->values, row->nulls,
						  SPI_OK_INSERT, NULL, 0) == 1;
}

/* Upsert a payment on its own (in a transaction): a failure is its own, logged */
static void
record_payment(SyncRead *r, const WalletPayment *pay)
{
	PaymentRow	row;
	char	   *n = row.nulls;
	char	   *problem = NULL;

	ledger_no_nulls(n, PAYMENT_NARGS);
	row.values[0] = CStringGetTextDatum(r->merchant->name);
	row.values[1] = Int64GetDatum(pay->txn_id);
	row.values[2] = ledger_text_or_null(pay->type, &n[2]);
	row.values[3] = ledger_text_or_null(pay->trm_txn_id, &n[3]);
	row.values[4] = TimestampTzGetDatum(pay->date);
	row.values[5] = ledger_text_or_null(pay->status, &n[5]);
	row.values[6] = ledger_pointer_or_null(pay->amount, &n[6]);
	row.values[7] = ledger_text_or_null(pay->currency, &n[7]);
	row.values[8] = ledger_pointer_or_null(pay->commission, &n[8]);
	row.values[9] = ledger_pointer_or_null(pay->total, &n[9]);
	row.values[10] = Int32GetDatum(pay->provider);
	n[10] = pay->provider == 0 ? 'n' : ' ';
	row.values[11] = ledger_text_or_null(pay->account, &n[11]);
	row.values[12] = ledger_text_or_null(pay->comment, &n[12]);
	row.values[13] = Int32GetDatum(pay->error_code);
	row.values[14] = ledger_text_or_null(pay->error, &n[14]);
	row.values[15] = ledger_pointer_or_null(pay->item, &n[15]);
	PushActiveSnapshot(GetTransactionSnapshot());
	if (qiwi_guarded(upsert_payment, &row, GUARD_ALL_BUT_CANCEL, &problem))
		r->counts->changed++;
	else if (problem != NULL)
	{
		r->counts->failed++;
		r->item_error = MemoryContextStrdup(r->round_context, problem);
		ereport(LOG,
				(errmsg("could not record payment %lld of the wallet history of merchant \"%s\": %s",
						(long long) pay->txn_id, r->merchant->name, problem)));
	}
	PopActiveSnapshot();
}

/*
 * Take a payment of the history (a WalletPaymentConsumer): record it, and
 * commit every page's worth; the read goes on in a new transaction, which
 * holds no snapshot while it waits (an answer is read in a subtransaction,
 * so in a transaction).  False stops the read.
 */
static bool
take_payment(void *arg, const WalletPayment *pay)
{
	SyncRead   *r = (SyncRead *) arg;
	MemoryContext caller = CurrentMemoryContext;

	record_payment(r, pay);
	r->read++;
	r->reached = pay->date;
	r->stopped = r->read >= r->budget;
	if (r->read % WALLET_MAX_ROWS == 0)
	{
		CommitTransactionCommand();
		r->committed = r->reached;
		/* between transactions: it looks at the database's lock in one of its own */
		r->stopped |= !reconciler_may_go_on();
		reconciler_start_read_transaction(caller);
	}
	return !r->stopped;
}

/* Note a payment of the history that could not be read, and was skipped (a WalletItemSkipped) */
static void
skip_payment(void *arg, const char *problem)
{
	SyncRead   *r = (SyncRead *) arg;

	r->counts->failed++;
	r->item_error = MemoryContextStrdup(r->round_context, problem);
	ereport(LOG,
			(errmsg("wallet history of merchant \"%s\": %s", r->merchant->name, problem)));
}

/* Read r's range of the history into the table (a sync's read, in a transaction); false with *error */
static bool
read_history(void *arg, QiwiError *error)
{
	SyncRead   *r = (SyncRead *) arg;

	return wallet_history_each(r->merchant, r->since, r->until, "ALL", take_payment, skip_payment, r,
							   error);
}

/* Record where r's read ended (in a transaction); a block is logged, once */
static bool
sync_end(void *arg)
{
	SyncRead   *r = (SyncRead *) arg;
	Oid			types[6] = {TEXTOID, TIMESTAMPTZOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, BOOLOID};
	Datum		values[6];
	char		nulls[7];
	bool		blocked = !r->ok && r->error.sqlstate == ERRCODE_QIWI_BLOCKED;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz block_end = r->error.blocked_until;

	if (blocked && block_end == 0)
		block_end = TimestampTzPlusMilliseconds(now, WALLET_BLOCK_SECONDS * 1000);
	ledger_no_nulls(nulls, 6);
	values[0] = CStringGetTextDatum(r->merchant->name);
	values[1] = TimestampTzGetDatum(now);
	values[2] = ledger_text_or_null(r->ok ? r->item_error : qiwi_redact_secrets(r->error.message),
									&nulls[2]);
	/* the next read goes on from the oldest payment's second, which it reads again */
	values[3] = ledger_time_or_null(r->reached, r->reached != 0, &nulls[3]);
	values[4] = ledger_time_or_null(block_end, blocked, &nulls[4]);
	values[5] = BoolGetDatum(r->ok && !r->stopped);
	ledger_execute(end_sql, 6, types, values, nulls, SPI_OK_UPDATE, NULL, 0);
	if (blocked)
		ereport(LOG,
				(errcode(ERRCODE_QIWI_BLOCKED),
				 errmsg("QIWI blocked the wallet of merchant \"%s\"; its history sync waits until %s",
						r->merchant->name, timestamptz_to_str(block_end))));
	return true;
}

/*
 * Sync one merchant's history in a round of the reconciler (a
 * ReconcileSync's sync): at most a window of the rate limit's requests a
 * round, so that other merchants and kinds do not wait on one long read
 */
static bool
sync_merchant(const Merchant *merchant, ReconcileCounts *counts, long *refused_status)
{
	SyncRead   *r = palloc0(sizeof(SyncRead));
	bool		rolled_back;

	r->merchant = merchant;
	r->counts = counts;
	r->budget = (int64) wallet_rate_limit()->requests * WALLET_MAX_ROWS;
	r->round_context = CurrentMemoryContext;
	if (!reconciler_in_transaction(sync_begin, r))
		return false;
	r->ok = reconciler_sync_read(read_history, r, &r->error, &rolled_back);
	if (rolled_back)
		r->reached = r->committed;	/* what came after is rolled back */
	counts->checked += r->read;
	counts->failed += r->ok ? 0 : 1;
	if (!r->ok && (r->error.sqlstate == ERRCODE_QIWI_AUTHENTICATION ||
				   r->error.sqlstate == ERRCODE_QIWI_FORBIDDEN))
		*refused_status = r->error.sqlstate == ERRCODE_QIWI_FORBIDDEN ? 403 : 401;
	reconciler_in_transaction(sync_end, r);
	return r->ok && r->stopped;
}

static const ReconcileSync wallet_history_sync = {
	.what = "wallet history",
	.required_options = wallet_sync_options,
	.nrequired = lengthof(wallet_sync_options),
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
