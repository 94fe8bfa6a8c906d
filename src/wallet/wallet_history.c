/*
 * wallet_history.c
 *		What reads a wallet (qiwi-api.md §4, §8, §9): the history (newest
 *		first, 50 a page, in windows of at most 90 days, dates in UTC; later
 *		pages repeat the window with the cursor as answered; an item before
 *		the window ends it; a 404 is an empty window), a transaction, totals,
 *		balances.
 */
#include "core/core.h"
#include "wallet/wallet.h"

#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(qiwi_wallet_history);
PG_FUNCTION_INFO_V1(qiwi_wallet_transaction);
PG_FUNCTION_INFO_V1(qiwi_wallet_totals);
PG_FUNCTION_INFO_V1(qiwi_wallet_balances);

#define WALLET_WINDOW_USECS	((int64) WALLET_MAX_WINDOW_DAYS * USECS_PER_DAY)
#define WALLET_TXN_COLUMNS	15
#define WALLET_BALANCE_COLUMNS	5

/* What a history read asks for: the range in windows, the filters, and for a sync, its consumer */
typedef struct HistoryArgs
{
	const Merchant *merchant;
	QiwiTimeWindows range;
	const char *operation;		/* ALL, IN, OUT, QIWI_CARD */
	List	   *sources;		/* of char *; NIL: every source */
	WalletPaymentConsumer consume;
	WalletItemSkipped skipped;	/* NULL with consume: an unreadable item fails its page */
	void	   *consume_arg;
} HistoryArgs;

/* Where the history goes on: a window (0: the newest) and QIWI's cursor in it */
typedef struct HistoryCursor
{
	int			window;
	char	   *txn_id;			/* nextTxnId as answered; NULL: the window's first page */
	char	   *txn_date;		/* nextTxnDate as answered */
} HistoryCursor;

/* A page asked for, for its reader: the read, the window and the page to fill */
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
static const char *const range_names[] = {"since", "until"};

/* ---------- the history ---------- */

/* The cursor of window n's first page, or NULL when the range has no window n */
static HistoryCursor *
window_cursor(const HistoryArgs *args, int n)
{
	TimestampTz start;
	TimestampTz end;
	HistoryCursor *cursor = palloc0(sizeof(HistoryCursor));

	cursor->window = n;
	return qiwi_window(&args->range, n, &start, &end) ? cursor : NULL;
}

/* The URL of a wallet's history (or of its totals: "payments/total") with a window */
static char *
history_url(const Merchant *merchant, const char *what, TimestampTz start, TimestampTz end)
{
	const char *segments[] = {"payment-history/v2/persons", wallet_number(merchant), what};
	char	   *url = wire_url(&wallet_wire, merchant, lengthof(segments), segments);

	url = http_append_query(url, "startDate", format_qiwi_timestamp(start));
	return http_append_query(url, "endDate", format_qiwi_timestamp(end));
}

/* Keep the page's items of its window; false if one before the window's start ended it */
static bool
keep_window_items(QiwiPage *page, const HistoryPageAsked *asked)
{
	int			kept = 0;
	bool		goes_on = true;

	for (int i = 0; i < page->nitems; i++)
	{
		WalletPayment *payment = (WalletPayment *) page->items[i];

		if (payment->date < asked->start || payment->date < asked->args->range.since)
			goes_on = false;
		else if (payment->date <= asked->end && goes_on)
			page->items[kept++] = payment;
	}
	page->nitems = kept;
	return goes_on;
}

/*
 * Read a history page {data, nextTxnId, nextTxnDate} and where the history
 * goes on (a QiwiAnswerReader); an item that cannot be read is skipped (the
 * SRF warns, a sync is told), but fails the page of a read that cannot
 * know of it (a transfer's search, which must not conclude it absent)
 */
static bool
parse_history_page(const HttpResponse *resp, void *result, char **problem)
{
	HistoryPageAsked *asked = (HistoryPageAsked *) result;
	Jsonb	   *answer = parse_json_object(resp->body, resp->body_len, NULL, problem);
	HistoryCursor *next = palloc0(sizeof(HistoryCursor));
	bool		strict = asked->args->consume != NULL && asked->args->skipped == NULL;

	if (answer == NULL ||
		!(strict ? qiwi_page_read_array : qiwi_page_read_items) (asked->page, &answer->root, "data",
																 wallet_read_payment, problem) ||
		!json_identifier(&answer->root, "nextTxnId", &next->txn_id, problem) ||
		!json_identifier(&answer->root, "nextTxnDate", &next->txn_date, problem))
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
	((HistoryPageAsked *) op->args)->page = (QiwiPage *) op->result;
	return wire_read_answer(op, resp, parse_history_page, (void *) op->args, error);
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
	(void) qiwi_window(&args->range, asked->window, &asked->start, &asked->end);
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
	wallet_operation(op, args->merchant, HTTP_GET, url, NULL, pstrdup("read the wallet's history"), true);
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

static const QiwiPagedList history_list = {
	.operation = history_operation,
	.ends_list = qiwi_not_found_ends_list,	/* nothing in that window (§9) */
	.after_empty = history_after_empty,
};

/*
 * Hand a page's items to the consumer of the read, its HistoryArgs, then
 * those skipped, whose place by date is unknown (a QiwiPageConsumer)
 */
static bool
consume_history_page(void *arg, const QiwiPage *page)
{
	const HistoryArgs *args = (const HistoryArgs *) arg;
	bool		go_on = true;
	ListCell   *lc;

	for (int i = 0; i < page->nitems && go_on; i++)
		go_on = args->consume(args->consume_arg, (const WalletPayment *) page->items[i]);
	foreach(lc, page->skipped)
		args->skipped(args->consume_arg, lfirst(lc));
	return go_on;
}

/*
 * Hand each item of a wallet's history in [since, until] (operation ALL, IN,
 * OUT or QIWI_CARD) to consume, newest first, each once, until the history
 * ends or consume says false; one that cannot be read, to skipped (NULL: it
 * fails its page); a failed page: false with *error
 */
bool
wallet_history_each(const Merchant *merchant, TimestampTz since, TimestampTz until,
					const char *operation, WalletPaymentConsumer consume,
					WalletItemSkipped skipped, void *arg, QiwiError *error)
{
	HistoryArgs args = {.merchant = merchant, .operation = operation, .consume = consume,
	.skipped = skipped, .consume_arg = arg};

	if (since >= until)
		return true;
	qiwi_windows_init(&args.range, since, until, WALLET_WINDOW_USECS);
	return qiwi_pages_each(&history_list, &args, consume_history_page, &args, error);
}

/* ---------- SQL ---------- */

/* The qiwi_wallet_transaction row of a payment */
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

	arg_time_windows(fcinfo, 0, range_names, WALLET_WINDOW_USECS, &args->range);
	args->operation = arg_required_name(fcinfo, 2, "operation", history_operations);
	args->sources = arg_optional_names(fcinfo, 3, "sources", history_sources,
									   "Pass NULL for every source.");
	args->merchant = arg_merchant(fcinfo, 4);
	(void) wallet_number(args->merchant);
	return args;
}

/* A history item's row (a QiwiItemDatum) */
static Datum
history_row(FuncCallContext *funcctx, const void *args, void *item)
{
	return HeapTupleGetDatum(payment_tuple(funcctx->tuple_desc, (WalletPayment *) item));
}

/* qiwi_wallet_history(since, until, operation, sources, merchant): streamed, newest first */
Datum
qiwi_wallet_history(PG_FUNCTION_ARGS)
{
	return qiwi_pages_srf(fcinfo, &history_list, start_history, history_row);
}

/* A transaction's answer: a history item with extras */
static const WireAnswer transaction_answer = {.item = wallet_read_payment};

/* qiwi_wallet_transaction(txn_id, type, merchant): one payment of the wallet */
Datum
qiwi_wallet_transaction(PG_FUNCTION_ARGS)
{
	static const char *const types[] = {"IN", "OUT", NULL};
	int64		txn_id = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
	char	   *type = PG_ARGISNULL(1) ? NULL : arg_required_text(fcinfo, 1, "type");
	const char *segments[2] = {"payment-history/v2/transactions"};
	const Merchant *merchant;
	WalletPayment *payment;
	char	   *url;

	if (txn_id <= 0)
		ereport(ERROR,
				(errcode(PG_ARGISNULL(0) ? ERRCODE_NULL_VALUE_NOT_ALLOWED : ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("txn_id must be QIWI's txnId, a positive number")));
	if (type != NULL && !qiwi_name_in(type, types))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("type must be one of %s, or NULL", qiwi_quoted_names(types))));
	merchant = arg_merchant(fcinfo, 2);
	segments[1] = psprintf(INT64_FORMAT, txn_id);
	url = wire_url(&wallet_wire, merchant, lengthof(segments), segments);
	wallet_read_call(merchant, type ? http_append_query(url, "type", type) : url,
					 psprintf("read wallet transaction %s", segments[1]), &transaction_answer, &payment);
	PG_RETURN_DATUM(HeapTupleGetDatum(payment_tuple(arg_result_desc(fcinfo, WALLET_TXN_COLUMNS,
																	 "qiwi_wallet_transaction"),
													payment)));
}

/* ---------- totals and balances ---------- */

/* An amount {amount, currency} (currency its ISO number) as a currency's sums[0] (a QiwiItemReader) */
static bool
read_money(JsonbValue *element, void **item, char **problem)
{
	QiwiCurrencySums *money = palloc0(sizeof(QiwiCurrencySums));

	*item = money;
	if (element->type == jbvBinary && JsonContainerIsObject(element->val.binary.data) &&
		json_coded_money(element->val.binary.data, "amount", &money->sums[0], &money->currency, problem))
		return true;
	*problem = pstrdup("an amount is not {\"amount\": number, \"currency\": code}");
	return false;
}

/* Add a window's totals {incomingTotal, outgoingTotal} to the List of sums by currency (a WireObjectParser) */
static bool
parse_totals(JsonbContainer *root, void *result, char **problem)
{
	static const char *const keys[2] = {"incomingTotal", "outgoingTotal"};
	QiwiPage	list = {0};

	for (int k = 0; k < 2; k++)
	{
		if (!qiwi_page_read_array(&list, root, keys[k], read_money, problem))
			return false;
		for (int i = 0; i < list.nitems; i++)
		{
			QiwiCurrencySums *money = list.items[i];

			qiwi_currency_sums_add((List **) result, money->currency, k, money->sums[0]);
		}
	}
	return true;
}

/* A window's totals, added to the sums of the windows before */
static const WireAnswer totals_answer = {.object = parse_totals};

/* qiwi_wallet_totals(since, until, merchant): money in and out per currency, a request a window */
Datum
qiwi_wallet_totals(PG_FUNCTION_ARGS)
{
	HistoryArgs args = {0};
	List	   *rows = NIL;
	TimestampTz start;
	TimestampTz end;

	arg_time_windows(fcinfo, 0, range_names, WALLET_WINDOW_USECS, &args.range);
	args.merchant = arg_merchant(fcinfo, 2);
	(void) wallet_number(args.merchant);
	InitMaterializedSRF(fcinfo, 0);
	for (int window = 0; qiwi_window(&args.range, window, &start, &end); window++)
		wallet_read_call(args.merchant, history_url(args.merchant, "payments/total", start, end),
						 pstrdup("read the wallet's totals"), &totals_answer, &rows);
	qiwi_result_put_sums(fcinfo, rows);
	return (Datum) 0;
}

/* An account of the balances, as its row (a QiwiItemReader); "balance": null for one without */
static bool
read_account(JsonbValue *element, void **item, char **problem)
{
	JsonbContainer *object = element->type == jbvBinary ? element->val.binary.data : NULL;
	JsonbContainer *type = json_object_member(object, "type");
	JsonbContainer *balance;
	JsonbValue *is_default = object ? json_field(object, "defaultAccount") : NULL;
	char	   *alias;
	char	   *type_id = NULL;
	Numeric		amount = NULL;
	int64		code;
	ResultColumn *row = palloc(sizeof(ResultColumn) * WALLET_BALANCE_COLUMNS);

	*item = row;
	*problem = pstrdup("an account is not an object");
	if (object == NULL || !json_string(object, "alias", true, &alias, problem) ||
		!json_integer(object, "currency", &code, problem) ||
		(type != NULL && !json_string(type, "id", false, &type_id, problem)) ||
		!json_member_object(object, "balance", false, &balance, NULL, problem) ||
		(balance != NULL && !json_coded_money(balance, "balance", &amount, NULL, problem)))
		return false;
	row[0] = result_text(alias);
	row[1] = result_text(json_field(object, "currency") ? qiwi_currency_letters((int32) code) : NULL);
	row[2] = result_pointer(amount);
	row[3] = result_datum(BoolGetDatum(is_default && is_default->type == jbvBool && is_default->val.boolean));
	row[4] = result_text(type_id);
	return true;
}

/* A wallet's accounts {accounts: [...]} */
static const WireAnswer accounts_answer = {.key = "accounts", .item = read_account};

/* qiwi_wallet_balances(merchant): the wallet's accounts and their balances */
Datum
qiwi_wallet_balances(PG_FUNCTION_ARGS)
{
	const Merchant *merchant = arg_merchant(fcinfo, 0);
	const char *segments[] = {"funding-sources/v2/persons", wallet_number(merchant), "accounts"};
	QiwiPage	accounts = {0};

	InitMaterializedSRF(fcinfo, 0);
	wallet_read_call(merchant, wire_url(&wallet_wire, merchant, lengthof(segments), segments),
					 pstrdup("read the wallet's balances"), &accounts_answer, &accounts);
	qiwi_result_put_page(fcinfo, &accounts, WALLET_BALANCE_COLUMNS);
	return (Datum) 0;
}
