/*
 * paging.c
 *		Lists QIWI answers a page at a time (a payment history, ...): the
 *		loop from cursor to cursor, each page's request through
 *		qiwi_exchange (retries, deadlines and error classes apply), and
 *		the memory, of which only the current page is held.  An API says
 *		how to ask for the page at a cursor and how to read a page; it
 *		streams the items from a value-per-call set-returning function
 *		(qiwi_pages_srf) or hands each page to a callback (qiwi_pages_each,
 *		for a worker's sync).  A list asked for by time range may be read
 *		in windows of it (qiwi_window).
 *
 * A page lives in one of two memory contexts, used in turn: the request
 * for the next page is built from the cursor the current page holds, and
 * the current page is freed before that request is sent.
 */
#include "core/core.h"

#include "miscadmin.h"
#include "utils/memutils.h"

/* A list being read: its current page, and where the next one begins */
typedef struct QiwiPager
{
	const QiwiPagedList *list;
	const void *args;			/* the API's, for its operation builder */
	MemoryContext context;		/* holds this struct and the pages' contexts */
	MemoryContext pages[2];		/* the current page's, and the other one */
	int			current;		/* which of pages holds the current page */
	QiwiPage	page;			/* the current page (number 0: none yet) */
	int			next_item;		/* the current page's next item to hand out */
	bool		ended;			/* the current page is the list's last */
} QiwiPager;

/* Make a pager for list in a new context under parent */
static QiwiPager *
pager_create(const QiwiPagedList *list, const void *args, MemoryContext parent)
{
	MemoryContext context = AllocSetContextCreate(parent, "qiwi pager", ALLOCSET_SMALL_SIZES);
	QiwiPager  *pager = MemoryContextAllocZero(context, sizeof(QiwiPager));

	pager->list = list;
	pager->args = args;
	pager->context = context;
	pager->pages[0] = AllocSetContextCreate(context, "qiwi page", ALLOCSET_DEFAULT_SIZES);
	pager->pages[1] = AllocSetContextCreate(context, "qiwi page", ALLOCSET_DEFAULT_SIZES);
	return pager;
}

/*
 * Fetch the page after the current one, which it replaces; false with
 * *error (in the new page's memory) if it failed.  A page without items
 * ends the list whatever cursor it names (a server that kept answering
 * empty pages would otherwise be asked forever), unless the list's
 * after_empty, which moves it forward, says where it goes on; a page whose
 * every item was skipped is not empty, and goes on at its cursor.  Each
 * skipped item's problem is made a sentence naming the page.
 */
static bool
pager_fetch(QiwiPager *pager, QiwiError *error)
{
	int			fresh = 1 - pager->current;
	QiwiPage	page = {pager->page.number + 1, NULL, 0, NULL, NIL};
	QiwiOperation op;
	MemoryContext caller;
	void	   *after_empty = NULL;
	bool		ok;
	ListCell   *lc;

	CHECK_FOR_INTERRUPTS();
	caller = MemoryContextSwitchTo(pager->pages[fresh]);
	memset(&op, 0, sizeof(op));
	pager->list->operation(pager->args, pager->page.next, &op);
	if (pager->list->after_empty != NULL)
		after_empty = pager->list->after_empty(pager->args, pager->page.next);
	op.context = psprintf("%s (page %d)", op.context, page.number);
	op.result = &page;
	/* the request holds what it needs of the cursor: the page before goes */
	MemoryContextReset(pager->pages[pager->current]);
	pager->page.nitems = 0;
	pager->page.next = NULL;
	pager->page.skipped = NIL;
	ok = qiwi_exchange(&op, error);
	foreach(lc, page.skipped)
		lfirst(lc) = psprintf("could not %s wholly: skipped %s", op.context, (char *) lfirst(lc));
	MemoryContextSwitchTo(caller);
	if (!ok && (pager->list->ends_list == NULL || !pager->list->ends_list(error, page.number)))
		return false;
	if (!ok)
		page.nitems = 0;		/* the answer said there is nothing more */
	if (page.nitems == 0 && page.skipped == NIL)
		page.next = after_empty;
	pager->current = fresh;
	pager->page = page;
	pager->next_item = 0;
	pager->ended = page.next == NULL;
	return true;
}

/*
 * The next item into *item (NULL at the end of the list); false with *error
 * if a page failed.  A page's skipped items are each a WARNING: a streaming
 * SELECT does not lose a payment without saying so.
 */
static bool
pager_next(QiwiPager *pager, void **item, QiwiError *error)
{
	ListCell   *lc;

	CHECK_FOR_INTERRUPTS();
	while (pager->next_item >= pager->page.nitems)
	{
		if (pager->ended)
		{
			*item = NULL;
			return true;
		}
		if (!pager_fetch(pager, error))
			return false;
		foreach(lc, pager->page.skipped)
			ereport(WARNING,
					(errcode(ERRCODE_QIWI_MALFORMED),
					 errmsg("%s", (char *) lfirst(lc)),
					 errhint("The rest of the list is read: only this item is missing from the result.")));
	}
	*item = pager->page.items[pager->next_item++];
	return true;
}

/*
 * One call of an API's value-per-call set-returning function over a paged
 * list: the first call checks the arguments (start, in the function's
 * multi-call memory, before any request) and makes the pager there (in
 * funcctx->user_fctx, with a composite result's descriptor in
 * funcctx->tuple_desc); every call returns the next item as item_datum
 * makes it, in the call's memory.  A page's failure raises its error.
 * Called in FROM, PostgreSQL collects every row before the first is used;
 * in the SELECT list, rows stream and a LIMIT stops the requests.
 */
Datum
qiwi_pages_srf(FunctionCallInfo fcinfo, const QiwiPagedList *list, QiwiPagedStart start,
			   QiwiItemDatum item_datum)
{
	FuncCallContext *funcctx;
	QiwiPager  *pager;
	QiwiError	error;
	void	   *item;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext caller;
		void	   *args;
		TupleDesc	tupdesc;

		funcctx = SRF_FIRSTCALL_INIT();
		caller = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		args = start(fcinfo, funcctx);
		/* not arg_result_desc: an SRF's fn_extra is its FuncCallContext */
		if (get_call_result_type(fcinfo, NULL, &tupdesc) == TYPEFUNC_COMPOSITE)
			funcctx->tuple_desc = BlessTupleDesc(tupdesc);
		funcctx->user_fctx = pager_create(list, args, funcctx->multi_call_memory_ctx);
		MemoryContextSwitchTo(caller);
	}
	funcctx = SRF_PERCALL_SETUP();
	pager = (QiwiPager *) funcctx->user_fctx;
	if (!pager_next(pager, &item, &error))
		qiwi_raise(&error);
	if (item == NULL)
		SRF_RETURN_DONE(funcctx);
	SRF_RETURN_NEXT(funcctx, item_datum(funcctx, pager->args, item));
}

/* A copy of a text in context, or NULL */
static char *
copy_text(MemoryContext context, const char *text)
{
	return text ? MemoryContextStrdup(context, text) : NULL;
}

/* Copy a page's error into context, out of the page's memory */
static void
copy_error(QiwiError *error, MemoryContext context)
{
	error->message = copy_text(context, error->message);
	error->detail = copy_text(context, error->detail);
	error->hint = copy_text(context, error->hint);
	error->error_code = copy_text(context, error->error_code);
}

/* Hand each page of the pager's list to consume until either ends; false with *error */
static bool
pager_each(QiwiPager *pager, QiwiPageConsumer consume, void *arg, QiwiError *error,
		   MemoryContext caller)
{
	do
	{
		bool		go_on;

		if (!pager_fetch(pager, error))
		{
			copy_error(error, caller);
			return false;
		}
		if (pager->page.nitems == 0 && pager->page.skipped == NIL)
			continue;			/* ended, or goes on after it */
		/* what consume leaves in memory goes with its page */
		MemoryContextSwitchTo(pager->pages[pager->current]);
		go_on = consume(arg, &pager->page);
		MemoryContextSwitchTo(caller);
		if (!go_on)
			break;
	} while (!pager->ended);
	return true;
}

/*
 * Read a paged list for a worker's sync: each page is handed to consume
 * (in the page's memory, a child of the pager's) until the list ends or
 * consume says false.  A page's failure is no error: false with *error, in
 * the caller's memory.  Interrupts and consume's errors go on up; either
 * way the pager's memory is freed before this returns.
 */
bool
qiwi_pages_each(const QiwiPagedList *list, const void *args, QiwiPageConsumer consume,
				void *arg, QiwiError *error)
{
	MemoryContext caller = CurrentMemoryContext;
	QiwiPager  *pager = pager_create(list, args, caller);
	volatile bool ok = false;

	PG_TRY();
	{
		ok = pager_each(pager, consume, arg, error, caller);
	}
	PG_FINALLY();
	{
		MemoryContextSwitchTo(caller);
		MemoryContextDelete(pager->context);
	}
	PG_END_TRY();
	return ok;
}

/* QIWI's 404 for a page: nothing found there, the list has nothing more (a QiwiPagedList's ends_list) */
bool
qiwi_not_found_ends_list(const QiwiError *error, int page)
{
	return error->sqlstate == ERRCODE_QIWI_NOT_FOUND;
}

/*
 * Read the array member key of a page's answer into the page's items: each
 * element through read_item (NULL: the element itself, as a Jsonb).  False
 * with *problem if the member is not an array, or if an element is refused
 * and not skip; with skip, why it was refused goes to page->skipped.
 */
static bool
page_read(QiwiPage *page, JsonbContainer *answer, const char *key, QiwiItemReader read_item,
		  bool skip, char **problem)
{
	JsonbValue *array = json_field(answer, key);
	JsonbIterator *it;
	JsonbValue	element;
	JsonbIteratorToken token;
	int			n = 0;

	if (array == NULL || array->type != jbvBinary || !JsonContainerIsArray(array->val.binary.data))
	{
		*problem = psprintf("field \"%s\" is %s", key, array == NULL ? "missing" : "not an array");
		return false;
	}
	page->nitems = 0;
	page->skipped = NIL;
	page->items = palloc(sizeof(void *) * Max(1, JsonContainerSize(array->val.binary.data)));
	it = JsonbIteratorInit(array->val.binary.data);
	while ((token = JsonbIteratorNext(&it, &element, true)) != WJB_DONE)
	{
		if (token != WJB_ELEM)
			continue;
		n++;
		if (read_item == NULL)
			page->items[page->nitems] = JsonbValueToJsonb(&element);
		else if (!read_item(&element, &page->items[page->nitems], problem))
		{
			*problem = psprintf("item %d of \"%s\": %s", n, key, *problem);
			if (!skip)
				return false;
			page->skipped = lappend(page->skipped, *problem);
			continue;
		}
		page->nitems++;
	}
	return true;
}

/* Read a page's array member key into its items; an element refused fails the page (page_read) */
bool
qiwi_page_read_array(QiwiPage *page, JsonbContainer *answer, const char *key,
					 QiwiItemReader read_item, char **problem)
{
	return page_read(page, answer, key, read_item, false, problem);
}

/*
 * Read a page's array member key into its items, an element read_item
 * refuses skipped, not the page: why is kept in page->skipped, which the
 * pager raises as a WARNING from a paged SRF and hands to a sync's consumer
 * with the page.  False with *problem if the member is not an array.
 */
bool
qiwi_page_read_items(QiwiPage *page, JsonbContainer *answer, const char *key,
					 QiwiItemReader read_item, char **problem)
{
	return page_read(page, answer, key, read_item, true, problem);
}

/* The time range's whole seconds [since, until] (within a second: that second's) in windows of width */
void
qiwi_windows_init(QiwiTimeWindows *range, TimestampTz since, TimestampTz until, int64 width)
{
	range->since = since;
	range->width = width;
	range->last = until - (until % USECS_PER_SEC + USECS_PER_SEC) % USECS_PER_SEC;
	range->first = since - (since % USECS_PER_SEC + USECS_PER_SEC) % USECS_PER_SEC;
	range->first = Min(range->first < since ? range->first + USECS_PER_SEC : range->first, range->last);
}

/* The bounds of window n of a range (0: the newest); false when the range has no such window */
bool
qiwi_window(const QiwiTimeWindows *range, int n, TimestampTz *start, TimestampTz *end)
{
	*end = range->last - n * (range->width + USECS_PER_SEC);
	*start = Max(range->first, *end - range->width);
	return *end >= range->first;
}
