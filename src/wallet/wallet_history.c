/*
 * wallet_history.c
 *		Everything that reads a wallet (qiwi-api.md §4, §8, §9): its payment
 *		history in pages and windows, streamed from SQL or handed to a
 *		consumer item by item; one transaction; the totals of a range; the
 *		balances.
 *
 * The history is asked for newest first, 50 items a page, in windows of
 * at most 90 days (QIWI's rule), the newest window first, each window
 * bounded by startDate and endDate to the second, written in Moscow time.
 * Windows meet without overlap (each ends a second before the next one's
 * start), so an item is handed out once.  A later page sends the window
 * again with the cursor nextTxnId + nextTxnDate as QIWI answered it; were
 * an item before the window's start to come anyway (the cursor-only
 * continuation), the window ends there.  An empty window (QIWI's 404, or
 * an empty page) goes on to the next one.
 */
#include "core/core.h"
#include "wallet/wallet.h"

#include "utils/builtins.h"
#include "miscadmin.h"
#include "utils/datetime.h"

PG_FUNCTION_INFO_V1(qiwi_wallet_history);

#define WALLET_WINDOW_USECS	((int64) WALLET_MAX_WINDOW_DAYS * USECS_PER_DAY)
#define WALLET_TXN_COLUMNS	15

/* What a history read asks for: the range, to the second, and the filters */
typedef struct HistoryArgs
{
	const Merchant *merchant;
	TimestampTz since;			/* as asked */
	TimestampTz first;			/* since, rounded up to a second */
	TimestampTz last;			/* until, rounded down to a second */
	const char *operation;		/* ALL, IN, OUT, QIWI_CARD */
	List	   *sources;		/* of char *; NIL: every source */
} HistoryArgs;

/* Where the history goes on: a window (0: the newest) and QIWI's cursor in it */
typedef struct HistoryCursor
{
	int			window;
	char	   *txn_id;			/* nextTxnId as answered; NULL: the window's first page */
	char	   *txn_date;		/* nextTxnDate as answered */
} HistoryCursor;

/* A page asked for: the read's arguments and the window, for the reader */
typedef struct HistoryPageAsked
{
	const HistoryArgs *args;
	int			window;
	TimestampTz start;
	TimestampTz end;
	QiwiPage   *page;
} HistoryPageAsked;

static const char *const history_operations[] = {"ALL", "IN", "OUT", "QIWI_CARD", NULL};
static const char *const history_sources[] = {"QW_RUB", "QW_USD", "QW_EUR", "CARD", "MK", NULL};

/* ---------- the wire ---------- */

/* A time as the history's parameters are written: YYYY-MM-DDThh:mm:ss+03:00 */
static char *
moscow_time(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		buf[MAXDATELEN + 1];

	if (timestamp2tm(ts + (int64) WALLET_MOSCOW_OFFSET_SECS * USECS_PER_SEC, NULL, &tm, &fsec,
					 NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	tm.tm_isdst = 0;
	EncodeDateTime(&tm, 0, true, -WALLET_MOSCOW_OFFSET_SECS, NULL, USE_XSD_DATES, buf);
	return pstrdup(buf);
}

/* The bounds of window n of a range (0: the newest); false when the range has no such window */
static bool
history_window(const HistoryArgs *args, int n, TimestampTz *start, TimestampTz *end)
{
	*end = args->last - n * (WALLET_WINDOW_USECS + USECS_PER_SEC);
	*start = Max(args->first, *end - WALLET_WINDOW_USECS);
	return *end >= args->first;
}

/* The URL of a wallet's history (or of its totals: "payments/total") with a window */
static char *
history_url(const Merchant *merchant, const char *what, TimestampTz start, TimestampTz end)
{
	const char *segments[] = {"payment-history/v2/persons", wallet_number(merchant), what};
	char	   *url = wire_url(&wallet_wire, merchant, lengthof(segments), segments);

	url = http_append_query(url, "startDate", moscow_time(start));
	return http_append_query(url, "endDate", moscow_time(end));
}

/* A page's item: a history item read into a WalletPayment (a QiwiItemReader) */
static bool
read_history_item(JsonbValue *element, void **item, char **problem)
{
	WalletPayment *payment = palloc(sizeof(WalletPayment));

	*item = payment;
	return wallet_parse_payment(element, payment, problem);
}

/* A text member that may be null; NULL when absent or null */
static bool
optional_identifier(JsonbContainer *object, const char *key, char **out, char **problem)
{
	JsonbValue *v = json_field(object, key);

	*out = NULL;
	return (v != NULL && v->type == jbvNull) || json_identifier(object, key, out, problem);
}

/*
 * Keep the page's items of the window asked for; an item before its start
 * ends the window (the cursor-only continuation's rule).  True if the
 * window goes on after the page.
 */
static bool
keep_window_items(QiwiPage *page, const HistoryPageAsked *asked)
{
	int			kept = 0;
	bool		goes_on = true;

	for (int i = 0; i < page->nitems; i++)
	{
		WalletPayment *payment = (WalletPayment *) page->items[i];

		if (payment->date < asked->start || payment->date < asked->args->since)
			goes_on = false;
		else if (payment->date <= asked->end && goes_on)
			page->items[kept++] = payment;
	}
	page->nitems = kept;
	return goes_on;
}

/* The cursor of window n's first page, or NULL when the range has no window n */
static HistoryCursor *
window_cursor(const HistoryArgs *args, int n)
{
	TimestampTz start;
	TimestampTz end;
	HistoryCursor *cursor;

	if (!history_window(args, n, &start, &end))
		return NULL;
	cursor = palloc0(sizeof(HistoryCursor));
	cursor->window = n;
	return cursor;
}

/* Read a history page {data, nextTxnId, nextTxnDate} (a QiwiAnswerReader) */
static bool
parse_history_page(const HttpResponse *resp, void *result, char **problem)
{
	HistoryPageAsked *asked = (HistoryPageAsked *) result;
	Jsonb	   *answer = parse_json_object(resp->body, resp->body_len, NULL, problem);
	HistoryCursor *next = palloc0(sizeof(HistoryCursor));

	if (answer == NULL ||
		!qiwi_page_read_array(asked->page, &answer->root, "data", read_history_item, problem) ||
		!optional_identifier(&answer->root, "nextTxnId", &next->txn_id, problem) ||
		!optional_identifier(&answer->root, "nextTxnDate", &next->txn_date, problem))
		return false;
	if ((next->txn_id == NULL) != (next->txn_date == NULL))
	{
		*problem = pstrdup("nextTxnId and nextTxnDate are not given together");
		return false;
	}
	next->window = asked->window;
	if (!keep_window_items(asked->page, asked) || next->txn_id == NULL)
		next = window_cursor(asked->args, asked->window + 1);
	asked->page->next = next;
	return true;
}

/* Read a history page's answer (a QiwiOperationReader) */
static bool
read_history_page(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	HistoryPageAsked *asked = (HistoryPageAsked *) op->args;
	char	   *problem = NULL;

	asked->page = (QiwiPage *) op->result;
	if (!qiwi_read_answer(parse_history_page, resp, asked, &problem))
		return qiwi_malformed(error, op->context, problem);
	return true;
}

/* The operation asking for the history's page at a cursor (NULL: the newest window's first) */
static void
history_operation(const void *list_args, const void *cursor_arg, QiwiOperation *op)
{
	const HistoryArgs *args = (const HistoryArgs *) list_args;
	const HistoryCursor *cursor = (const HistoryCursor *) cursor_arg;
	HistoryPageAsked *asked = palloc0(sizeof(HistoryPageAsked));
	char	   *url;
	int			n = 0;
	ListCell   *lc;

	asked->args = args;
	asked->window = cursor ? cursor->window : 0;
	(void) history_window(args, asked->window, &asked->start, &asked->end);
	url = history_url(args->merchant, "payments", asked->start, asked->end);
	url = http_append_query(url, "rows", CppAsString2(WALLET_MAX_ROWS));
	url = http_append_query(url, "operation", args->operation);
	foreach(lc, args->sources)
		url = http_append_query(url, psprintf("sources[%d]", n++), lfirst(lc));
	if (cursor != NULL && cursor->txn_id != NULL)
	{
		url = http_append_query(url, "nextTxnId", cursor->txn_id);
		url = http_append_query(url, "nextTxnDate", cursor->txn_date);
	}
	wallet_operation(op, args->merchant, HTTP_GET, url, NULL,
					 pstrdup("read the wallet's history"), true);
	op->retry_hint = QIWI_READ_RETRY_HINT;
	op->read = read_history_page;
	op->args = asked;
}

/* After an empty window (or page), the next window */
static void *
history_after_empty(const void *list_args, const void *cursor_arg)
{
	const HistoryCursor *cursor = (const HistoryCursor *) cursor_arg;

	return window_cursor((const HistoryArgs *) list_args, (cursor ? cursor->window : 0) + 1);
}

/* QIWI's 404 for a history request: nothing found in that window (§9) */
static bool
history_ends_window(const QiwiError *error, int page)
{
	return error->sqlstate == ERRCODE_QIWI_NOT_FOUND;
}

static const QiwiPagedList history_list = {
	.operation = history_operation,
	.ends_list = history_ends_window,
	.after_empty = history_after_empty,
};

/* A time rounded down to a second */
static TimestampTz
whole_second(TimestampTz ts)
{
	TimestampTz rest = ts % USECS_PER_SEC;

	return ts - (rest < 0 ? rest + USECS_PER_SEC : rest);
}

/*
 * The range [since, until] to the second, as items carry whole seconds; a
 * range within one second is that second's window, whose items before
 * since are dropped
 */
static void
history_range(HistoryArgs *args, TimestampTz since, TimestampTz until)
{
	args->since = since;
	args->last = whole_second(until);
	args->first = whole_second(since);
	if (args->first < since)
		args->first += USECS_PER_SEC;
	args->first = Min(args->first, args->last);
}

/* ---------- the history for a consumer ---------- */

/* A consumer of items, and whether it stopped the history */
typedef struct HistoryConsumer
{
	WalletPaymentConsumer consume;
	void	   *arg;
} HistoryConsumer;

/* Hand a page's items to the consumer (a QiwiPageConsumer) */
static bool
consume_history_page(void *arg, const QiwiPage *page)
{
	HistoryConsumer *consumer = (HistoryConsumer *) arg;

	for (int i = 0; i < page->nitems; i++)
		if (!consumer->consume(consumer->arg, (const WalletPayment *) page->items[i]))
			return false;
	return true;
}

/*
 * Hand each item of a wallet's history in [since, until] to consume, newest
 * first, each once, until the history ends or consume says false; an
 * operation of ALL, IN, OUT or QIWI_CARD.  A failed page is no error: false
 * with *error (see qiwi_pages_each).
 */
bool
wallet_history_each(const Merchant *merchant, TimestampTz since, TimestampTz until,
					const char *operation, WalletPaymentConsumer consume, void *arg,
					QiwiError *error)
{
	HistoryArgs args = {merchant, 0, 0, 0, operation, NIL};
	HistoryConsumer consumer = {consume, arg};

	if (since >= until)
		return true;
	history_range(&args, since, until);
	return qiwi_pages_each(&history_list, &args, consume_history_page, &consumer, error);
}

/* ---------- SQL ---------- */

/* A required timestamptz argument, finite */
static TimestampTz
arg_required_time(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	TimestampTz value;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	value = PG_GETARG_TIMESTAMPTZ(argno);
	if (TIMESTAMP_NOT_FINITE(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite time", argname)));
	return value;
}

/* The range of arguments 0 (since) and 1 (until): since before until */
static void
arg_history_range(FunctionCallInfo fcinfo, HistoryArgs *args)
{
	TimestampTz since = arg_required_time(fcinfo, 0, "since");
	TimestampTz until = arg_required_time(fcinfo, 1, "until");

	if (since >= until)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since must be before until"),
				 errdetail("since is %s; until is %s.",
						   timestamptz_to_str(since), timestamptz_to_str(until))));
	history_range(args, since, until);
}

/* The operation argument: one of history_operations */
static const char *
arg_operation(FunctionCallInfo fcinfo, int argno)
{
	char	   *value = arg_required_text(fcinfo, argno, "operation");

	if (!qiwi_name_in(value, history_operations))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operation must be one of %s", qiwi_quoted_names(history_operations))));
	return value;
}

/* The qiwi_wallet_transaction row of a payment, as a tuple */
static HeapTuple
payment_tuple(TupleDesc tupdesc, const WalletPayment *p)
{
	ResultColumn columns[WALLET_TXN_COLUMNS] = {
		result_datum(Int64GetDatum(p->txn_id)), result_text(p->trm_txn_id),
		result_timestamp(p->date, true), result_text(p->type), result_text(p->status),
		result_pointer(p->amount), result_text(p->currency), result_pointer(p->commission),
		result_pointer(p->total), result_datum(Int32GetDatum(p->provider)),
		result_text(p->account), result_text(p->comment),
		result_datum(Int32GetDatum(p->error_code)), result_text(p->error),
		result_pointer(p->item)
	};

	return qiwi_result_tuple(tupdesc, columns, WALLET_TXN_COLUMNS);
}

/* The history SRF's first call: every argument checked, before any request */
static void *
start_history(FunctionCallInfo fcinfo, FuncCallContext *funcctx)
{
	HistoryArgs *args = palloc0(sizeof(HistoryArgs));
	TupleDesc	tupdesc;

	arg_history_range(fcinfo, args);
	args->operation = arg_operation(fcinfo, 2);
	args->sources = arg_optional_names(fcinfo, 3, "sources", history_sources,
									   "Pass NULL for every source.");
	args->merchant = arg_merchant(fcinfo, 4);
	(void) wallet_number(args->merchant);
	/* not arg_result_desc: an SRF's fn_extra is its FuncCallContext */
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE ||
		tupdesc->natts != WALLET_TXN_COLUMNS)
		elog(ERROR, "return type must be qiwi_wallet_transaction");
	funcctx->tuple_desc = BlessTupleDesc(tupdesc);
	return args;
}

/* A history item's row (a QiwiItemDatum) */
static Datum
history_row(FuncCallContext *funcctx, const void *args, void *item)
{
	return HeapTupleGetDatum(payment_tuple(funcctx->tuple_desc, (WalletPayment *) item));
}

/*
 * qiwi_wallet_history(since, until, operation, sources, merchant): the
 * wallet's payments in [since, until], newest first, a page in memory at a
 * time
 */
Datum
qiwi_wallet_history(PG_FUNCTION_ARGS)
{
	return qiwi_pages_srf(fcinfo, &history_list, start_history, history_row);
}
