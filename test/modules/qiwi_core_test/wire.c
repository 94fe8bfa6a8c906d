/*
 * wire.c
 *		Entry points into the core's wire (src/core/wire.c, exchange.c): a
 *		call built from a WireFormat, the way the next APIs declare theirs
 *		(Basic authorization and form bodies as Pull's, an envelope of
 *		result codes as Pull's, 403 and 423 as Wallet's), sent through
 *		qiwi_exchange to the sandbox's test endpoints.  The default
 *		merchant's qiwi.api_url, qiwi.site_id (the Basic login) and secret
 *		key (the token, or the Basic password) stand for an API's options.
 */
#include "core/core.h"
#include "bill/bill.h"

#include "catalog/pg_type_d.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

/* Pull's envelope: {"response":{"result_code":N,"description":...}} */
static const char *const pull_code_fields[] = {"result_code", NULL};
static const char *const pull_text_fields[] = {"description", NULL};
static const QiwiErrorCode pull_codes[] = {
	{"5", ERRCODE_QIWI_INVALID_REQUEST, false},
	{"13", ERRCODE_QIWI_SERVER_ERROR, true},
	{"78", ERRCODE_QIWI_FORBIDDEN, false},
	{"150", ERRCODE_QIWI_AUTHENTICATION, false},
	{"210", ERRCODE_QIWI_NOT_FOUND, false},
	{"300", ERRCODE_QIWI_SERVER_ERROR, true},
	{NULL}
};
static const QiwiErrorFormat pull_errors = {
	.envelope = "response",
	.code_fields = pull_code_fields,
	.text_fields = pull_text_fields,
	.success_code = "0",
	.codes = pull_codes,
};

/* Wallet's errors: a 423 block lasts 5 minutes from the answer's dateTime */
static const char *const wallet_code_fields[] = {"errorCode", "code", NULL};
static const char *const wallet_text_fields[] = {"userMessage", "description", "message", NULL};
static const QiwiErrorFormat wallet_errors = {
	.code_fields = wallet_code_fields,
	.text_fields = wallet_text_fields,
	.trace_field = "traceId",
	.blocked_since_field = "dateTime",
	.block_seconds = 300,
};

/* The same with a block of one second, to see the exchange wait it out */
static const QiwiErrorFormat short_block_errors = {
	.code_fields = wallet_code_fields,
	.text_fields = wallet_text_fields,
	.blocked_since_field = "dateTime",
	.block_seconds = 1,
};

/* Reader of any 2xx answer: its body, as text (a QiwiOperationReader) */
static bool
read_body(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	*(char **) op->result = pnstrdup(resp->body, resp->body_len);
	return true;
}

/* The HTTP method named by text */
static HttpMethod
method_named(const char *name)
{
	static const char *const names[] = {"GET", "PUT", "POST", "PATCH", "DELETE", NULL};
	static const HttpMethod methods[] = {HTTP_GET, HTTP_PUT, HTTP_POST, HTTP_PATCH, HTTP_DELETE};

	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return methods[i];
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown HTTP method \"%s\"", name)));
	pg_unreachable();
}

/* The error format named by text: json, envelope, wallet or short_block */
static const QiwiErrorFormat *
errors_named(const char *name)
{
	if (strcmp(name, "json") == 0)
		return NULL;
	if (strcmp(name, "envelope") == 0)
		return &pull_errors;
	if (strcmp(name, "wallet") == 0)
		return &wallet_errors;
	if (strcmp(name, "short_block") == 0)
		return &short_block_errors;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown error format \"%s\"", name)));
	pg_unreachable();
}

/* A form body of name, value, name, value, ... (a text[]) */
static char *
form_body(ArrayType *pairs)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	StringInfoData form;

	deconstruct_array(pairs, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("form must hold pairs of name and value")));
	initStringInfo(&form);
	for (int i = 0; i < n; i += 2)
		http_append_form_field(&form, TextDatumGetCString(elems[i]),
							   nulls[i + 1] ? "" : TextDatumGetCString(elems[i + 1]));
	return form.data;
}

PG_FUNCTION_INFO_V1(qiwi_core_test_wire);

/*
 * qiwi_core_test_wire(method, path, body, form, auth, errors, raise,
 * idempotent): one call to the sandbox's path, as an API declaring such a
 * wire makes it; its answer's body, or its error (raised with raise).
 */
Datum
qiwi_core_test_wire(PG_FUNCTION_ARGS)
{
	const char *path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	bool		form = !PG_ARGISNULL(3);
	bool		basic = strcmp(text_to_cstring(PG_GETARG_TEXT_PP(4)), "basic") == 0;
	WireFormat	wire = {
		.api_name = "Test",
		.url_option = &bill_option_api_url,
		.default_url = QIWI_DEFAULT_API_URL,
		.auth = basic ? WIRE_AUTH_BASIC : WIRE_AUTH_BEARER,
		.user_option = &bill_option_site_id,
		.key_option = &bill_option_secret_key,
		.body = form ? WIRE_BODY_FORM : WIRE_BODY_JSON,
		.errors = errors_named(text_to_cstring(PG_GETARG_TEXT_PP(5))),
	};
	const Merchant *merchant = merchant_for_call(NULL);
	QiwiOperation op;
	QiwiError	error = {0};
	char	   *answer = NULL;
	TupleDesc	desc = arg_result_desc(fcinfo, 7, "qiwi_core_test_wire");
	Datum		values[7] = {0};
	bool		nulls[7] = {false, true, true, true, true, true, true};

	wire_operation(&op, &wire, merchant, method_named(text_to_cstring(PG_GETARG_TEXT_PP(0))),
				   wire_url(&wire, merchant, 1, &path),
				   form ? form_body(PG_GETARG_ARRAYTYPE_P(3)) :
				   PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
				   psprintf("call %s", path), QIWI_READ_RETRY_HINT, PG_GETARG_BOOL(7));
	op.read = read_body;
	op.result = &answer;
	values[0] = BoolGetDatum(qiwi_exchange(&op, &error));
	if (DatumGetBool(values[0]))
	{
		values[1] = CStringGetTextDatum(answer);
		nulls[1] = false;
	}
	else if (PG_GETARG_BOOL(6))
		qiwi_raise(&error);
	else
	{
		values[2] = CStringGetTextDatum(unpack_sql_state(error.sqlstate));
		values[3] = CStringGetTextDatum(error.message);
		values[4] = CStringGetTextDatum(error.detail ? error.detail : "");
		values[5] = BoolGetDatum(error.retry_safe);
		values[6] = TimestampTzGetDatum(error.blocked_until);
		nulls[2] = nulls[3] = nulls[4] = nulls[5] = false;
		nulls[6] = error.blocked_until == 0;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
