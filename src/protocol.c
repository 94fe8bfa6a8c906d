/*
 * protocol.c
 *		The QIWI Bill Payments protocol: request URLs and bodies, response
 *		parsing into C structs, and the mapping of failures to error classes.
 *
 * Nothing here raises on a bad answer: every call returns false with a
 * filled QiwiError, so the SQL functions raise it and a background worker
 * can record it and go on with the next bill.  JSON is read with
 * PostgreSQL's own JSON lexer and jsonb, dates with its date/time input
 * routines, amounts with numeric input; an answer is read in a
 * subtransaction, so that an error those raise on a hostile value is one
 * more malformed answer (the callers are always in a transaction).
 */
#include "qiwi_kassa.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "common/jsonapi.h"
#include "common/pg_prng.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/resowner.h"

#define QIWI_BILLS_PATH "/partner/bill/v1/bills/"

/* Deepest JSON nesting read; QIWI's answers nest three levels */
#define QIWI_MAX_JSON_DEPTH		64

/* Longest amount read from a JSON string ("999999.99" and some zeros) */
#define QIWI_MAX_AMOUNT_STRING	32

/*
 * What a QIWI timestamp looks like: ISO 8601 with digits, seconds and a
 * fraction optional, offset Z, +HH, +HHMM, +HH:MM or none.  PostgreSQL's
 * date/time input takes much more ("now", "epoch", Julian days, time zone
 * names, which it can raise on).  The groups do not capture: twice as fast.
 */
#define QIWI_TIMESTAMP_PATTERN \
	"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\\.[0-9]+)?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"

/* Seconds east of UTC of a timestamp QIWI sends without an offset (Moscow) */
#define QIWI_DEFAULT_UTC_OFFSET		(3 * SECS_PER_HOUR)

/* ---------- amounts and timestamps ---------- */

/* Round an amount to two decimals (callers have checked this is exact) */
Numeric
qiwi_amount_to_cents(Numeric amount)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_round,
											   NumericGetDatum(amount),
											   Int32GetDatum(2)));
}

/* Does the amount have at most two significant decimals? */
bool
qiwi_amount_has_cents_only(Numeric amount)
{
	Numeric		rounded = qiwi_amount_to_cents(amount);

	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(rounded),
											 NumericGetDatum(amount))) == 0;
}

/* The amount as QIWI writes it: exactly two decimals ("1.00") */
char *
qiwi_format_amount(Numeric amount)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out,
											   NumericGetDatum(qiwi_amount_to_cents(amount))));
}

/* Is this one of the final bill statuses of seed 001? */
static bool
qiwi_status_is_final(const char *status)
{
	return strcmp(status, "PAID") == 0 ||
		strcmp(status, "REJECTED") == 0 ||
		strcmp(status, "EXPIRED") == 0;
}

/* Format a timestamp as QIWI expects: YYYY-MM-DDThh:mm:ss+00:00 */
static char *
format_qiwi_timestamp(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		buf[MAXDATELEN + 1];

	if (TIMESTAMP_NOT_FINITE(ts) ||
		timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	/* the time is in UTC; EncodeDateTime prints an offset only if DST is known */
	tm.tm_isdst = 0;
	/* QIWI's format has whole seconds; an expiry truncated by < 1 s is fine */
	EncodeDateTime(&tm, 0, true, 0, NULL, USE_XSD_DATES, buf);
	return pstrdup(buf);
}

/*
 * Parse a QIWI timestamp with PostgreSQL's date/time input routines, once
 * it has QIWI's shape.  QIWI writes 0-3 fractional digits and offsets as
 * +03:00, +03 or not at all; a timestamp without an offset is Moscow time,
 * as in every QIWI sample.
 */
static bool
parse_qiwi_timestamp(const char *str, TimestampTz *result)
{
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			tz;
	struct pg_tm tm;
	fsec_t		fsec;

	if (strlen(str) >= MAXDATELEN ||
		!DatumGetBool(DirectFunctionCall2Coll(textregexeq, C_COLLATION_OID,
											  CStringGetTextDatum(str),
											  CStringGetTextDatum(QIWI_TIMESTAMP_PATTERN))))
		return false;

	/* without a zone argument, DecodeDateTime refuses input that has one */
	if (ParseDateTime(str, workbuf, sizeof(workbuf), field, ftype,
					  MAXDATEFIELDS, &nf) != 0)
		return false;
	if (DecodeDateTime(field, ftype, nf, &dtype, &tm, &fsec, NULL) == 0)
		tz = -QIWI_DEFAULT_UTC_OFFSET;
	else
	{
		if (ParseDateTime(str, workbuf, sizeof(workbuf), field, ftype,
						  MAXDATEFIELDS, &nf) != 0 ||
			DecodeDateTime(field, ftype, nf, &dtype, &tm, &fsec, &tz) != 0)
			return false;
	}
	if (dtype != DTK_DATE)
		return false;
	return tm2timestamp(&tm, fsec, &tz, result) == 0;
}

/* ---------- JSON reading ---------- */

/*
 * Does JSON text nest deeper than QIWI_MAX_JSON_DEPTH?  Found with the
 * lexer alone: PostgreSQL's JSON parser recurses, and would run out of
 * stack on the text before it could say.  Text that does not lex is left
 * to the parser to describe.
 */
static bool
json_too_deep(char *text, size_t len)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen(text, len, PG_UTF8, false);
	int			depth = 0;

	while (json_lex(lex) == JSON_SUCCESS && lex->token_type != JSON_TOKEN_END)
	{
		if (lex->token_type == JSON_TOKEN_OBJECT_START ||
			lex->token_type == JSON_TOKEN_ARRAY_START)
		{
			if (++depth > QIWI_MAX_JSON_DEPTH)
				return true;
		}
		else if (lex->token_type == JSON_TOKEN_OBJECT_END ||
				 lex->token_type == JSON_TOKEN_ARRAY_END)
			depth--;
	}
	return false;
}

/*
 * Valid UTF-8 text in the database encoding, without raising: a character
 * the database encoding lacks becomes '?', and *lossy says there was one.
 */
static char *
utf8_to_server(const char *text, size_t len, bool *lossy)
{
	int			encoding = GetDatabaseEncoding();
	Oid			proc;
	StringInfoData out;
	size_t		done = 0;

	*lossy = false;
	if (encoding == PG_UTF8 || encoding == PG_SQL_ASCII)
		return pnstrdup(text, len);
	proc = FindDefaultConversionProc(PG_UTF8, encoding);
	if (!OidIsValid(proc))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("default conversion function for encoding \"%s\" to \"%s\" does not exist",
						pg_encoding_to_char(PG_UTF8), GetDatabaseEncodingName())));

	initStringInfo(&out);
	/* the most a conversion may need, so that it is never cut short */
	enlargeStringInfo(&out, len * MAX_CONVERSION_GROWTH + 1);
	while (done < len)
	{
		done += pg_do_encoding_conversion_buf(proc, PG_UTF8, encoding,
											  (unsigned char *) text + done, len - done,
											  (unsigned char *) out.data + out.len,
											  out.maxlen - out.len, true);
		out.len += strlen(out.data + out.len);
		if (done < len)
		{
			appendStringInfoChar(&out, '?');
			done += pg_utf_mblen((const unsigned char *) text + done);
			*lossy = true;
		}
	}
	return out.data;
}

/*
 * Parse a response body into jsonb; NULL and *problem on failure.  With
 * lossy NULL, a body with characters the database encoding lacks is a
 * failure; otherwise they become '?' and *lossy says so.
 */
static Jsonb *
parse_json_object(char *body, size_t len, bool *lossy, char **problem)
{
	char	   *text;
	bool		lost;
	JsonLexContext *lex;
	JsonParseErrorType rc;
	Jsonb	   *jb;

	if (len == 0)
	{
		*problem = pstrdup("the body is empty");
		return NULL;
	}
	if (!pg_verify_mbstr(PG_UTF8, body, len, true))
	{
		*problem = pstrdup("the body is not valid UTF-8");
		return NULL;
	}
	if (json_too_deep(body, len))
	{
		*problem = psprintf("the body nests deeper than %d levels", QIWI_MAX_JSON_DEPTH);
		return NULL;
	}
	text = utf8_to_server(body, len, &lost);
	if (lossy != NULL)
		*lossy = lost;
	else if (lost)
	{
		*problem = psprintf("the body has characters that the database encoding %s cannot represent",
							GetDatabaseEncodingName());
		return NULL;
	}

	/* validate first, for a description of what is wrong */
	lex = makeJsonLexContextCstringLen(text, strlen(text), GetDatabaseEncoding(), true);
	rc = pg_parse_json(lex, &nullSemAction);
	if (rc != JSON_SUCCESS)
	{
		*problem = psprintf("the body is not valid JSON: %s", json_errdetail(rc, lex));
		return NULL;
	}
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	if (!JB_ROOT_IS_OBJECT(jb))
	{
		*problem = pstrdup("the body is not a JSON object");
		return NULL;
	}
	return jb;
}

/* Look a key up in a JSON object; JSON null counts as absent */
static JsonbValue *
json_field(JsonbContainer *object, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(object, key, strlen(key), NULL);

	if (v != NULL && v->type == jbvNull)
		return NULL;
	return v;
}

/* Read a string field; absent is an error only when required */
static bool
json_string(JsonbContainer *object, const char *key, bool required,
			char **out, char **problem)
{
	JsonbValue *v = json_field(object, key);

	*out = NULL;
	if (v == NULL)
	{
		if (required)
			*problem = psprintf("field \"%s\" is missing", key);
		return !required;
	}
	if (v->type != jbvString)
	{
		*problem = psprintf("field \"%s\" is not a string", key);
		return false;
	}
	*out = pnstrdup(v->val.string.val, v->val.string.len);
	return true;
}

/* Read an identifier that QIWI may send as a string or as a number */
static bool
json_identifier(JsonbContainer *object, const char *key, char **out, char **problem)
{
	JsonbValue *v = json_field(object, key);

	if (v != NULL && v->type == jbvNumeric)
	{
		*out = DatumGetCString(DirectFunctionCall1(numeric_out,
												   NumericGetDatum(v->val.numeric)));
		return true;
	}
	return json_string(object, key, false, out, problem);
}

/* Read an optional nested object, as a container and as jsonb */
static bool
json_member_object(JsonbContainer *object, const char *key, bool required,
			JsonbContainer **container, Jsonb **copy, char **problem)
{
	JsonbValue *v = json_field(object, key);

	*container = NULL;
	if (copy)
		*copy = NULL;
	if (v == NULL)
	{
		if (required)
			*problem = psprintf("field \"%s\" is missing", key);
		return !required;
	}
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
	{
		*problem = psprintf("field \"%s\" is not an object", key);
		return false;
	}
	*container = v->val.binary.data;
	if (copy)
		*copy = JsonbValueToJsonb(v);
	return true;
}

/* Read an optional timestamp given under one of two key spellings */
static bool
json_timestamp(JsonbContainer *object, const char *key, const char *alt_key,
			   bool *present, TimestampTz *out, char **problem)
{
	char	   *str;
	const char *used = key;

	*present = false;
	if (!json_string(object, key, false, &str, problem))
		return false;
	if (str == NULL && alt_key != NULL)
	{
		used = alt_key;
		if (!json_string(object, alt_key, false, &str, problem))
			return false;
	}
	if (str == NULL)
		return true;
	if (!parse_qiwi_timestamp(str, out))
	{
		*problem = psprintf("field \"%s\" is not a timestamp: \"%s\"", used, str);
		return false;
	}
	*present = true;
	return true;
}

/*
 * Read amount{value,currency}: value as a JSON number or a numeric string,
 * above 0 and at most QIWI_MAX_AMOUNT, with at most two decimals
 */
bool
qiwi_json_amount(JsonbContainer *object, Numeric *amount, char **currency, char **problem)
{
	JsonbContainer *amount_obj;
	JsonbValue *v;
	Numeric		value;
	Numeric		max_amount;

	if (!json_member_object(object, "amount", true, &amount_obj, NULL, problem))
		return false;
	if (!json_string(amount_obj, "currency", true, currency, problem))
		return false;
	v = json_field(amount_obj, "value");
	if (v == NULL)
	{
		*problem = pstrdup("field \"amount.value\" is missing");
		return false;
	}
	if (v->type == jbvNumeric)
		value = v->val.numeric;
	else if (v->type == jbvString && v->val.string.len > QIWI_MAX_AMOUNT_STRING)
	{
		/* numeric input of thousands of digits could overflow */
		*problem = psprintf("field \"amount.value\" is a string of more than %d characters",
							QIWI_MAX_AMOUNT_STRING);
		return false;
	}
	else if (v->type == jbvString &&
			 IsValidJsonNumber(v->val.string.val, v->val.string.len) &&
			 memchr(v->val.string.val, 'e', v->val.string.len) == NULL &&
			 memchr(v->val.string.val, 'E', v->val.string.len) == NULL)
	{
		char	   *s = pnstrdup(v->val.string.val, v->val.string.len);

		value = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(s),
													ObjectIdGetDatum(InvalidOid),
													Int32GetDatum(-1)));
	}
	else
	{
		/* exponents are refused: "1e999999" would overflow numeric input */
		*problem = pstrdup("field \"amount.value\" is neither a number nor a decimal string");
		return false;
	}
	max_amount = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(QIWI_MAX_AMOUNT),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(value),
										  NumericGetDatum(int64_to_numeric(0)))) <= 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(value),
										  NumericGetDatum(max_amount))) > 0)
	{
		/* not printed: it may have thousands of digits */
		*problem = pstrdup("field \"amount.value\" is out of range: QIWI's amounts are above 0 and at most "
						   QIWI_MAX_AMOUNT);
		return false;
	}
	*amount = qiwi_amount_to_cents(value);
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(*amount),
										  NumericGetDatum(value))) != 0)
	{
		/* never round money silently, not even QIWI's */
		*problem = psprintf("amount %s has more than two decimals",
							DatumGetCString(DirectFunctionCall1(numeric_out,
																NumericGetDatum(value))));
		return false;
	}
	return true;
}

/* ---------- reading an answer ---------- */

/* Reads an answer into *result; false with *problem if it cannot */
typedef bool (*AnswerReader) (const HttpResponse *resp, void *result, char **problem);

/*
 * Run fn(arg, problem) in a subtransaction and say whether it succeeded.
 * An error it raises that `which` allows is one more *problem (its
 * message), and the caller's transaction, a background worker's included,
 * goes on; any other error (a cancel, out of memory) goes on up.
 */
bool
qiwi_guarded(GuardedFn fn, void *arg, GuardedErrors which, char **problem)
{
	MemoryContext caller_context = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	volatile bool ok = false;

	BeginInternalSubTransaction(NULL);
	/* what fn makes outlives the subtransaction */
	MemoryContextSwitchTo(caller_context);
	PG_TRY();
	{
		ok = fn(arg, problem);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			category;

		MemoryContextSwitchTo(caller_context);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller_context);
		CurrentResourceOwner = caller_owner;
		category = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
		if (which == GUARD_DATA_ERRORS ?
			(category != ERRCODE_DATA_EXCEPTION && category != ERRCODE_PROGRAM_LIMIT_EXCEEDED) :
			edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		*problem = edata->message;
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller_context);
	CurrentResourceOwner = caller_owner;
	return ok;
}

/* An answer and what to read it into, for a guarded AnswerReader */
typedef struct AnswerToRead
{
	AnswerReader reader;
	const HttpResponse *resp;
	void	   *result;
} AnswerToRead;

/* Run an AnswerToRead's reader (a GuardedFn) */
static bool
run_reader(void *arg, char **problem)
{
	AnswerToRead *a = (AnswerToRead *) arg;

	return a->reader(a->resp, a->result, problem);
}

/*
 * Read an answer, guarded: an error that PostgreSQL's input routines raise
 * on a hostile value (a number that overflows numeric, ...) is one more
 * *problem.
 */
static bool
read_answer(AnswerReader reader, const HttpResponse *resp, void *result, char **problem)
{
	AnswerToRead a = {reader, resp, result};

	return qiwi_guarded(run_reader, &a, GUARD_DATA_ERRORS, problem);
}

/* What an error answer says; QIWI's error JSON, all of it optional */
typedef struct ErrorAnswer
{
	char	   *error_code;
	char	   *description;
	char	   *trace_id;
	bool		lossy;			/* it had characters the database encoding lacks */
} ErrorAnswer;

/* Reader of an error answer (an AnswerReader) */
static bool
read_error_answer(const HttpResponse *resp, void *result, char **problem)
{
	ErrorAnswer *answer = (ErrorAnswer *) result;
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, &answer->lossy, problem);

	if (jb == NULL)
		return false;
	/* a field of another type counts as absent */
	json_string(&jb->root, "errorCode", false, &answer->error_code, problem);
	json_string(&jb->root, "description", false, &answer->description, problem);
	json_string(&jb->root, "traceId", false, &answer->trace_id, problem);
	return true;
}

/* Reader of a Bill object answer (an AnswerReader) */
static bool
read_bill(const HttpResponse *resp, void *result, char **problem)
{
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	return jb != NULL && qiwi_parse_bill_object(&jb->root, (QiwiBill *) result, problem);
}

/* Reader of a Refund object answer (an AnswerReader) */
static bool
read_refund(const HttpResponse *resp, void *result, char **problem)
{
	QiwiRefund *refund = (QiwiRefund *) result;
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	if (jb == NULL ||
		!json_identifier(&jb->root, "refundId", &refund->refund_id, problem) ||
		!qiwi_json_amount(&jb->root, &refund->amount, &refund->currency, problem) ||
		!json_string(&jb->root, "status", true, &refund->status, problem) ||
		!json_timestamp(&jb->root, "dateTime", "datetime",
						&refund->has_created_at, &refund->created_at, problem))
		return false;
	if (refund->refund_id == NULL)
	{
		*problem = pstrdup("field \"refundId\" is missing");
		return false;
	}
	if (strcmp(refund->status, "PARTIAL") != 0 && strcmp(refund->status, "FULL") != 0)
	{
		*problem = psprintf("unknown refund status \"%s\"", refund->status);
		return false;
	}
	return true;
}

/* ---------- errors ---------- */

/* Fill an error of the "QIWI's answer is malformed" class */
static bool
malformed(QiwiError *error, const char *context, const char *problem)
{
	error->sqlstate = ERRCODE_QIWI_MALFORMED;
	error->message = psprintf("could not %s: QIWI's answer is malformed", context);
	error->detail = pstrdup(problem);
	error->hint = NULL;
	error->retry_safe = false;
	return false;
}

/* Turn a transport failure into an error of its class */
static void
error_from_transport(const HttpResponse *resp, const char *context,
					 const char *retry_hint, QiwiError *error)
{
	error->detail = pstrdup(resp->error);
	error->hint = retry_hint ? pstrdup(retry_hint) : NULL;
	error->retry_safe = true;
	switch (resp->failure)
	{
		case HTTP_FAIL_TIMEOUT:
			error->sqlstate = ERRCODE_QIWI_TIMEOUT;
			error->message = psprintf("could not %s: QIWI did not answer in time", context);
			break;
		case HTTP_FAIL_TLS:
			error->sqlstate = ERRCODE_QIWI_TLS;
			error->message = psprintf("could not %s: TLS connection to QIWI failed", context);
			error->hint = pstrdup("Check the server certificate and qiwi.ca_file; nothing was sent.");
			error->retry_safe = false;
			break;
		case HTTP_FAIL_TOO_LARGE:
			error->sqlstate = ERRCODE_QIWI_MALFORMED;
			error->message = psprintf("could not %s: QIWI's answer is too large", context);
			error->retry_safe = false;
			break;
		default:
			error->sqlstate = ERRCODE_QIWI_NETWORK;
			error->message = psprintf("could not %s: network failure talking to QIWI", context);
			break;
	}
}

/* Turn a non-2xx HTTP answer, with or without QIWI's error JSON, into an error */
static void
error_from_status(const HttpResponse *resp, const char *context,
				  const char *retry_hint, QiwiError *error)
{
	char	   *problem = NULL;
	ErrorAnswer answer = {0};
	StringInfoData detail;
	const char *reason;

	/* a body that is not QIWI's JSON (a gateway's error page) says nothing */
	(void) read_answer(read_error_answer, resp, &answer, &problem);

	error->hint = NULL;
	error->retry_safe = false;
	if (resp->status == 401 || resp->status == 403)
	{
		error->sqlstate = ERRCODE_QIWI_AUTHENTICATION;
		reason = "QIWI refused the secret key";
		error->hint = pstrdup("Check qiwi.secret_key.");
	}
	else if (resp->status == 404)
	{
		error->sqlstate = ERRCODE_QIWI_NOT_FOUND;
		reason = "QIWI does not know it";
	}
	else if (resp->status == 429)
	{
		error->sqlstate = ERRCODE_QIWI_RATE_LIMIT;
		reason = "QIWI is limiting the request rate";
		error->retry_safe = true;
		error->hint = retry_hint ? pstrdup(retry_hint) : NULL;
	}
	else if (resp->status >= 500 && resp->status < 600)
	{
		error->sqlstate = ERRCODE_QIWI_SERVER_ERROR;
		reason = "QIWI failed to process it";
		error->retry_safe = true;
		error->hint = retry_hint ? pstrdup(retry_hint) : NULL;
	}
	else if (resp->status >= 400 && resp->status < 500)
	{
		error->sqlstate = ERRCODE_QIWI_INVALID_REQUEST;
		reason = "QIWI rejected the request";
	}
	else
	{
		error->sqlstate = ERRCODE_QIWI_MALFORMED;
		reason = "QIWI answered with an unexpected HTTP status";
	}

	/* a description with '?' for what the database cannot show would mislead */
	if (answer.description != NULL && answer.description[0] != '\0' && !answer.lossy)
		error->message = psprintf("could not %s: %s: %s", context, reason, answer.description);
	else
		error->message = psprintf("could not %s: %s", context, reason);

	initStringInfo(&detail);
	appendStringInfo(&detail, "HTTP status %ld", resp->status);
	if (answer.error_code != NULL)
		appendStringInfo(&detail, ", errorCode \"%s\"", answer.error_code);
	if (answer.trace_id != NULL && answer.trace_id[0] != '\0')
		appendStringInfo(&detail, ", traceId \"%s\"", answer.trace_id);
	appendStringInfoChar(&detail, '.');
	if (answer.lossy)
		appendStringInfo(&detail, " QIWI's error text has characters that the database encoding %s cannot represent; its description is not shown.",
						 GetDatabaseEncodingName());
	error->detail = detail.data;
}

/* Raise a QiwiError as an ERROR */
void
qiwi_raise(const QiwiError *error)
{
	/* QIWI's own text may echo a key: a caller's handler sees it redacted too */
	ereport(ERROR,
			(errcode(error->sqlstate),
			 errmsg_internal("%s", qiwi_redact_secrets(error->message)),
			 error->detail ? errdetail_internal("%s", qiwi_redact_secrets(error->detail)) : 0,
			 error->hint ? errhint("%s", error->hint) : 0));
	pg_unreachable();
}

/* ---------- requests ---------- */

/* The secret key, or an error if the server has none configured */
static const char *
qiwi_require_secret_key(void)
{
	if (qiwi_secret_key == NULL || qiwi_secret_key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("qiwi.secret_key is not set"),
				 errhint("A superuser puts the key in the file named by qiwi.secret_key_file (see the README, \"Holding keys\").")));
	return qiwi_secret_key;
}

/* URL of a bill, or of one of its sub-resources when suffix is given */
static char *
bill_url(const char *bill_id, const char *suffix)
{
	StringInfoData url;
	size_t		base_len = strlen(qiwi_api_url);

	while (base_len > 0 && qiwi_api_url[base_len - 1] == '/')
		base_len--;
	initStringInfo(&url);
	appendBinaryStringInfo(&url, qiwi_api_url, base_len);
	appendStringInfoString(&url, QIWI_BILLS_PATH);
	appendStringInfoString(&url, http_escape_path_segment(bill_id));
	if (suffix != NULL)
		appendStringInfoString(&url, suffix);
	return url.data;
}

/* URL of one refund of a bill */
static char *
refund_url(const char *bill_id, const char *refund_id)
{
	return bill_url(bill_id, psprintf("/refunds/%s", http_escape_path_segment(refund_id)));
}

/* Is this a 2xx answer?  Otherwise fill *error with the failure's class */
static bool
answered_ok(const HttpResponse *resp, const char *context, const char *retry_hint,
			QiwiError *error)
{
	if (resp->failure != HTTP_OK)
	{
		error_from_transport(resp, context, retry_hint, error);
		return false;
	}
	if (resp->status < 200 || resp->status >= 300)
	{
		error_from_status(resp, context, retry_hint, error);
		return false;
	}
	return true;
}

/* First wait before a retry, and the longest one, in milliseconds */
#define RETRY_BASE_MS	100
#define RETRY_MAX_MS	5000

/*
 * Wait before retry number attempt + 1: exponential backoff with jitter,
 * interruptible.  False when statement_timeout would end the statement
 * before another attempt could finish, so there is no point in trying.
 */
static bool
retry_wait(int attempt)
{
	long		delay_ms = Min(RETRY_MAX_MS, (long) RETRY_BASE_MS << Min(attempt, 16));
	TimestampTz until;

	/* full jitter in the upper half: retries of many sessions spread out */
	delay_ms = delay_ms / 2 + (long) (pg_prng_double(&pg_global_prng_state) * (delay_ms / 2));
	if (StatementTimeout > 0)
	{
		long		spent_ms = (GetCurrentTimestamp() - GetCurrentStatementStartTimestamp()) / 1000;

		if (spent_ms + delay_ms >= StatementTimeout)
			return false;
	}
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay_ms);
	for (;;)
	{
		long		left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left_ms <= 0)
			return true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Send one request, retrying it after network failures, timeouts, 429 and
 * 5xx when it is idempotent; true with the 2xx answer in *resp, or false
 * with *error.  *attempts says how many were made.
 */
static bool
exchange(HttpMethod method, const char *url, const char *body,
		 const char *context, const char *retry_hint, bool idempotent,
		 HttpResponse *resp, QiwiError *error, int *attempts)
{
	HttpRequest request = {method, (char *) url, (char *) body};

	for (int attempt = 0;; attempt++)
	{
		http_perform(&request, qiwi_require_secret_key(), resp);
		*attempts = attempt + 1;
		if (answered_ok(resp, context, retry_hint, error))
			return true;
		if (!idempotent || !error->retry_safe || attempt >= qiwi_max_retries ||
			!retry_wait(attempt))
		{
			if (attempt > 0)
				error->detail = psprintf("%s %d attempts were made.", error->detail, attempt + 1);
			return false;
		}
	}
}

/* Read a Bill object (an API answer, or "bill" of a notification) */
bool
qiwi_parse_bill_object(JsonbContainer *root, QiwiBill *bill, char **problem)
{
	JsonbContainer *status;
	JsonbContainer *ignored;

	memset(bill, 0, sizeof(*bill));
	if (!json_string(root, "billId", true, &bill->bill_id, problem) ||
		!json_identifier(root, "siteId", &bill->site_id, problem) ||
		!qiwi_json_amount(root, &bill->amount, &bill->currency, problem) ||
		!json_member_object(root, "status", true, &status, NULL, problem) ||
		!json_string(status, "value", true, &bill->status, problem) ||
		!json_timestamp(status, "changedDateTime", "datetime",
						&bill->has_status_changed_at, &bill->status_changed_at, problem) ||
		!json_timestamp(root, "creationDateTime", NULL,
						&bill->has_created_at, &bill->created_at, problem) ||
		!json_timestamp(root, "expirationDateTime", NULL,
						&bill->has_expires_at, &bill->expires_at, problem) ||
		!json_string(root, "payUrl", false, &bill->pay_url, problem) ||
		!json_string(root, "comment", false, &bill->comment, problem) ||
		!json_member_object(root, "customer", false, &ignored, &bill->customer, problem) ||
		!json_member_object(root, "customFields", false, &ignored, &bill->custom_fields, problem))
		return false;

	if (strcmp(bill->status, "WAITING") != 0 && !qiwi_status_is_final(bill->status))
	{
		*problem = psprintf("unknown bill status \"%s\"", bill->status);
		return false;
	}
	return true;
}

/* Parse the Bill object answered for expected_bill_id */
static bool
parse_bill(const HttpResponse *resp, const char *expected_bill_id,
		   const char *context, QiwiBill *bill, QiwiError *error)
{
	char	   *problem = NULL;

	if (!read_answer(read_bill, resp, bill, &problem))
		return malformed(error, context, problem);
	if (strcmp(bill->bill_id, expected_bill_id) != 0)
		return malformed(error, context,
						 psprintf("the answer is about bill \"%s\"", bill->bill_id));
	return true;
}

/* Parse a Refund object answered for bill_id / expected_refund_id */
static bool
parse_refund(const HttpResponse *resp, const char *bill_id,
			 const char *expected_refund_id, const char *context,
			 QiwiRefund *refund, QiwiError *error)
{
	char	   *problem = NULL;

	memset(refund, 0, sizeof(*refund));
	refund->bill_id = pstrdup(bill_id);
	if (!read_answer(read_refund, resp, refund, &problem))
		return malformed(error, context, problem);
	if (strcmp(refund->refund_id, expected_refund_id) != 0)
		return malformed(error, context,
						 psprintf("the answer is about refund \"%s\"", refund->refund_id));
	return true;
}

/* Append "key":"value" to a JSON object being built, with a leading comma */
static void
append_json_member(StringInfo buf, const char *key, const char *value, bool *first)
{
	if (!*first)
		appendStringInfoChar(buf, ',');
	*first = false;
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	escape_json(buf, value);
}

/* The JSON body of PUT bills/{billId}; absent optional members are omitted */
static char *
create_bill_body(const QiwiCreateBillArgs *args)
{
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"amount\":{");
	append_json_member(&buf, "currency", args->currency, &first);
	append_json_member(&buf, "value", qiwi_format_amount(args->amount), &first);
	appendStringInfoString(&buf, "},");
	first = true;
	append_json_member(&buf, "expirationDateTime",
					   format_qiwi_timestamp(args->expires_at), &first);
	if (args->comment != NULL)
		append_json_member(&buf, "comment", args->comment, &first);
	if (args->phone != NULL || args->email != NULL || args->account != NULL)
	{
		bool		first_customer = true;

		appendStringInfoString(&buf, ",\"customer\":{");
		if (args->phone != NULL)
			append_json_member(&buf, "phone", args->phone, &first_customer);
		if (args->email != NULL)
			append_json_member(&buf, "email", args->email, &first_customer);
		if (args->account != NULL)
			append_json_member(&buf, "account", args->account, &first_customer);
		appendStringInfoChar(&buf, '}');
	}
	if (args->custom_fields != NULL)
	{
		appendStringInfoString(&buf, ",\"customFields\":");
		appendStringInfoString(&buf, JsonbToCString(NULL, &args->custom_fields->root,
													VARSIZE(args->custom_fields)));
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

#define IDEMPOTENT_RETRY_HINT \
	"The request may have reached QIWI. Repeating the same call is safe: QIWI answers with the existing object."

/*
 * QIWI answers a PUT with a reused id with the bill or refund it already
 * has: false with *error unless that is for the amount and currency asked.
 */
static bool
same_money(Numeric amount, const char *currency, Numeric asked, const char *asked_currency,
		   const char *context, const char *what, QiwiError *error)
{
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(amount),
										  NumericGetDatum(asked))) == 0 &&
		strcmp(currency, asked_currency) == 0)
		return true;
	error->sqlstate = ERRCODE_QIWI_INVALID_REQUEST;
	error->message = psprintf("could not %s: QIWI already has a %s with this id for a different amount",
							  context, what);
	error->detail = psprintf("QIWI's %s is for %s %s; this call asked for %s %s.", what,
							 qiwi_format_amount(amount), currency,
							 qiwi_format_amount(asked), asked_currency);
	error->hint = psprintf("Use a new %s_id for a new %s.", what, what);
	error->retry_safe = false;
	return false;
}

/* The created bill from a 2xx answer to PUT bills/{billId} */
static bool
created_bill(const QiwiCreateBillArgs *args, const HttpResponse *resp,
			 const char *context, QiwiBill *bill, QiwiError *error)
{
	return parse_bill(resp, args->bill_id, context, bill, error) &&
		same_money(bill->amount, bill->currency, args->amount, args->currency,
				   context, "bill", error);
}

/* The PUT bills/{billId} request (for the reconciler's after-commit creations) */
void
qiwi_create_bill_request(const QiwiCreateBillArgs *args, HttpRequest *request)
{
	request->method = HTTP_PUT;
	request->url = bill_url(args->bill_id, NULL);
	request->body = create_bill_body(args);
}

/*
 * What QIWI's answer to PUT bills/{billId} says: true with *bill, or
 * *error.  The reconciler records a bill QIWI has for other money as
 * MISMATCH, so the money is not compared here.
 */
bool
qiwi_create_bill_answer(const QiwiCreateBillArgs *args, const HttpResponse *resp,
						QiwiBill *bill, QiwiError *error)
{
	char	   *context = psprintf("create bill \"%s\"", args->bill_id);

	return answered_ok(resp, context, IDEMPOTENT_RETRY_HINT, error) &&
		parse_bill(resp, args->bill_id, context, bill, error);
}

/* PUT bills/{billId}: create a bill, or get it back if it already exists */
bool
qiwi_create_bill_call(const QiwiCreateBillArgs *args, QiwiBill *bill, QiwiError *error)
{
	char	   *context = psprintf("create bill \"%s\"", args->bill_id);
	HttpResponse resp;
	int			attempts;

	/* a PUT with our billId is idempotent: a retry gets the same bill back */
	if (!exchange(HTTP_PUT, bill_url(args->bill_id, NULL), create_bill_body(args),
				  context, IDEMPOTENT_RETRY_HINT, true, &resp, error, &attempts))
		return false;
	return created_bill(args, &resp, context, bill, error);
}

/* The GET bills/{billId} request (for callers that send many at once) */
void
qiwi_get_bill_request(const char *bill_id, HttpRequest *request)
{
	request->method = HTTP_GET;
	request->url = bill_url(bill_id, NULL);
	request->body = NULL;
}

/* What QIWI's answer to GET bills/{billId} says: true with *bill, or *error */
bool
qiwi_get_bill_answer(const char *bill_id, const HttpResponse *resp,
					 QiwiBill *bill, QiwiError *error)
{
	char	   *context = psprintf("get the status of bill \"%s\"", bill_id);

	return answered_ok(resp, context, "Repeating the call is safe.", error) &&
		parse_bill(resp, bill_id, context, bill, error);
}

/* GET bills/{billId} */
bool
qiwi_get_bill_call(const char *bill_id, QiwiBill *bill, QiwiError *error)
{
	char	   *context = psprintf("get the status of bill \"%s\"", bill_id);
	HttpResponse resp;
	int			attempts;

	return exchange(HTTP_GET, bill_url(bill_id, NULL), NULL, context,
					"Repeating the call is safe.", true, &resp, error, &attempts) &&
		parse_bill(&resp, bill_id, context, bill, error);
}

/*
 * POST bills/{billId}/reject, made idempotent: it is retried like the
 * idempotent calls, and when QIWI answers that the bill is no longer
 * WAITING (a retry, or libcurl's own resend on a dead kept-alive
 * connection, after the first attempt did it; or an earlier cancel), the
 * bill is asked for, and REJECTED counts as success.
 */
bool
qiwi_reject_bill_call(const char *bill_id, QiwiBill *bill, QiwiError *error)
{
	char	   *context = psprintf("cancel bill \"%s\"", bill_id);
	HttpResponse resp;
	int			attempts;
	QiwiError	get_error;

	if (exchange(HTTP_POST, bill_url(bill_id, "/reject"), NULL, context,
				 "Check with qiwi_bill_status() whether the bill was cancelled before repeating the call.",
				 true, &resp, error, &attempts))
		return parse_bill(&resp, bill_id, context, bill, error);
	return error->sqlstate == ERRCODE_QIWI_INVALID_REQUEST &&
		qiwi_get_bill_call(bill_id, bill, &get_error) &&
		strcmp(bill->status, "REJECTED") == 0;
}

/* PUT bills/{billId}/refunds/{refundId} */
bool
qiwi_refund_call(const char *bill_id, const char *refund_id, Numeric amount,
				 const char *currency, QiwiRefund *refund, QiwiError *error)
{
	char	   *context = psprintf("refund \"%s\" of bill \"%s\"", refund_id, bill_id);
	StringInfoData body;
	bool		first = true;
	HttpResponse resp;
	int			attempts;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"amount\":{");
	append_json_member(&body, "currency", currency, &first);
	append_json_member(&body, "value", qiwi_format_amount(amount), &first);
	appendStringInfoString(&body, "}}");

	/* a PUT with our refundId is idempotent: a retry gets the same refund back */
	if (!exchange(HTTP_PUT, refund_url(bill_id, refund_id), body.data,
				  context, IDEMPOTENT_RETRY_HINT, true, &resp, error, &attempts))
		return false;
	return parse_refund(&resp, bill_id, refund_id, context, refund, error) &&
		same_money(refund->amount, refund->currency, amount, currency, context, "refund", error);
}

/* GET bills/{billId}/refunds/{refundId} */
bool
qiwi_get_refund_call(const char *bill_id, const char *refund_id,
					 QiwiRefund *refund, QiwiError *error)
{
	char	   *context = psprintf("get refund \"%s\" of bill \"%s\"", refund_id, bill_id);
	HttpResponse resp;
	int			attempts;

	if (!exchange(HTTP_GET, refund_url(bill_id, refund_id), NULL,
				  context, "Repeating the call is safe.", true, &resp, error, &attempts))
		return false;
	return parse_refund(&resp, bill_id, refund_id, context, refund, error);
}
