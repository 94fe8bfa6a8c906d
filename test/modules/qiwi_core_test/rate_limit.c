/*
 * rate_limit.c
 *		Entry points into the core's rate limiter (ratelimit.c), for
 *		test/t/018_core_rate_limit.pl: a pass for any limit and account, and
 *		GETs sent through the exchange, once and in a batch, with a limit.
 */
#include "core/core.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(qiwi_core_test_rate_pass);
PG_FUNCTION_INFO_V1(qiwi_core_test_rate_limited_get);
PG_FUNCTION_INFO_V1(qiwi_core_test_rate_limited_batch);

/* The limit of the arguments name, requests and window_ms from argno on */
static QiwiRateLimit *
limit_from_args(FunctionCallInfo fcinfo, int argno)
{
	QiwiRateLimit *limit = palloc(sizeof(QiwiRateLimit));

	limit->name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	limit->requests = PG_GETARG_INT32(argno + 2);
	limit->window_ms = PG_GETARG_INT32(argno + 3);
	return limit;
}

/*
 * qiwi_core_test_rate_pass(name, account, requests, window_ms): pass the
 * limit for the account as a SQL call that starts now; when it was let
 * through, in µs of the limiter's clock
 */
Datum
qiwi_core_test_rate_pass(PG_FUNCTION_ARGS)
{
	QiwiRateLimit *limit = limit_from_args(fcinfo, 0);
	char	   *account = text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_INT64(qiwi_rate_pass(limit, account, GetCurrentTimestamp()));
}

/* Reader of any 2xx answer (a QiwiOperationReader) */
static bool
read_anything(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	return true;
}

/* A GET of url with the settings' key, counted for a limit's account */
static void
limited_get(QiwiOperation *op, const char *url, const QiwiRateLimit *limit, const char *account)
{
	const char **headers = palloc(sizeof(char *) * 2);

	memset(op, 0, sizeof(*op));
	headers[0] = "Accept: application/json";
	headers[1] = psprintf("Authorization: Bearer %s", qiwi_secret_key);
	op->request.method = HTTP_GET;
	op->request.url = pstrdup(url);
	op->request.headers = headers;
	op->request.nheaders = 2;
	op->context = "get a test object";
	op->idempotent = true;
	op->read = read_anything;
	op->rate_limit = limit;
	op->rate_account = account;
}

/* "ok" for an answer read, else the SQLSTATE of its QiwiError */
static text *
outcome_text(bool ok, const QiwiError *error)
{
	return cstring_to_text(ok ? "ok" : unpack_sql_state(error->sqlstate));
}

/*
 * qiwi_core_test_rate_limited_get(url, name, account, requests, window_ms):
 * GET url through qiwi_exchange (with its retries) under the limit; "ok"
 * or the SQLSTATE of the failure
 */
Datum
qiwi_core_test_rate_limited_get(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	QiwiRateLimit *limit = limit_from_args(fcinfo, 1);
	QiwiOperation op;
	QiwiError	error;
	bool		ok;

	limited_get(&op, url, limit, text_to_cstring(PG_GETARG_TEXT_PP(2)));
	ok = qiwi_exchange(&op, &error);
	PG_RETURN_TEXT_P(outcome_text(ok, &error));
}

/*
 * qiwi_core_test_rate_limited_batch(url, name, account, requests,
 * window_ms, n, concurrency): n GETs of url in one batch under the limit;
 * each one's outcome, as qiwi_core_test_rate_limited_get's
 */
Datum
qiwi_core_test_rate_limited_batch(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	QiwiRateLimit *limit = limit_from_args(fcinfo, 1);
	char	   *account = text_to_cstring(PG_GETARG_TEXT_PP(2));
	int			n = PG_GETARG_INT32(5);
	QiwiOperation *ops = palloc(sizeof(QiwiOperation) * Max(n, 1));
	HttpResponse *responses = palloc(sizeof(HttpResponse) * Max(n, 1));
	Datum	   *outcomes = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		limited_get(&ops[i], url, limit, account);
	qiwi_exchange_batch(ops, n, PG_GETARG_INT32(6), responses, http_perform_many, NULL, NULL);
	for (int i = 0; i < n; i++)
	{
		QiwiError	error;
		bool		ok = qiwi_exchange_answer(&ops[i], &responses[i], &error);

		outcomes[i] = PointerGetDatum(outcome_text(ok, &error));
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(outcomes, n, TEXTOID, -1, false, TYPALIGN_INT));
}
