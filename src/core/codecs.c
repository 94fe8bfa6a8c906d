/*
 * codecs.c
 *		What every QIWI API reads and writes, knowing no single API: money
 *		(numeric, exactly two decimals, never rounded), timestamps with
 *		offsets, JSON answers (bounded depth, any database encoding), JSON
 *		bodies.  The parsers are PostgreSQL's: its JSON lexer and jsonb, its
 *		date/time and numeric input.
 */
#include "core/core.h"

#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

/* Deepest JSON nesting read; QIWI's answers nest three levels */
#define QIWI_MAX_JSON_DEPTH		64

/* Longest amount read from a JSON string ("999999.99" and some zeros) */
#define QIWI_MAX_AMOUNT_STRING	32

/* Seconds east of UTC of a timestamp QIWI sends without an offset (Moscow) */
#define QIWI_DEFAULT_UTC_OFFSET		(3 * SECS_PER_HOUR)

/* ---------- money ---------- */

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

/* Are two amounts of money equal (whatever their scale) in the same currency? */
bool
qiwi_same_money(Numeric a, const char *a_currency, Numeric b, const char *b_currency)
{
	return strcmp(a_currency, b_currency) == 0 &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a),
										  NumericGetDatum(b))) == 0;
}

/* The amount as QIWI writes it: exactly two decimals ("1.00") */
char *
qiwi_format_amount(Numeric amount)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out,
											   NumericGetDatum(qiwi_amount_to_cents(amount))));
}

/* ---------- timestamps ---------- */

/* Format a timestamp as QIWI expects: YYYY-MM-DDThh:mm:ss+00:00 */
char *
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

/* Step over n ASCII digits at *p; false if there are fewer */
static inline bool
skip_digits(const char **p, int n)
{
	for (int i = 0; i < n; i++)
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return false;
	*p += n;
	return true;
}

/*
 * Has str a QIWI timestamp's shape, ISO 8601 with digits:
 * YYYY-MM-DD, 'T' or ' ', hh:mm, optionally :ss with optionally a fraction
 * of one or more digits, then optionally Z, +hh, +hhmm or +hh:mm (or -)?
 * *offset tells whether it has an offset.  PostgreSQL's date/time input
 * takes much more ("now", "epoch", Julian days, time zone names, which it
 * can raise on).  One pass over the characters: a regular expression for
 * the same cost more than the JSON parse of the whole answer.
 */
static bool
has_qiwi_timestamp_shape(const char *str, bool *offset)
{
	const char *p = str;

	if (!skip_digits(&p, 4) || *p++ != '-' || !skip_digits(&p, 2) || *p++ != '-' ||
		!skip_digits(&p, 2) || (*p != 'T' && *p != ' '))
		return false;
	p++;
	if (!skip_digits(&p, 2) || *p++ != ':' || !skip_digits(&p, 2))
		return false;
	if (*p == ':')
	{
		p++;
		if (!skip_digits(&p, 2))
			return false;
		if (*p == '.')
		{
			p++;
			if (!skip_digits(&p, 1))
				return false;
			while (skip_digits(&p, 1))
				;
		}
	}
	*offset = *p == 'Z' || *p == '+' || *p == '-';
	if (*p == 'Z')
		p++;
	else if (*offset)
	{
		p++;
		if (!skip_digits(&p, 2))
			return false;
		/* then :mm, mm or nothing */
		if (*p == ':' ? (p++, !skip_digits(&p, 2)) : (*p != '\0' && !skip_digits(&p, 2)))
			return false;
	}
	return *p == '\0';
}

/*
 * Parse a QIWI timestamp with PostgreSQL's date/time input routines, once
 * it has QIWI's shape.  QIWI writes 0-3 fractional digits and offsets as
 * +03:00, +03 or not at all; a timestamp without an offset is Moscow time,
 * as in every QIWI sample.
 */
bool
parse_qiwi_timestamp(const char *str, TimestampTz *result)
{
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			tz = -QIWI_DEFAULT_UTC_OFFSET;
	bool		offset;
	struct pg_tm tm;
	fsec_t		fsec;

	if (strlen(str) >= MAXDATELEN || !has_qiwi_timestamp_shape(str, &offset))
		return false;

	/* without a zone argument, DecodeDateTime refuses input that has one */
	if (ParseDateTime(str, workbuf, sizeof(workbuf), field, ftype,
					  MAXDATEFIELDS, &nf) != 0 ||
		DecodeDateTime(field, ftype, nf, &dtype, &tm, &fsec, offset ? &tz : NULL) != 0 ||
		dtype != DTK_DATE)
		return false;
	return tm2timestamp(&tm, fsec, &tz, result) == 0;
}

/* ---------- JSON ---------- */

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
Jsonb *
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
JsonbValue *
json_field(JsonbContainer *object, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(object, key, strlen(key), NULL);

	if (v != NULL && v->type == jbvNull)
		return NULL;
	return v;
}

/* Read a string field; absent is an error only when required */
bool
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
bool
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
bool
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
bool
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

/* How many numeric constants are kept parsed */
#define NUMERIC_CONSTANTS 8

/*
 * A numeric constant, parsed once per backend: amounts are checked against
 * their limits for every answer and every notification.
 */
Numeric
qiwi_numeric_constant(const char *literal)
{
	static const char *literals[NUMERIC_CONSTANTS];
	static Numeric values[NUMERIC_CONSTANTS];
	static int	n = 0;
	MemoryContext old;
	Numeric		value;

	for (int i = 0; i < n; i++)
		if (strcmp(literals[i], literal) == 0)
			return values[i];
	old = MemoryContextSwitchTo(n < NUMERIC_CONSTANTS ? TopMemoryContext : CurrentMemoryContext);
	value = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(literal),
												ObjectIdGetDatum(InvalidOid),
												Int32GetDatum(-1)));
	if (n < NUMERIC_CONSTANTS)
	{
		literals[n] = pstrdup(literal);
		values[n++] = value;
	}
	MemoryContextSwitchTo(old);
	return value;
}

/*
 * Read amount{value,currency}: value as a JSON number or a numeric string,
 * above 0 and at most max_amount (a numeric literal), with at most two decimals
 */
bool
qiwi_json_amount(JsonbContainer *object, const char *max_amount, Numeric *amount,
				 char **currency, char **problem)
{
	return qiwi_json_money(object, "amount", false, max_amount, amount, currency, problem);
}

/*
 * Read the money member key {value,currency} as qiwi_json_amount does; with
 * allow_zero, 0 is valid too (what a payment has captured or refunded so far)
 */
bool
qiwi_json_money(JsonbContainer *object, const char *key, bool allow_zero,
				const char *max_amount, Numeric *amount, char **currency, char **problem)
{
	JsonbContainer *amount_obj;
	JsonbValue *v;
	Numeric		value;
	int			sign;

	if (!json_member_object(object, key, true, &amount_obj, NULL, problem))
		return false;
	if (!json_string(amount_obj, "currency", true, currency, problem))
		return false;
	v = json_field(amount_obj, "value");
	if (v == NULL)
	{
		*problem = psprintf("field \"%s.value\" is missing", key);
		return false;
	}
	if (v->type == jbvNumeric)
		value = v->val.numeric;
	else if (v->type == jbvString && v->val.string.len > QIWI_MAX_AMOUNT_STRING)
	{
		/* numeric input of thousands of digits could overflow */
		*problem = psprintf("field \"%s.value\" is a string of more than %d characters",
							key, QIWI_MAX_AMOUNT_STRING);
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
		*problem = psprintf("field \"%s.value\" is neither a number nor a decimal string", key);
		return false;
	}
	sign = DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(value),
											 NumericGetDatum(qiwi_numeric_constant("0"))));
	if (sign < 0 || (sign == 0 && !allow_zero) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(value),
										  NumericGetDatum(qiwi_numeric_constant(max_amount)))) > 0)
	{
		/* not printed: it may have thousands of digits */
		*problem = psprintf("field \"%s.value\" is out of range: QIWI's amounts are above 0 and at most %s",
							key, max_amount);
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

/* Append "key":"value" to a JSON object being built, with a leading comma */
void
append_json_member(StringInfo buf, const char *key, const char *value, bool *first)
{
	if (!*first)
		appendStringInfoChar(buf, ',');
	*first = false;
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	escape_json(buf, value);
}
