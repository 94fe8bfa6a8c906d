/*
 * requester.c
 *		The reconciler's requester, and the queues between them.
 *
 * A round's requests are sent by a second process, the requester, while
 * the reconciler reads and records the answers: one process could not do
 * both at once, and recording takes as long as requesting.  The requester
 * is connected to no database and opens no transaction.  It is started at
 * the first round and kept for the next ones (a process start and new
 * connections to QIWI cost a small round more than it gains): through a
 * queue in a segment of its own it gets, per round, the handle of a
 * dynamic shared memory segment holding the round's requests, and sends
 * each answer back through a queue in that segment.  It ends when the
 * reconciler does (its queue is detached).  If it dies, the answers not
 * yet back count as abandoned: their items stay due and are checked by a
 * later round, which starts another requester.  With no worker slot free,
 * the reconciler sends the round itself.
 */
#include "core/reconciler_internal.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

PGDLLEXPORT void qiwi_requester_main(Datum main_arg);

#define REQUESTER_MAGIC 0x71776b72
#define REQUESTER_QUEUE_BYTES (1024 * 1024)
#define REQUESTER_ORDERS_BYTES 1024
#define REQUESTER_KEY_BATCH 1
#define REQUESTER_KEY_REQUESTS 2
#define REQUESTER_KEY_QUEUE 3
#define REQUESTER_KEY_ORDERS 4

/* A round for the requester, at the start of its segment */
typedef struct RequesterBatch
{
	int			n;
	int			concurrency;
	int			timeout_ms;
	int			connect_timeout_ms;
	bool		has_ca_file;
	char		ca_file[MAXPGPATH];
	Size		requests_bytes;
} RequesterBatch;

/* What precedes an answer's body and error in the queue */
typedef struct RequesterAnswer
{
	int32		index;
	int32		failure;
	int64		status;
	int32		body_len;		/* -1: no body */
	int32		error_len;		/* -1: no error */
} RequesterAnswer;

/* The reconciler's requester, kept across rounds (NULL: none runs) */
static BackgroundWorkerHandle *requester = NULL;

/*
 * A requester died before answering its round: the next round is sent by
 * the reconciler itself, so that a requester that keeps dying (on a
 * request it cannot survive, or a segment it cannot map) never stops the
 * reconciliation; the round after that starts a new requester.
 */
static bool requester_died = false;
static dsm_segment *requester_segment = NULL;
static shm_mq_handle *requester_orders = NULL;

/* Append len bytes to buf at *pos; only count them when buf is NULL */
static void
put_bytes(char *buf, Size *pos, const void *data, Size len)
{
	if (buf != NULL)
		memcpy(buf + *pos, data, len);
	*pos += len;
}

/* Append a string (or NULL): its length (-1 for NULL), then it with its NUL */
static void
put_string(char *buf, Size *pos, const char *s)
{
	int32		len = s == NULL ? -1 : (int32) strlen(s);

	put_bytes(buf, pos, &len, sizeof(len));
	if (s != NULL)
		put_bytes(buf, pos, s, len + 1);
}

/* The next len of the size bytes of buf, in place; an error past the end */
static char *
get_bytes(char *buf, Size size, Size *pos, Size len)
{
	char	   *p = buf + *pos;

	if (len > size - *pos)
		elog(ERROR, "truncated request in the qiwi_kassa requester's segment");
	*pos += len;
	return p;
}

/* The next int32 of the size bytes of buf */
static int32
get_int(char *buf, Size size, Size *pos)
{
	int32		v;

	memcpy(&v, get_bytes(buf, size, pos, sizeof(v)), sizeof(v));
	return v;
}

/* The next string put_string wrote, in place (NULL if none) */
static char *
get_string(char *buf, Size size, Size *pos)
{
	int32		len = get_int(buf, size, pos);
	char	   *s;

	if (len == -1)
		return NULL;
	if (len < 0)
		elog(ERROR, "bad string length in the qiwi_kassa requester's segment");
	s = get_bytes(buf, size, pos, (Size) len + 1);
	if (s[len] != '\0' || strlen(s) != (size_t) len)
		elog(ERROR, "bad string in the qiwi_kassa requester's segment");
	return s;
}

/* Write n requests into buf, or only measure them when buf is NULL; their size */
static Size
put_requests(char *buf, const HttpRequest *requests, int n)
{
	Size		pos = 0;

	for (int i = 0; i < n; i++)
	{
		int32		head[3] = {(int32) requests[i].method, requests[i].nheaders,
							   (int32) requests[i].fresh_connection};

		put_bytes(buf, &pos, head, sizeof(head));
		put_string(buf, &pos, requests[i].url);
		for (int h = 0; h < requests[i].nheaders; h++)
			put_string(buf, &pos, requests[i].headers[h]);
		put_string(buf, &pos, requests[i].body);
		put_string(buf, &pos, requests[i].content_type);
	}
	return pos;
}

/* Read the n requests put_requests wrote into size bytes of buf, in place */
static HttpRequest *
get_requests(char *buf, Size size, int n)
{
	HttpRequest *requests = palloc(sizeof(HttpRequest) * Max(n, 1));
	Size		pos = 0;

	for (int i = 0; i < n; i++)
	{
		int32		method = get_int(buf, size, &pos);
		int32		nheaders = get_int(buf, size, &pos);
		const char **headers;

		/* a header takes four bytes at least */
		if (method < HTTP_GET || method > HTTP_DELETE ||
			nheaders < 0 || (Size) nheaders > (size - pos) / sizeof(int32))
			elog(ERROR, "bad request in the qiwi_kassa requester's segment");
		requests[i].method = (HttpMethod) method;
		requests[i].fresh_connection = get_int(buf, size, &pos) != 0;
		requests[i].url = get_string(buf, size, &pos);
		headers = palloc(sizeof(char *) * Max(nheaders, 1));
		for (int h = 0; h < nheaders; h++)
			headers[h] = get_string(buf, size, &pos);
		requests[i].headers = headers;
		requests[i].nheaders = nheaders;
		requests[i].body = get_string(buf, size, &pos);
		requests[i].content_type = get_string(buf, size, &pos);
		if (requests[i].url == NULL)
			elog(ERROR, "request without a URL in the qiwi_kassa requester's segment");
	}
	return requests;
}

/*
 * Wipe the requests of a round's segment as it is detached, whatever ends
 * it (an on_dsm_detach callback of both processes): they hold credentials
 */
static void
wipe_requests(dsm_segment *seg, Datum arg)
{
	shm_toc    *toc = shm_toc_attach(REQUESTER_MAGIC, dsm_segment_address(seg));
	RequesterBatch *batch;
	char	   *buf;

	if (toc == NULL)
		return;
	batch = shm_toc_lookup(toc, REQUESTER_KEY_BATCH, true);
	buf = shm_toc_lookup(toc, REQUESTER_KEY_REQUESTS, true);
	if (batch != NULL && buf != NULL)
		explicit_bzero(buf, batch->requests_bytes);
}

/* The requester's side of a round */
typedef struct RequesterState
{
	shm_mq_handle *mqh;
	HttpResponse *responses;
} RequesterState;

/*
 * Send the requester's finished answers to the reconciler (an HttpProgress,
 * called between libcurl calls); false once the reconciler is gone
 */
static bool
send_answers(void *arg, const int *finished, int nfinished)
{
	RequesterState *state = (RequesterState *) arg;

	for (int k = 0; k < nfinished; k++)
	{
		HttpResponse *resp = &state->responses[finished[k]];
		RequesterAnswer head;
		shm_mq_iovec iov[3];
		shm_mq_result res;

		head.index = finished[k];
		head.failure = (int32) resp->failure;
		head.status = resp->status;
		head.body_len = resp->body == NULL ? -1 : (int32) resp->body_len;
		head.error_len = resp->error == NULL ? -1 : (int32) strlen(resp->error);
		iov[0].data = (const char *) &head;
		iov[0].len = sizeof(head);
		iov[1].data = resp->body;
		iov[1].len = Max(head.body_len, 0);
		iov[2].data = resp->error;
		iov[2].len = Max(head.error_len, 0);
		/* made visible to the reconciler at the last answer of the call */
		res = shm_mq_sendv(state->mqh, iov, 3, false, k == nfinished - 1);
		if (resp->body != NULL)
			pfree(resp->body);
		if (resp->error != NULL)
			pfree(resp->error);
		resp->body = resp->error = NULL;
		if (res != SHM_MQ_SUCCESS)
			return false;
	}
	return true;
}

/* The requester's round: send the requests in the segment h, answer each */
static void
requester_round(dsm_handle h)
{
	dsm_segment *seg = dsm_attach(h);
	shm_toc    *toc;
	RequesterBatch *batch;
	RequesterState state;
	HttpRequest *requests;
	HttpOptions options;
	shm_mq	   *mq;

	if (seg == NULL)
		return;					/* the reconciler gave up on the round already */
	on_dsm_detach(seg, wipe_requests, (Datum) 0);
	toc = shm_toc_attach(REQUESTER_MAGIC, dsm_segment_address(seg));
	if (toc == NULL)
		elog(ERROR, "bad qiwi_kassa requester segment");
	batch = shm_toc_lookup(toc, REQUESTER_KEY_BATCH, false);
	mq = shm_toc_lookup(toc, REQUESTER_KEY_QUEUE, false);
	shm_mq_set_sender(mq, MyProc);
	state.mqh = shm_mq_attach(mq, seg, NULL);
	requests = get_requests(shm_toc_lookup(toc, REQUESTER_KEY_REQUESTS, false),
							batch->requests_bytes, batch->n);
	options.timeout_ms = batch->timeout_ms;
	options.connect_timeout_ms = batch->connect_timeout_ms;
	options.ca_file = batch->has_ca_file ? batch->ca_file : NULL;
	state.responses = palloc0(sizeof(HttpResponse) * Max(batch->n, 1));
	http_perform_many(requests, batch->n, batch->concurrency, &options, state.responses,
					  send_answers, &state);
	shm_mq_detach(state.mqh);
	dsm_detach(seg);
}

/*
 * The requester (main_arg: the segment of its queue of rounds): sends the
 * rounds it is given until the reconciler is gone
 */
void
qiwi_requester_main(Datum main_arg)
{
	dsm_segment *seg;
	shm_toc    *toc;
	shm_mq	   *mq;
	shm_mq_handle *orders;
	MemoryContext round_context;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* connected to no database: only to be seen in pg_stat_activity */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("qiwi_kassa requester");
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "qiwi_kassa requester");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		proc_exit(0);			/* the reconciler is gone already */
	toc = shm_toc_attach(REQUESTER_MAGIC, dsm_segment_address(seg));
	if (toc == NULL)
		elog(ERROR, "bad qiwi_kassa requester segment");
	mq = shm_toc_lookup(toc, REQUESTER_KEY_ORDERS, false);
	shm_mq_set_receiver(mq, MyProc);
	orders = shm_mq_attach(mq, seg, NULL);
	round_context = AllocSetContextCreate(TopMemoryContext, "qiwi_kassa requester round",
										  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		Size		len;
		void	   *data;
		dsm_handle	h;

		/* waits for a round; detached when the reconciler ends */
		if (shm_mq_receive(orders, &len, &data, false) != SHM_MQ_SUCCESS)
			proc_exit(0);
		if (len != sizeof(h))
			elog(ERROR, "bad message to the qiwi_kassa requester");
		memcpy(&h, data, sizeof(h));
		MemoryContextSwitchTo(round_context);
		requester_round(h);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(round_context);
#ifdef __GLIBC__
		/*
		 * A round's answers and libcurl's and OpenSSL's buffers, freed now,
		 * would stay in glibc's heap, whose high-water mark creeps up round
		 * after round: give them back while the requester waits.
		 */
		malloc_trim(0);
#endif
	}
}

/* Start the requester and its queue of rounds; false if no worker slot is free */
static bool
start_requester(void)
{
	MemoryContext caller_context = MemoryContextSwitchTo(TopMemoryContext);
	shm_toc_estimator e;
	dsm_segment *seg;
	shm_toc    *toc;
	shm_mq	   *mq;

	shm_toc_initialize_estimator(&e);
	shm_toc_estimate_chunk(&e, REQUESTER_ORDERS_BYTES);
	shm_toc_estimate_keys(&e, 1);
	seg = dsm_create(shm_toc_estimate(&e), DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
	{
		MemoryContextSwitchTo(caller_context);
		return false;
	}
	/* kept across rounds and their transactions */
	dsm_pin_mapping(seg);
	toc = shm_toc_create(REQUESTER_MAGIC, dsm_segment_address(seg), shm_toc_estimate(&e));
	mq = shm_mq_create(shm_toc_allocate(toc, REQUESTER_ORDERS_BYTES), REQUESTER_ORDERS_BYTES);
	shm_toc_insert(toc, REQUESTER_KEY_ORDERS, mq);
	shm_mq_set_sender(mq, MyProc);

	/* a later round starts another if it ends */
	requester = launcher_start_worker("qiwi_requester_main", "requester",
									  UInt32GetDatum(dsm_segment_handle(seg)));
	if (requester == NULL)
	{
		dsm_detach(seg);
		MemoryContextSwitchTo(caller_context);
		return false;
	}
	/* with the handle, a requester that dies or never starts detaches the queue */
	requester_orders = shm_mq_attach(mq, seg, requester);
	requester_segment = seg;
	MemoryContextSwitchTo(caller_context);
	return true;
}

/* Stop the requester (if it still runs) and forget it: a later round starts another */
static void
forget_requester(void)
{
	if (requester == NULL)
		return;
	TerminateBackgroundWorker(requester);
	shm_mq_detach(requester_orders);
	dsm_detach(requester_segment);
	pfree(requester);
	requester = NULL;
	requester_orders = NULL;
	requester_segment = NULL;
}

/*
 * Give the round in seg to the requester, starting one if none runs or the
 * one there was has died; false if none can be started
 */
static bool
hand_to_requester(dsm_segment *seg)
{
	dsm_handle	h = dsm_segment_handle(seg);

	for (int attempt = 0; attempt < 2; attempt++)
	{
		if (requester == NULL && !start_requester())
			return false;
		if (shm_mq_send(requester_orders, sizeof(h), &h, false, true) == SHM_MQ_SUCCESS)
			return true;
		forget_requester();
	}
	return false;
}

/* Fill responses[i] from an answer the requester sent; i */
static int
take_answer(const char *data, Size len, int n, HttpResponse *responses)
{
	RequesterAnswer head;
	HttpResponse *resp;

	if (len < sizeof(head))
		elog(ERROR, "short message from the qiwi_kassa requester");
	memcpy(&head, data, sizeof(head));
	if (head.index < 0 || head.index >= n ||
		head.failure < HTTP_OK || head.failure > HTTP_FAIL_ABANDONED ||
		head.body_len < -1 || head.error_len < -1 ||
		len != sizeof(head) + Max(head.body_len, 0) + Max(head.error_len, 0))
		elog(ERROR, "bad message from the qiwi_kassa requester");
	resp = &responses[head.index];
	resp->failure = (HttpFailure) head.failure;
	resp->status = head.status;
	resp->body = head.body_len < 0 ? NULL : pnstrdup(data + sizeof(head), head.body_len);
	resp->body_len = Max(head.body_len, 0);
	resp->error = head.error_len < 0 ? NULL :
		pnstrdup(data + sizeof(head) + Max(head.body_len, 0), head.error_len);
	return head.index;
}

/*
 * A segment holding a round's requests, wiped when it is detached, and the
 * queue of their answers (*mq), received by this process; NULL if no
 * segment is to be had
 */
static dsm_segment *
round_segment(const HttpRequest *requests, int n, int concurrency,
			  const HttpOptions *options, shm_mq **mq)
{
	Size		requests_bytes;
	shm_toc_estimator e;
	dsm_segment *seg;
	shm_toc    *toc;
	RequesterBatch *batch;
	char	   *buf;

	requests_bytes = put_requests(NULL, requests, n);
	shm_toc_initialize_estimator(&e);
	shm_toc_estimate_chunk(&e, sizeof(RequesterBatch));
	shm_toc_estimate_chunk(&e, requests_bytes);
	shm_toc_estimate_chunk(&e, REQUESTER_QUEUE_BYTES);
	shm_toc_estimate_keys(&e, 3);
	seg = dsm_create(shm_toc_estimate(&e), DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
		return NULL;
	toc = shm_toc_create(REQUESTER_MAGIC, dsm_segment_address(seg), shm_toc_estimate(&e));
	batch = shm_toc_allocate(toc, sizeof(RequesterBatch));
	batch->n = n;
	batch->concurrency = concurrency;
	batch->timeout_ms = options->timeout_ms;
	batch->connect_timeout_ms = options->connect_timeout_ms;
	batch->has_ca_file = options->ca_file != NULL;
	strlcpy(batch->ca_file, options->ca_file ? options->ca_file : "", MAXPGPATH);
	batch->requests_bytes = requests_bytes;
	shm_toc_insert(toc, REQUESTER_KEY_BATCH, batch);
	buf = shm_toc_allocate(toc, requests_bytes);
	shm_toc_insert(toc, REQUESTER_KEY_REQUESTS, buf);
	on_dsm_detach(seg, wipe_requests, (Datum) 0);
	put_requests(buf, requests, n);
	*mq = shm_mq_create(shm_toc_allocate(toc, REQUESTER_QUEUE_BYTES), REQUESTER_QUEUE_BYTES);
	shm_toc_insert(toc, REQUESTER_KEY_QUEUE, *mq);
	shm_mq_set_receiver(*mq, MyProc);
	return seg;
}

/*
 * Send a round's requests through the requester while this process records
 * the answers (an HttpBatchPerformer); in this process when no worker slot
 * or segment is to be had.  Answers that never come back are abandoned.
 */
void
requester_perform(const HttpRequest *requests, int n, int concurrency,
				  const HttpOptions *options, HttpResponse *responses,
				  HttpProgress progress, void *arg)
{
	dsm_segment *seg;
	shm_mq	   *mq;
	shm_mq_handle *mqh;
	bool	   *answered;
	int		   *order;
	int			nanswered = 0;
	int			reported = 0;
	bool		go_on = true;

	if (requester_died)
	{
		requester_died = false;
		http_perform_many(requests, n, concurrency, options, responses, progress, arg);
		return;
	}
	seg = round_segment(requests, n, concurrency, options, &mq);
	if (seg == NULL)
	{
		http_perform_many(requests, n, concurrency, options, responses, progress, arg);
		return;
	}
	if (!hand_to_requester(seg))
	{
		dsm_detach(seg);
		http_perform_many(requests, n, concurrency, options, responses, progress, arg);
		return;
	}
	/* with the handle, a requester that dies or never attaches detaches the queue */
	mqh = shm_mq_attach(mq, seg, requester);
	answered = palloc0(sizeof(bool) * Max(n, 1));
	order = palloc(sizeof(int) * Max(n, 1));

	while (nanswered < n)
	{
		Size		len;
		void	   *data;
		shm_mq_result res = shm_mq_receive(mqh, &len, &data, true);

		if (res == SHM_MQ_SUCCESS)
		{
			int			i = take_answer(data, len, n, responses);

			if (!answered[i])
				order[nanswered++] = i;
			answered[i] = true;
			/* a chunk came: record it while the requester goes on */
			if (nanswered - reported < WRITE_CHUNK)
				continue;
		}
		else if (res == SHM_MQ_DETACHED)
			break;
		go_on = progress(arg, order + reported, nanswered - reported);
		reported = nanswered;
		if (!go_on)
			break;
		if (res == SHM_MQ_SUCCESS)
			continue;
		/* nothing new: wait for more */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 DROP_CHECK_INTERVAL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	shm_mq_detach(mqh);
	/* it died, or is still at an abandoned round: the next round starts another */
	if (nanswered < n)
	{
		forget_requester();
		requester_died = go_on;
	}
	dsm_detach(seg);
	for (int i = 0; i < n; i++)
		if (!answered[i])
		{
			responses[i].failure = HTTP_FAIL_ABANDONED;
			responses[i].status = 0;
			responses[i].body = NULL;
			responses[i].body_len = 0;
			responses[i].error = pstrdup(go_on ? "the requester ended before answering" : "abandoned");
			order[nanswered++] = i;
		}
	(void) progress(arg, order + reported, nanswered - reported);
	pfree(answered);
	pfree(order);
}
