/*
 * http.c
 *		The HTTP transport: one libcurl handle per backend, kept alive.
 *
 * The easy handle is driven through a multi handle so that we wait in
 * curl_multi_poll() in short slices and look at PostgreSQL's interrupt
 * flags in between: a query cancel, statement_timeout, pg_terminate_backend
 * or postmaster death ends a hung request at once instead of when the
 * HTTP timeout expires.  Nothing in a libcurl callback can raise an error;
 * failures are recorded and reported after curl returns.  Everything curl
 * allocates is held in statics that are reclaimed at the start of the next
 * request, so an ERROR thrown mid-transfer leaks nothing.
 */
#include "qiwi_kassa.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/pmsignal.h"
#include "utils/wait_event.h"

/* How long one curl_multi_poll() may sleep before we look at interrupts */
#define HTTP_POLL_SLICE_MS	100

typedef struct BodyBuffer
{
	char	   *data;			/* malloc'd; reused from request to request */
	size_t		len;
	size_t		cap;
	bool		too_large;
	bool		out_of_memory;
} BodyBuffer;

static CURLM *http_multi = NULL;
static CURL *http_easy = NULL;
static bool http_easy_attached = false;
static struct curl_slist *http_headers = NULL;
static BodyBuffer http_body = {0};
static char http_errbuf[CURL_ERROR_SIZE];

/* Create the per-backend handles on first use */
static void
http_ensure_handles(void)
{
	if (http_easy != NULL)
		return;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));

	http_multi = curl_multi_init();
	http_easy = curl_easy_init();
	if (http_multi == NULL || http_easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
}

/* Undo whatever an earlier request, possibly interrupted by an ERROR, left */
static void
http_release_transfer(void)
{
	if (http_easy_attached)
	{
		curl_multi_remove_handle(http_multi, http_easy);
		http_easy_attached = false;
	}
	if (http_headers != NULL)
	{
		curl_slist_free_all(http_headers);
		http_headers = NULL;
	}
	http_body.len = 0;
	http_body.too_large = false;
	http_body.out_of_memory = false;
}

/* libcurl write callback: append to the bounded body buffer, never raise */
static size_t
http_write_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	BodyBuffer *buf = (BodyBuffer *) userdata;
	size_t		n = size * nmemb;

	if (buf->len + n > QIWI_MAX_RESPONSE_BYTES)
	{
		buf->too_large = true;
		return 0;
	}
	if (buf->len + n + 1 > buf->cap)
	{
		size_t		newcap = Max(buf->cap * 2, Max(buf->len + n + 1, 4096));
		char	   *p;

		newcap = Min(newcap, QIWI_MAX_RESPONSE_BYTES + 1);
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

/* Append one header to the request's list, failing cleanly on OOM */
static void
http_add_header(const char *header)
{
	struct curl_slist *list = curl_slist_append(http_headers, header);

	if (list == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while building a QIWI request")));
	http_headers = list;
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

#define HTTP_SETOPT(opt, val) http_setopt_check(curl_easy_setopt(http_easy, opt, val), #opt)

/* Name the phase a timed-out transfer was in, from curl's timers */
static const char *
http_timeout_phase(bool https)
{
	curl_off_t	connect_us = 0;
	curl_off_t	request_sent_us = 0;
	curl_off_t	first_byte_us = 0;

	/* a reused connection has no connect time, but it has a pretransfer time */
	curl_easy_getinfo(http_easy, CURLINFO_CONNECT_TIME_T, &connect_us);
	curl_easy_getinfo(http_easy, CURLINFO_PRETRANSFER_TIME_T, &request_sent_us);
	curl_easy_getinfo(http_easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte_us);

	if (request_sent_us == 0)
		return (https && connect_us > 0) ? "the TLS handshake" : "connecting";
	if (first_byte_us == 0)
		return "waiting for the answer";
	return "receiving the answer";
}

/* Classify a finished transfer's libcurl result */
static HttpFailure
http_classify(CURLcode rc)
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
		case CURLE_WRITE_ERROR:
			if (http_body.too_large)
				return HTTP_FAIL_TOO_LARGE;
			return HTTP_FAIL_NETWORK;
		default:
			return HTTP_FAIL_NETWORK;
	}
}

/* Set every option of one request on the reset easy handle */
static void
http_prepare(HttpMethod method, const char *url, const char *bearer,
			 const char *body)
{
	StringInfoData auth;

	/* reset keeps the live connection and TLS session, drops stale options */
	curl_easy_reset(http_easy);
	http_errbuf[0] = '\0';

	HTTP_SETOPT(CURLOPT_URL, url);
	HTTP_SETOPT(CURLOPT_NOSIGNAL, 1L);	/* SIGALRM belongs to PostgreSQL */
#if LIBCURL_VERSION_NUM >= 0x075500
	HTTP_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
	HTTP_SETOPT(CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	/* never follow a redirect: the key must only go to qiwi.api_url */
	HTTP_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SETOPT(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	HTTP_SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (qiwi_ca_file != NULL && qiwi_ca_file[0] != '\0')
		HTTP_SETOPT(CURLOPT_CAINFO, qiwi_ca_file);
	HTTP_SETOPT(CURLOPT_TIMEOUT_MS, (long) qiwi_timeout_ms);
	HTTP_SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long) qiwi_connect_timeout_ms);
	HTTP_SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	HTTP_SETOPT(CURLOPT_ERRORBUFFER, http_errbuf);
	HTTP_SETOPT(CURLOPT_WRITEFUNCTION, http_write_body);
	HTTP_SETOPT(CURLOPT_WRITEDATA, &http_body);
	HTTP_SETOPT(CURLOPT_USERAGENT, "qiwi_kassa/1.0");

	http_add_header("Accept: application/json");
	/* no "Expect: 100-continue" round trip for our small bodies */
	http_add_header("Expect:");

	switch (method)
	{
		case HTTP_GET:
			HTTP_SETOPT(CURLOPT_HTTPGET, 1L);
			break;
		case HTTP_PUT:
		case HTTP_POST:
			HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, method == HTTP_PUT ? "PUT" : "POST");
			HTTP_SETOPT(CURLOPT_POSTFIELDSIZE, (long) (body ? strlen(body) : 0));
			HTTP_SETOPT(CURLOPT_COPYPOSTFIELDS, body ? body : "");
			http_add_header("Content-Type: application/json;charset=UTF-8");
			break;
	}

	initStringInfo(&auth);
	appendStringInfo(&auth, "Authorization: Bearer %s", bearer);
	http_add_header(auth.data);
	explicit_bzero(auth.data, auth.len);
	pfree(auth.data);

	HTTP_SETOPT(CURLOPT_HTTPHEADER, http_headers);
}

/* Abort the transfer and let PostgreSQL report the interrupt it got */
static void
http_handle_interrupts(void)
{
	if (QueryCancelPending || ProcDiePending)
	{
		http_release_transfer();
		CHECK_FOR_INTERRUPTS();
		/* the interrupt was absorbed (e.g. it arrived for an older query) */
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling QIWI request due to user request")));
	}
	if (!PostmasterIsAlive())
	{
		http_release_transfer();
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("terminating QIWI request because the postmaster died")));
	}
	CHECK_FOR_INTERRUPTS();
}

/*
 * Perform one request and fill *response.  Transport failures are reported
 * in response->failure; only interrupts and setup problems raise here.
 */
void
http_perform(HttpMethod method, const char *url, const char *bearer,
			 const char *body, HttpResponse *response)
{
	CURLcode	result = CURLE_OK;
	CURLMcode	mc;
	CURLMsg    *msg;
	int			running = 1;
	int			pending;
	bool		https = (pg_strncasecmp(url, "https:", 6) == 0);

	memset(response, 0, sizeof(*response));

	http_ensure_handles();
	http_release_transfer();
	http_prepare(method, url, bearer, body);

	mc = curl_multi_add_handle(http_multi, http_easy);
	if (mc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not start a QIWI request: %s", curl_multi_strerror(mc))));
	http_easy_attached = true;

	pgstat_report_wait_start(PG_WAIT_EXTENSION);
	for (;;)
	{
		mc = curl_multi_perform(http_multi, &running);
		if (mc != CURLM_OK || running == 0)
			break;
		http_handle_interrupts();
		mc = curl_multi_poll(http_multi, NULL, 0, HTTP_POLL_SLICE_MS, NULL);
		if (mc != CURLM_OK)
			break;
		http_handle_interrupts();
	}
	pgstat_report_wait_end();

	if (mc != CURLM_OK)
	{
		response->failure = HTTP_FAIL_NETWORK;
		response->error = pstrdup(curl_multi_strerror(mc));
		http_release_transfer();
		return;
	}

	while ((msg = curl_multi_info_read(http_multi, &pending)) != NULL)
	{
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == http_easy)
			result = msg->data.result;
	}

	response->failure = http_classify(result);
	if (response->failure == HTTP_OK)
	{
		curl_easy_getinfo(http_easy, CURLINFO_RESPONSE_CODE, &response->status);
		response->body = palloc(http_body.len + 1);
		if (http_body.len > 0)
			memcpy(response->body, http_body.data, http_body.len);
		response->body[http_body.len] = '\0';
		response->body_len = http_body.len;
	}
	else if (response->failure == HTTP_FAIL_TIMEOUT)
		response->error = psprintf("no complete answer within %d ms; timed out while %s",
								   qiwi_timeout_ms, http_timeout_phase(https));
	else if (response->failure == HTTP_FAIL_TOO_LARGE)
		response->error = psprintf("the answer is larger than %d bytes",
								   QIWI_MAX_RESPONSE_BYTES);
	else if (http_body.out_of_memory)
		response->error = pstrdup("out of memory while receiving the answer");
	else
		response->error = pstrdup(http_errbuf[0] != '\0' ? http_errbuf
								  : curl_easy_strerror(result));

	http_release_transfer();
}

/* Percent-encode one URL path segment with libcurl */
char *
http_escape_path_segment(const char *segment)
{
	char	   *escaped;
	char	   *result;

	http_ensure_handles();
	escaped = curl_easy_escape(http_easy, segment, 0);
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
http_url_is_valid(const char *url, bool require_https_or_http)
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
	if (ok && require_https_or_http)
		ok = pg_strcasecmp(scheme, "http") == 0 || pg_strcasecmp(scheme, "https") == 0;
	curl_free(scheme);
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
