/*
 * multi.c
 *		The ceiling for the reconciler: the same GET requests, made by a C
 *		program with one libcurl multi handle and CONCURRENCY kept-alive easy
 *		handles, each with the reconciler's options, and nothing else.
 *
 *		multi URL_PREFIX COUNT CONCURRENCY CA_FILE BEARER [URL_SUFFIX]
 *		requests URL_PREFIX1URL_SUFFIX .. URL_PREFIXCOUNTURL_SUFFIX, prints
 *		"seconds|failed"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

/* One easy handle, its body and the request it carries */
typedef struct Slot
{
	CURL	   *easy;
	char	   *data;
	size_t		len;
	size_t		cap;
	char		url[1024];
} Slot;

/* libcurl write callback: keep the body, as the extension does */
static size_t
write_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Slot	   *s = userdata;
	size_t		n = size * nmemb;

	if (s->len + n + 1 > s->cap)
	{
		s->cap = (s->len + n + 1) * 2;
		s->data = realloc(s->data, s->cap);
		if (s->data == NULL)
			return 0;
	}
	memcpy(s->data + s->len, ptr, n);
	s->len += n;
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
	CURLM	   *multi;
	Slot	   *slots;
	struct curl_slist *headers = NULL;
	char		auth[1024];
	long		count;
	long		concurrency;
	long		next = 1;
	long		done = 0;
	long		failed = 0;
	double		start;
	const char *suffix = argc == 7 ? argv[6] : "";

	if (argc != 6 && argc != 7)
	{
		fprintf(stderr, "usage: %s URL_PREFIX COUNT CONCURRENCY CA_FILE BEARER [URL_SUFFIX]\n", argv[0]);
		return 2;
	}
	count = atol(argv[2]);
	concurrency = atol(argv[3]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, concurrency);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", argv[5]);
	headers = curl_slist_append(headers, "Expect:");
	headers = curl_slist_append(headers, "Accept: application/json");
	headers = curl_slist_append(headers, auth);
	slots = calloc(concurrency, sizeof(Slot));
	for (long i = 0; i < concurrency; i++)
	{
		CURL	   *e = curl_easy_init();

		slots[i].easy = e;
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(e, CURLOPT_CAINFO, argv[4]);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
		curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &slots[i]);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &slots[i]);
	}

	start = now_seconds();
	for (long i = 0; i < concurrency && next <= count; i++, next++)
	{
		snprintf(slots[i].url, sizeof(slots[i].url), "%s%ld%s", argv[1], next, suffix);
		curl_easy_setopt(slots[i].easy, CURLOPT_URL, slots[i].url);
		curl_multi_add_handle(multi, slots[i].easy);
	}
	while (done < count)
	{
		int			running;
		int			pending;
		CURLMsg    *msg;

		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &pending)) != NULL)
		{
			Slot	   *s;
			long		status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
			curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result != CURLE_OK || status != 200)
				failed++;
			done++;
			curl_multi_remove_handle(multi, s->easy);
			s->len = 0;
			if (next <= count)
			{
				snprintf(s->url, sizeof(s->url), "%s%ld%s", argv[1], next++, suffix);
				curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
				curl_multi_add_handle(multi, s->easy);
			}
		}
		if (done < count)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	printf("%.3f|%ld\n", now_seconds() - start, failed);

	for (long i = 0; i < concurrency; i++)
	{
		curl_easy_cleanup(slots[i].easy);
		free(slots[i].data);
	}
	free(slots);
	curl_slist_free_all(headers);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return failed == 0 ? 0 : 1;
}
