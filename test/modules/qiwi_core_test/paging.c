/*
 * paging.c
 *		Entry points into the core's pager (src/core/paging.c), over the
 *		sandbox's paged list (GET /sandbox/pages?cursor=N): a streaming
 *		set-returning function, and a sync that upserts each page into a
 *		table, as a worker would.
 */
#include "core/core.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(qiwi_core_test_pages);
PG_FUNCTION_INFO_V1(qiwi_core_test_sync);

/* What the test list's operations need: where the list is */
typedef struct TestListArgs
{
	char	   *url;
} TestListArgs;

/* Read the sandbox's page {"items": [...], "next": "N" | null} (a QiwiAnswerReader) */
static bool
parse_test_page(const HttpResponse *resp, void *result, char **problem)
{
	QiwiPage   *page = (QiwiPage *) result;
	Jsonb	   *answer = parse_json_object(resp->body, resp->body_len, NULL, problem);
	char	   *next;

	if (answer == NULL || !qiwi_page_read_array(page, &answer->root, "items", NULL, problem) ||
		!json_string(&answer->root, "next", false, &next, problem))
		return false;
	page->next = next;
	return true;
}

/* Read a page's answer (a QiwiOperationReader) */
static bool
read_test_page(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	char	   *problem = NULL;

	if (!qiwi_read_answer(parse_test_page, resp, op->result, &problem))
		return qiwi_malformed(error, op->context, problem);
	return true;
}

/* The operation asking for the test list's page at cursor (NULL: the first) */
static void
test_page_operation(const void *args, const void *cursor, QiwiOperation *op)
{
	const TestListArgs *list = (const TestListArgs *) args;
	const char **headers = palloc(sizeof(char *) * 2);

	headers[0] = "Accept: application/json";
	headers[1] = psprintf("Authorization: Bearer %s", qiwi_secret_key);
	op->request.method = HTTP_GET;
	op->request.url = cursor ? http_append_query(list->url, "cursor", cursor) : pstrdup(list->url);
	op->request.headers = headers;
	op->request.nheaders = 2;
	op->context = "read the test list";
	op->retry_hint = QIWI_READ_RETRY_HINT;
	op->idempotent = true;
	op->read = read_test_page;
}

/* A 404 means nothing (more) to list, as the Wallet's history says it */
static bool
test_list_ends(const QiwiError *error, int page)
{
	return error->sqlstate == ERRCODE_QIWI_NOT_FOUND;
}

static const QiwiPagedList test_list = {.operation = test_page_operation, .ends_list = test_list_ends};

/* The SRF's first call: the url argument and the result's row type */
static void *
start_test_pages(FunctionCallInfo fcinfo, FuncCallContext *funcctx)
{
	TestListArgs *args = palloc(sizeof(TestListArgs));
	TupleDesc	tupdesc;

	args->url = arg_required_text(fcinfo, 0, "url");
	/* not arg_result_desc: an SRF's fn_extra is its FuncCallContext */
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	funcctx->tuple_desc = BlessTupleDesc(tupdesc);
	return args;
}

/* A row (item, memory): the item, and what the SRF's memory holds, the pager's included */
static Datum
test_page_row(FuncCallContext *funcctx, const void *args, void *item)
{
	Datum		values[2];
	bool		nulls[2] = {false, false};

	values[0] = JsonbPGetDatum((Jsonb *) item);
	values[1] = Int64GetDatum((int64) MemoryContextMemAllocated(funcctx->multi_call_memory_ctx, true));
	return HeapTupleGetDatum(heap_form_tuple(funcctx->tuple_desc, values, nulls));
}

/* qiwi_core_test_pages(url): the test list's items, streamed */
Datum
qiwi_core_test_pages(PG_FUNCTION_ARGS)
{
	return qiwi_pages_srf(fcinfo, &test_list, start_test_pages, test_page_row);
}

/* What the sync's consumer counts and measures, and where it stops or raises */
typedef struct SyncState
{
	int			pages;
	int64		items;
	int64		memory_second;
	int64		memory_last;
	int			raise_at_page;
	int			stop_at_page;
} SyncState;

/* Upsert a page's items into qiwi_core_test_synced (a QiwiPageConsumer) */
static bool
upsert_page(void *arg, const QiwiPage *page)
{
	SyncState  *state = (SyncState *) arg;
	Datum	   *items = palloc(sizeof(Datum) * page->nitems);
	Oid			argtypes[1] = {JSONBARRAYOID};
	Datum		values[1];

	if (page->number == state->raise_at_page)
		ereport(ERROR,
				(errcode(ERRCODE_RAISE_EXCEPTION),
				 errmsg("the test's consumer raised at page %d", page->number)));
	for (int i = 0; i < page->nitems; i++)
		items[i] = JsonbPGetDatum((Jsonb *) page->items[i]);
	values[0] = PointerGetDatum(construct_array(items, page->nitems, JSONBOID, -1, false,
												TYPALIGN_INT));
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO qiwi_core_test_synced (n, page) "
							  "SELECT (i->>'n')::int, (i->>'page')::int FROM unnest($1) i "
							  "ON CONFLICT (n) DO UPDATE SET page = excluded.page",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not upsert page %d", page->number);
	SPI_finish();
	state->pages = page->number;
	state->items += page->nitems;
	/* consume runs in its page's memory, whose parent is the pager's */
	state->memory_last =
		(int64) MemoryContextMemAllocated(MemoryContextGetParent(CurrentMemoryContext), true);
	if (page->number == 2)
		state->memory_second = state->memory_last;
	return page->number != state->stop_at_page;
}

/*
 * qiwi_core_test_sync(url, raise_at_page, stop_at_page): the test list
 * upserted page by page, as a worker's sync would; the pager lives under
 * TopMemoryContext, as in a worker, where what it left would stay.
 */
Datum
qiwi_core_test_sync(PG_FUNCTION_ARGS)
{
	static MemoryContext worker_memory = NULL;
	TestListArgs args = {arg_required_text(fcinfo, 0, "url")};
	SyncState	state = {0, 0, 0, 0, PG_GETARG_INT32(1), PG_GETARG_INT32(2)};
	QiwiError	error;
	MemoryContext caller = CurrentMemoryContext;
	bool		ok;
	TupleDesc	tupdesc = arg_result_desc(fcinfo, 5, "record");
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, true};

	if (worker_memory == NULL)
		worker_memory = AllocSetContextCreate(TopMemoryContext, "qiwi_core_test sync",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(worker_memory);
	MemoryContextSwitchTo(worker_memory);
	ok = qiwi_pages_each(&test_list, &args, upsert_page, &state, &error);
	MemoryContextSwitchTo(caller);
	values[0] = Int32GetDatum(state.pages);
	values[1] = Int64GetDatum(state.items);
	values[2] = Int64GetDatum(state.memory_second);
	values[3] = Int64GetDatum(state.memory_last);
	if (!ok)
	{
		values[4] = CStringGetTextDatum(psprintf("%s: %s", unpack_sql_state(error.sqlstate),
												 error.message));
		nulls[4] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
