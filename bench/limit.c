/*
 * limit.c
 *		The floor for qiwi_bill_status: the same GET requests, made by a C
 *		program with one reused libcurl handle (keep-alive, TLS session
 *		reuse), the same options, and nothing else.
 *
 *		limit URL_PREFIX COUNT CA_FILE BEARER
 *		requests URL_PREFIX1 .. URL_PREFIXCOUNT, prints the seconds taken
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

/* Keep the body (as the extension does) in a growing buffer */
typedef struct Body
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Body;

/* libcurl write callback */
static size_t
write_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Body	   *b = userdata;
	size_t		n = size * nmemb;

	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		b->data = realloc(b->data, b->cap);
		if (b->data == NULL)
			return 0;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	return n;
}

/* Seconds since an arbitrary point */
static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	CURL	   *curl;
	struct curl_slist *headers = NULL;
	Body		body = {0};
	char		url[1024];
	char		auth[1024];
	long		count;
	double		start;

	if (argc != 5)
	{
		fprintf(stderr, "usage: %s URL_PREFIX COUNT CA_FILE BEARER\n", argv[0]);
		return 2;
	}
	count = atol(argv[2]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	curl = curl_easy_init();
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", argv[4]);
	headers = curl_slist_append(headers, "Accept: application/json");
	headers = curl_slist_append(headers, auth);

	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(curl, CURLOPT_CAINFO, argv[3]);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);

	start = now_seconds();
	for (long i = 1; i <= count; i++)
	{
		long		status = 0;
		CURLcode	rc;

		snprintf(url, sizeof(url), "%s%ld", argv[1], i);
		curl_easy_setopt(curl, CURLOPT_URL, url);
		body.len = 0;
		rc = curl_easy_perform(curl);
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		if (rc != CURLE_OK || status != 200)
		{
			fprintf(stderr, "request %ld failed: %s, HTTP %ld\n", i, curl_easy_strerror(rc), status);
			return 1;
		}
	}
	printf("%.3f\n", now_seconds() - start);

	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	free(body.data);
	curl_global_cleanup();
	return 0;
}
