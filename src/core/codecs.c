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

/* Is an amount of money at most another, in the same currency? */
bool
qiwi_money_within(Numeric a, const char *a_currency, Numeric limit, const char *limit_currency)
{
	return strcmp(a_currency, limit_currency) == 0 &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a),
										  NumericGetDatum(limit))) <= 0;
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
		if (*p == ':')
			p++;
		else if (*p == '\0')
			return true;
		if (!skip_digits(&p, 2))
			return false;
	}
	return *p == '\0';
}

/*
 * Parse a QIWI timestamp with PostgreSQL's date/time input routines, once
 * it has QIWI's shape.  QIWI writes 0-3 fractional digits and offsets as
 * +03:00, +03 or not at all; a timestamp without an offset is Moscow time,
 * as in every QIWI sample.  The result depends on the text alone (no
 * session setting), so the last one parsed is kept: an answer often
 * repeats it (a new bill's status changed when the bill was created).
 */
bool
parse_qiwi_timestamp(const char *str, TimestampTz *result)
{
	static char last_str[MAXDATELEN];
	static TimestampTz last_result;
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			tz = -QIWI_DEFAULT_UTC_OFFSET;
	bool		offset;
	struct pg_tm tm;
	fsec_t		fsec;

	if (last_str[0] != '\0' && strcmp(str, last_str) == 0)
	{
		*result = last_result;
		return true;
	}
	if (strlen(str) >= MAXDATELEN || !has_qiwi_timestamp_shape(str, &offset))
		return false;

	/* without a zone argument, DecodeDateTime refuses input that has one */
	if (ParseDateTime(str, workbuf, sizeof(workbuf), field, ftype,
					  MAXDATEFIELDS, &nf) != 0 ||
		DecodeDateTime(field, ftype, nf, &dtype, &tm, &fsec, offset ? &tz : NULL) != 0 ||
		dtype != DTK_DATE ||
		tm2timestamp(&tm, fsec, &tz, result) != 0)
		return false;
	strlcpy(last_str, str, sizeof(last_str));
	last_result = *result;
	return true;
}

/* ---------- JSON ---------- */

/*
 * A jsonb value built in one pass of PostgreSQL's JSON parser, as jsonb_in
 * builds it, but refusing to nest deeper than QIWI_MAX_JSON_DEPTH: the
 * parser recurses, and would run out of stack on a hostile body before it
 * could say what is wrong.
 */
typedef struct JsonbBuild
{
	JsonLexContext *lex;
	JsonbParseState *state;
	JsonbValue *result;			/* the root, once complete */
	int			depth;
	bool		too_deep;
	bool		root_scalar;
} JsonbBuild;

/* Enter an object or an array; past the bound, end the parse */
static bool
jsonb_build_enter(JsonbBuild *b)
{
	if (++b->depth > QIWI_MAX_JSON_DEPTH)
	{
		/*
		 * Actions cannot stop pg_parse_json: leave the lexer nothing more to
		 * read, and the parser returns at once, failing on the missing end
		 */
		b->too_deep = true;
		b->lex->token_terminator = b->lex->input + b->lex->input_length;
		return false;
	}
	return true;
}

/* Semantic action: an object starts */
static void
jsonb_build_object_start(void *arg)
{
	JsonbBuild *b = (JsonbBuild *) arg;

	if (jsonb_build_enter(b))
		(void) pushJsonbValue(&b->state, WJB_BEGIN_OBJECT, NULL);
}

/* Semantic action: an object ends */
static void
jsonb_build_object_end(void *arg)
{
	JsonbBuild *b = (JsonbBuild *) arg;

	b->depth--;
	b->result = pushJsonbValue(&b->state, WJB_END_OBJECT, NULL);
}

/* Semantic action: an array starts */
static void
jsonb_build_array_start(void *arg)
{
	JsonbBuild *b = (JsonbBuild *) arg;

	if (jsonb_build_enter(b))
		(void) pushJsonbValue(&b->state, WJB_BEGIN_ARRAY, NULL);
}

/* Semantic action: an array ends */
static void
jsonb_build_array_end(void *arg)
{
	JsonbBuild *b = (JsonbBuild *) arg;

	b->depth--;
	b->result = pushJsonbValue(&b->state, WJB_END_ARRAY, NULL);
}

/* Semantic action: an object's key (bodies are far below jsonb's string limit) */
static void
jsonb_build_key(void *arg, char *fname, bool isnull)
{
	JsonbBuild *b = (JsonbBuild *) arg;
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.len = strlen(fname);
	v.val.string.val = fname;
	(void) pushJsonbValue(&b->state, WJB_KEY, &v);
}

/* Semantic action: a scalar, as jsonb_in reads it (numbers through numeric_in) */
static void
jsonb_build_scalar(void *arg, char *token, JsonTokenType tokentype)
{
	JsonbBuild *b = (JsonbBuild *) arg;
	JsonbValue	v;

	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
			v.type = jbvString;
			v.val.string.len = strlen(token);
			v.val.string.val = token;
			break;
		case JSON_TOKEN_NUMBER:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(token),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)));
			break;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			v.type = jbvBool;
			v.val.boolean = tokentype == JSON_TOKEN_TRUE;
			break;
		default:
			v.type = jbvNull;
			break;
	}
	if (b->state == NULL)
		b->root_scalar = true;	/* not an object: nothing to build */
	else
		(void) pushJsonbValue(&b->state,
							  b->state->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE, &v);
}

/*
 * Run PostgreSQL's JSON parser over QIWI's text.  A SQL_ASCII database
 * stores QIWI's UTF-8 as it comes (utf8_to_server), so the parser runs as
 * in a UTF8 database: a \u escape becomes the UTF-8 bytes of its
 * character, the very bytes stored when QIWI sends the character itself.
 * (Left to SQL_ASCII, whose text has no known encoding, the parser raises
 * 0A000 on any escape beyond ASCII.)  Nothing else in a parse reads the
 * database encoding: the text is valid UTF-8, numbers are ASCII.
 */
static JsonParseErrorType
parse_json_as_utf8(JsonLexContext *lex, JsonSemAction *sem)
{
	volatile JsonParseErrorType rc;

	if (GetDatabaseEncoding() != PG_SQL_ASCII)
		return pg_parse_json(lex, sem);
	SetDatabaseEncoding(PG_UTF8);
	PG_TRY();
	{
		rc = pg_parse_json(lex, sem);
	}
	PG_FINALLY();
	{
		SetDatabaseEncoding(PG_SQL_ASCII);
	}
	PG_END_TRY();
	return rc;
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
 * failure; otherwise they become '?' and *lossy says so.  A SQL_ASCII
 * database lacks none: it holds QIWI's text as UTF-8.
 */
Jsonb *
parse_json_object(char *body, size_t len, bool *lossy, char **problem)
{
	char	   *text;
	bool		lost;
	JsonbBuild	build;
	JsonSemAction sem;
	JsonParseErrorType rc;

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
	text = utf8_to_server(body, len, &lost);
	if (lossy != NULL)
		*lossy = lost;
	else if (lost)
	{
		*problem = psprintf("the body has characters that the database encoding %s cannot represent",
							GetDatabaseEncodingName());
		return NULL;
	}

	/* one pass: validated, bounded in depth and built into jsonb */
	memset(&build, 0, sizeof(build));
	build.lex = makeJsonLexContextCstringLen(text, strlen(text), GetDatabaseEncoding(), true);
	sem.semstate = &build;
	sem.object_start = jsonb_build_object_start;
	sem.object_end = jsonb_build_object_end;
	sem.array_start = jsonb_build_array_start;
	sem.array_end = jsonb_build_array_end;
	sem.object_field_start = jsonb_build_key;
	sem.object_field_end = NULL;
	sem.array_element_start = NULL;
	sem.array_element_end = NULL;
	sem.scalar = jsonb_build_scalar;
	rc = parse_json_as_utf8(build.lex, &sem);
	if (build.too_deep)
	{
		*problem = psprintf("the body nests deeper than %d levels", QIWI_MAX_JSON_DEPTH);
		return NULL;
	}
	if (rc != JSON_SUCCESS)
	{
		*problem = psprintf("the body is not valid JSON: %s", json_errdetail(rc, build.lex));
		return NULL;
	}
	if (build.root_scalar || build.result->type != jbvObject)
	{
		*problem = pstrdup("the body is not a JSON object");
		return NULL;
	}
	return JsonbValueToJsonb(build.result);
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

/*
 * Read the terms of a bill (Bill Payments) or an invoice (Payin): its
 * expirationDateTime, payUrl, comment, customer and customFields, each
 * optional
 */
bool
qiwi_json_invoice_terms(JsonbContainer *root, QiwiInvoiceTerms *terms, char **problem)
{
	JsonbContainer *ignored;

	return json_timestamp(root, "expirationDateTime", NULL,
						  &terms->has_expires_at, &terms->expires_at, problem) &&
		json_string(root, "payUrl", false, &terms->pay_url, problem) &&
		json_string(root, "comment", false, &terms->comment, problem) &&
		json_member_object(root, "customer", false, &ignored, &terms->customer, problem) &&
		json_member_object(root, "customFields", false, &ignored, &terms->custom_fields,
						   problem);
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

/* Append "key":{"currency":..,"value":..}, the amount with exactly two decimals */
void
append_json_money(StringInfo buf, const char *key, Numeric amount, const char *currency)
{
	bool		first = true;

	escape_json(buf, key);
	appendStringInfoString(buf, ":{");
	append_json_member(buf, "currency", currency, &first);
	append_json_member(buf, "value", qiwi_format_amount(amount), &first);
	appendStringInfoChar(buf, '}');
}

/*
 * Read a JSON array of objects (what, for messages: "field \"payments\"")
 * into a list of structs of a size, each read by parse; false with
 * *problem at the first that is not an object or that parse refuses
 */
bool
json_object_list(JsonbValue *array, const char *what, size_t size, WireObjectParser parse,
				 List **out, char **problem)
{
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;

	if (array->type != jbvBinary || !JsonContainerIsArray(array->val.binary.data))
	{
		*problem = psprintf("%s is not an array", what);
		return false;
	}
	it = JsonbIteratorInit(array->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		void	   *item;

		if (tok != WJB_ELEM)
			continue;
		if (elem.type != jbvBinary || !JsonContainerIsObject(elem.val.binary.data))
		{
			*problem = psprintf("%s has an element that is not an object", what);
			return false;
		}
		item = palloc0(size);
		if (!parse(elem.val.binary.data, item, problem))
			return false;
		*out = lappend(*out, item);
	}
	return true;
}
