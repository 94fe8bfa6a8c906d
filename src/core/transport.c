/*
 * transport.c
 *		The HTTP transport: kept-alive libcurl handles driven by one multi
 *		handle per process.  It knows nothing of QIWI: a request carries its
 *		method, URL, headers, body and content type, a batch its options.
 *
 * A SQL call sends one request, the reconciler many at once; both go
 * through http_perform_many(), which waits in curl_multi_poll() in short
 * slices and looks at PostgreSQL's interrupt flags in between: a query
 * cancel, statement_timeout, pg_terminate_backend or postmaster death ends
 * hung requests at once instead of when the HTTP timeout expires.  The multi
 * handle's connection cache keeps connections and TLS sessions alive from
 * call to call.  Nothing in a libcurl callback can raise an error; failures
 * are recorded and reported after curl returns.  Everything curl allocates
 * is held in statics that are reclaimed at the start of the next request,
 * so an ERROR thrown mid-transfer leaks nothing.
 */
#include "core/core.h"

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "common/base64.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/pmsignal.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

/* How long one curl_multi_poll() may sleep before we look at interrupts */
#define HTTP_POLL_SLICE_MS	100

/* Most transfers in flight at once (qiwi.reconcile_concurrency's maximum) */
#define HTTP_MAX_SLOTS		256

typedef struct BodyBuffer
{
	char	   *data;			/* malloc'd; reused from request to request */
	size_t		len;
	size_t		cap;
	bool		too_large;
	bool		out_of_memory;
} BodyBuffer;

/* One easy handle of the pool, with what its current transfer needs */
typedef struct HttpSlot
{
	CURL	   *easy;
	bool		attached;		/* added to the multi handle */
	int			request;		/* index of the request it carries, or -1 */
	struct curl_slist *headers;
	BodyBuffer	body;
	char		errbuf[CURL_ERROR_SIZE];
	bool		configured;		/* the options of every request are set */
	char		ca_file[MAXPGPATH];	/* the qiwi.ca_file they were set for */
} HttpSlot;

static CURLM *http_multi = NULL;
static HttpSlot *http_slots = NULL;	/* HTTP_MAX_SLOTS, in TopMemoryContext */
static int	http_nslots = 0;	/* how many have an easy handle */

/* Create the multi handle and the slot array on first use */
static void
http_ensure_multi(void)
{
	if (http_multi != NULL)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));
	http_slots = MemoryContextAllocZero(TopMemoryContext, sizeof(HttpSlot) * HTTP_MAX_SLOTS);
	http_multi = curl_multi_init();
	if (http_multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
}

/* Make sure the first n slots have an easy handle */
static void
http_ensure_slots(int n)
{
	http_ensure_multi();
	for (; http_nslots < n; http_nslots++)
	{
		HttpSlot   *slot = &http_slots[http_nslots];

		slot->easy = curl_easy_init();
		if (slot->easy == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl handle")));
		slot->request = -1;
	}
}

/* Undo whatever a slot's last transfer, possibly cut short by an ERROR, left */
static void
http_release_slot(HttpSlot *slot)
{
	if (slot->attached)
	{
		curl_multi_remove_handle(http_multi, slot->easy);
		slot->attached = false;
	}
	if (slot->headers != NULL)
	{
		/* libcurl copied the header lines: wipe the credentials in the copies */
		for (struct curl_slist *h = slot->headers; h != NULL; h = h->next)
			if (pg_strncasecmp(h->data, "Authorization:", 14) == 0)
				explicit_bzero(h->data, strlen(h->data));
		curl_slist_free_all(slot->headers);
		slot->headers = NULL;
	}
	slot->request = -1;
	slot->body.len = 0;
	slot->body.too_large = false;
	slot->body.out_of_memory = false;
}

/* Release every slot */
static void
http_release_all(void)
{
	for (int i = 0; i < http_nslots; i++)
		http_release_slot(&http_slots[i]);
}

/* libcurl write callback: append to the bounded body buffer, never raise */
static size_t
http_write_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	BodyBuffer *buf = (BodyBuffer *) userdata;
	size_t		n = size * nmemb;

	if (buf->len + n > HTTP_MAX_RESPONSE_BYTES)
	{
		buf->too_large = true;
		return 0;
	}
	if (buf->len + n + 1 > buf->cap)
	{
		size_t		newcap = Max(buf->cap * 2, Max(buf->len + n + 1, 4096));
		char	   *p;

		newcap = Min(newcap, HTTP_MAX_RESPONSE_BYTES + 1);
		p = realloc(buf->data, newcap);
		if (p == NULL)
		{
			buf->out_of_memory = true;
			return 0;
		}
		buf->data = p;
		buf->cap = newcap;
	}
	memcpy(buf->data + buf->len, ptr, n);
	buf->len += n;
	return n;
}

/* Append one header to a slot's list, failing cleanly on OOM */
static void
http_add_header(HttpSlot *slot, const char *header)
{
	struct curl_slist *list = curl_slist_append(slot->headers, header);

	if (list == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while building a QIWI request")));
	slot->headers = list;
}

/* Set one curl option; a failure here is a build problem, not a network one */
static void
http_setopt_check(CURLcode rc, const char *option)
{
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not set libcurl option %s: %s",
						option, curl_easy_strerror(rc))));
}

#define HTTP_SETOPT(easy, opt, val) http_setopt_check(curl_easy_setopt(easy, opt, val), #opt)

/* Name the phase a timed-out transfer was in, from curl's timers */
static const char *
http_timeout_phase(CURL *easy, bool https)
{
	curl_off_t	connect_us = 0;
	curl_off_t	request_sent_us = 0;
	curl_off_t	first_byte_us = 0;

	/* a reused connection has no connect time, but it has a pretransfer time */
	curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect_us);
	curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &request_sent_us);
	curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte_us);

	if (request_sent_us == 0)
		return (https && connect_us > 0) ? "the TLS handshake" : "connecting";
	if (first_byte_us == 0)
		return "waiting for the answer";
	return "receiving the answer";
}

/* Classify a finished transfer's libcurl result */
static HttpFailure
http_classify(CURLcode rc, const BodyBuffer *body)
{
	switch (rc)
	{
		case CURLE_OK:
			return HTTP_OK;
		case CURLE_OPERATION_TIMEDOUT:
			return HTTP_FAIL_TIMEOUT;
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_CRL_BADFILE:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
		case CURLE_SSL_ENGINE_INITFAILED:
		case CURLE_USE_SSL_FAILED:
			return HTTP_FAIL_TLS;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT:
			return HTTP_FAIL_CONNECT;
		case CURLE_WRITE_ERROR:
			if (body->too_large)
				return HTTP_FAIL_TOO_LARGE;
			return HTTP_FAIL_NETWORK;
		default:
			return HTTP_FAIL_NETWORK;
	}
}

/*
 * Set the options that are the same for every request a slot carries: on a
 * new handle, and again after a reset when qiwi.ca_file changed (only a
 * reset gives libcurl's default trust store back).
 */
static void
http_configure(HttpSlot *slot, const HttpOptions *options)
{
	CURL	   *easy = slot->easy;
	const char *ca_file = options->ca_file != NULL ? options->ca_file : "";

	/* reset keeps nothing but the handle; connections live in the multi */
	curl_easy_reset(easy);
	slot->configured = false;
	HTTP_SETOPT(easy, CURLOPT_NOSIGNAL, 1L);	/* SIGALRM belongs to PostgreSQL */
#if LIBCURL_VERSION_NUM >= 0x075500
	HTTP_SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	HTTP_SETOPT(easy, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	/* never follow a redirect: credentials must only go where they were meant to */
	HTTP_SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SETOPT(easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	HTTP_SETOPT(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SETOPT(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file[0] != '\0')
		HTTP_SETOPT(easy, CURLOPT_CAINFO, ca_file);
	HTTP_SETOPT(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	HTTP_SETOPT(easy, CURLOPT_ERRORBUFFER, slot->errbuf);
	HTTP_SETOPT(easy, CURLOPT_WRITEFUNCTION, http_write_body);
	HTTP_SETOPT(easy, CURLOPT_WRITEDATA, &slot->body);
	HTTP_SETOPT(easy, CURLOPT_PRIVATE, slot);
	HTTP_SETOPT(easy, CURLOPT_USERAGENT, "qiwi_kassa/" QIWI_KASSA_VERSION);
	strlcpy(slot->ca_file, ca_file, sizeof(slot->ca_file));
	slot->configured = true;
}

/* A method's name on the wire */
static const char *
http_method_name(HttpMethod method)
{
	switch (method)
	{
		case HTTP_GET:
			return "GET";
		case HTTP_PUT:
			return "PUT";
		case HTTP_POST:
			return "POST";
		case HTTP_PATCH:
			return "PATCH";
		case HTTP_DELETE:
			break;
	}
	return "DELETE";
}

/*
 * Set what one request needs on a slot's handle: its URL, timeouts, method,
 * body and headers; the rest was set once (http_configure).
 */
static void
http_prepare(HttpSlot *slot, const HttpRequest *req, const HttpOptions *options)
{
	CURL	   *easy = slot->easy;
	const char *ca_file = options->ca_file != NULL ? options->ca_file : "";

	if (!slot->configured || strcmp(slot->ca_file, ca_file) != 0)
		http_configure(slot, options);
	slot->errbuf[0] = '\0';

	HTTP_SETOPT(easy, CURLOPT_URL, req->url);
	HTTP_SETOPT(easy, CURLOPT_TIMEOUT_MS, (long) options->timeout_ms);
	HTTP_SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) options->connect_timeout_ms);
	HTTP_SETOPT(easy, CURLOPT_FRESH_CONNECT, req->fresh_connection ? 1L : 0L);

	/* no "Expect: 100-continue" round trip for our small bodies (GET has none) */
	if (req->method != HTTP_GET)
		http_add_header(slot, "Expect:");
	for (int i = 0; i < req->nheaders; i++)
		http_add_header(slot, req->headers[i]);

	switch (req->method)
	{
		case HTTP_GET:
			/* a PUT before on this handle left its method behind */
			HTTP_SETOPT(easy, CURLOPT_CUSTOMREQUEST, (char *) NULL);
			HTTP_SETOPT(easy, CURLOPT_HTTPGET, 1L);
			break;
		case HTTP_PUT:
		case HTTP_POST:
		case HTTP_PATCH:
		case HTTP_DELETE:
			/* a DELETE carries its body like a PUT (Payin's DELETE tokens does) */
			HTTP_SETOPT(easy, CURLOPT_CUSTOMREQUEST, http_method_name(req->method));
			HTTP_SETOPT(easy, CURLOPT_POSTFIELDSIZE, (long) (req->body ? strlen(req->body) : 0));
			HTTP_SETOPT(easy, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
			if (req->content_type != NULL)
				http_add_header(slot, psprintf("Content-Type: %s", req->content_type));
			break;
	}

	HTTP_SETOPT(easy, CURLOPT_HTTPHEADER, slot->headers);
}

/* Abort the transfers and let PostgreSQL report the interrupt it got */
static void
http_handle_interrupts(void)
{
	if (QueryCancelPending || ProcDiePending)
	{
		http_release_all();
		CHECK_FOR_INTERRUPTS();
		/* the interrupt was absorbed (e.g. it arrived for an older query) */
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling QIWI request due to user request")));
	}
	if (!PostmasterIsAlive())
	{
		http_release_all();
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("terminating QIWI request because the postmaster died")));
	}
	CHECK_FOR_INTERRUPTS();
}

/* Fill a request's response from its finished slot */
static void
http_finish(HttpSlot *slot, const HttpRequest *req, const HttpOptions *options,
			CURLcode result, HttpResponse *response)
{
	bool		https = (pg_strncasecmp(req->url, "https:", 6) == 0);

	memset(response, 0, sizeof(*response));
	response->failure = http_classify(result, &slot->body);
	if (response->failure == HTTP_OK)
	{
		curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &response->status);
		response->body = palloc(slot->body.len + 1);
		if (slot->body.len > 0)
			memcpy(response->body, slot->body.data, slot->body.len);
		response->body[slot->body.len] = '\0';
		response->body_len = slot->body.len;
	}
	else if (response->failure == HTTP_FAIL_TIMEOUT)
		response->error = psprintf("no complete answer within %d ms; timed out while %s",
								   options->timeout_ms, http_timeout_phase(slot->easy, https));
	else if (response->failure == HTTP_FAIL_TOO_LARGE)
		response->error = psprintf("the answer is larger than %d bytes",
								   HTTP_MAX_RESPONSE_BYTES);
	else if (slot->body.out_of_memory)
		response->error = pstrdup("out of memory while receiving the answer");
	else
		response->error = pstrdup(slot->errbuf[0] != '\0' ? slot->errbuf
								  : curl_easy_strerror(result));
}

/* Fail request i with a message, and count it finished */
static void
http_fail_one(int i, HttpFailure failure, const char *message, HttpResponse *responses,
			  int *finished_order, int *finished)
{
	memset(&responses[i], 0, sizeof(HttpResponse));
	responses[i].failure = failure;
	responses[i].error = pstrdup(message);
	finished_order[(*finished)++] = i;
}

/* Fail the requests in flight and those never sent (from next on) the same way */
static void
http_fail_unfinished(int concurrency, int next, int n, HttpFailure failure, const char *message,
					 HttpResponse *responses, int *finished_order, int *finished)
{
	for (int s = 0; s < concurrency; s++)
		if (http_slots[s].request >= 0)
		{
			http_fail_one(http_slots[s].request, failure, message, responses,
						  finished_order, finished);
			http_release_slot(&http_slots[s]);
		}
	for (int i = next; i < n; i++)
		http_fail_one(i, failure, message, responses, finished_order, finished);
}

/*
 * Tell progress (if any) which requests finished since it was last told,
 * outside the wait event: it may write them down.  Its answer.
 */
static bool
http_report_progress(HttpProgress progress, void *arg, const int *finished_order,
					 int *reported, int finished)
{
	bool		go_on;
	int			from = *reported;

	if (progress == NULL)
		return true;
	*reported = finished;
	pgstat_report_wait_end();
	go_on = progress(arg, finished_order + from, finished - from);
	pgstat_report_wait_start(PG_WAIT_EXTENSION);
	return go_on;
}

/*
 * Perform n requests, at most `concurrency` at a time, and fill responses[i]
 * for each.  Transport failures are reported in the responses; only
 * interrupts and setup problems raise here.  If progress is given, it is
 * told before each wait which requests finished (while the others are in
 * flight); when it says no, the requests not yet finished fail.
 */
void
http_perform_many(const HttpRequest *requests, int n, int concurrency,
				  const HttpOptions *options, HttpResponse *responses,
				  HttpProgress progress, void *arg)
{
	int			next = 0;
	int			in_flight = 0;
	int			finished = 0;
	int			reported = 0;
	int		   *finished_order = palloc(sizeof(int) * Max(n, 1));

	concurrency = Max(1, Min(Min(concurrency, n), HTTP_MAX_SLOTS));
	http_ensure_slots(concurrency);
	http_release_all();
	curl_multi_setopt(http_multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) concurrency);

	pgstat_report_wait_start(PG_WAIT_EXTENSION);
	while (finished < n)
	{
		CURLMcode	mc;
		CURLMsg    *msg;
		int			running;
		int			pending;

		/* fill the free slots */
		for (int s = 0; s < concurrency && next < n; s++)
		{
			HttpSlot   *slot = &http_slots[s];

			if (slot->request >= 0)
				continue;
			http_prepare(slot, &requests[next], options);
			if (curl_multi_add_handle(http_multi, slot->easy) != CURLM_OK)
				ereport(ERROR,
						(errcode(ERRCODE_SYSTEM_ERROR),
						 errmsg("could not start a QIWI request")));
			slot->attached = true;
			slot->request = next++;
			in_flight++;
		}

		mc = curl_multi_perform(http_multi, &running);
		while (mc == CURLM_OK && (msg = curl_multi_info_read(http_multi, &pending)) != NULL)
		{
			HttpSlot   *slot;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &slot);
			http_finish(slot, &requests[slot->request], options, msg->data.result,
						&responses[slot->request]);
			finished_order[finished] = slot->request;
			http_release_slot(slot);
			in_flight--;
			finished++;
		}
		if (mc != CURLM_OK)
		{
			http_fail_unfinished(concurrency, next, n, HTTP_FAIL_NETWORK,
								 curl_multi_strerror(mc), responses, finished_order, &finished);
			break;
		}
		if (finished == n)
			break;
		if (next < n && in_flight < concurrency)
			continue;			/* refill the freed slots before waiting */

		http_handle_interrupts();
		if (!http_report_progress(progress, arg, finished_order, &reported, finished))
		{
			/* the requests still in flight or never sent are marked failed */
			http_fail_unfinished(concurrency, next, n, HTTP_FAIL_ABANDONED, "abandoned",
								 responses, finished_order, &finished);
			break;
		}
		mc = curl_multi_poll(http_multi, NULL, 0, HTTP_POLL_SLICE_MS, NULL);
		if (mc != CURLM_OK)
		{
			http_fail_unfinished(concurrency, next, n, HTTP_FAIL_NETWORK,
								 curl_multi_strerror(mc), responses, finished_order, &finished);
			break;
		}
		http_handle_interrupts();
	}
	/* the last ones, failed ones included */
	(void) http_report_progress(progress, arg, finished_order, &reported, finished);
	pgstat_report_wait_end();
	pfree(finished_order);
}

/* Perform one request */
void
http_perform(const HttpRequest *request, const HttpOptions *options, HttpResponse *response)
{
	http_perform_many(request, 1, 1, options, response, NULL, NULL);
}

/* Percent-encode one URL path segment with libcurl */
char *
http_escape_path_segment(const char *segment)
{
	char	   *escaped;
	char	   *result;

	/* what libcurl leaves as it is (RFC 3986's unreserved), as it is */
	if (segment[strspn(segment, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")] == '\0')
		return pstrdup(segment);
	/* curl_easy_escape ignores its handle since curl 7.82 */
	http_ensure_slots(1);
	escaped = curl_easy_escape(http_slots[0].easy, segment, 0);
	if (escaped == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while escaping a URL")));
	result = pstrdup(escaped);
	curl_free(escaped);
	return result;
}

/* Is this an absolute URL that libcurl accepts, with scheme http or https? */
bool
http_url_is_valid(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	bool		ok;

	if (u == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while checking a URL")));
	ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK;
	if (ok)
		ok = pg_strcasecmp(scheme, "http") == 0 || pg_strcasecmp(scheme, "https") == 0;
	curl_free(scheme);
	curl_url_cleanup(u);
	return ok;
}

/*
 * Is url https, or http to this machine (a sandbox, a local proxy)?  A key
 * sent over plain http to anywhere else travels in clear.
 */
bool
http_url_is_secure(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	bool		ok = false;

	if (u == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while checking a URL")));
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		ok = pg_strcasecmp(scheme, "https") == 0 ||
			(pg_strcasecmp(scheme, "http") == 0 &&
			 (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0 ||
			  pg_strcasecmp(host, "localhost") == 0));
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* Return url with name=value (value percent-encoded) added to its query */
char *
http_append_query(const char *url, const char *name, const char *value)
{
	CURLU	   *u = curl_url();
	char	   *param;
	char	   *joined = NULL;
	char	   *result;
	CURLUcode	rc;

	if (u == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while building a URL")));
	param = psprintf("%s=%s", name, value);
	rc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_set(u, CURLUPART_QUERY, param,
						  CURLU_APPENDQUERY | CURLU_URLENCODE);
	if (rc == CURLUE_OK)
		rc = curl_url_get(u, CURLUPART_URL, &joined, 0);
	curl_url_cleanup(u);
	pfree(param);
	if (rc != CURLUE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not add %s to the URL \"%s\": %s",
						name, url, curl_url_strerror(rc))));
	result = pstrdup(joined);
	curl_free(joined);
	return result;
}

/*
 * Append name=value to an application/x-www-form-urlencoded body, both
 * percent-encoded by libcurl (UTF-8 bytes as they are; an empty value
 * stays: "name=")
 */
void
http_append_form_field(StringInfo form, const char *name, const char *value)
{
	if (form->len > 0)
		appendStringInfoChar(form, '&');
	appendStringInfoString(form, http_escape_path_segment(name));
	appendStringInfoChar(form, '=');
	appendStringInfoString(form, http_escape_path_segment(value));
}

/*
 * An Authorization header line: "Bearer <secret>" (user NULL), or "Basic"
 * with base64 of user:secret (RFC 7617).  The caller's operation wipes it
 * once sent; the intermediate user:secret is wiped here.
 */
char *
http_authorization(const char *scheme, const char *user, const char *secret)
{
	char	   *pair;
	char	   *encoded;
	int			len;
	int			encoded_len;
	char	   *header;

	if (user == NULL)
		return psprintf("Authorization: %s %s", scheme, secret);
	pair = psprintf("%s:%s", user, secret);
	len = strlen(pair);
	encoded = palloc(pg_b64_enc_len(len) + 1);
	encoded_len = pg_b64_encode(pair, len, encoded, pg_b64_enc_len(len));
	explicit_bzero(pair, len);
	if (encoded_len < 0)
		elog(ERROR, "could not encode the credentials in base64");
	encoded[encoded_len] = '\0';
	header = psprintf("Authorization: %s %s", scheme, encoded);
	explicit_bzero(encoded, encoded_len);
	return header;
}

/*
 * Is value (len bytes, an Authorization header's value as received) Basic
 * with the base64 of user:secret?  The scheme in any case, one space, then
 * exactly the base64 expected (a line break inside is refused); constant
 * time in what is compared, and what was built to compare with is wiped.
 */
bool
http_basic_authorization_matches(const char *user, const char *secret, const char *value, int len)
{
	char	   *expected = http_authorization("Basic", user, secret);
	const char *encoded = expected + strlen("Authorization: Basic ");
	int			encoded_len = strlen(encoded);
	bool		matches;

	matches = len == 6 + encoded_len && pg_strncasecmp(value, "Basic ", 6) == 0 &&
		CRYPTO_memcmp(value + 6, encoded, encoded_len) == 0;
	explicit_bzero(expected, strlen(expected));
	return matches;
}
