/*
 * validate.c
 *		Checks of SQL arguments, before anything is sent: every bad input is
 *		an error that names the argument.  The limits are each API's own
 *		(ArgLimits).
 */
#include "core/core.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

/*
 * Reject text that is not UTF-8 in a SQL_ASCII database, where text is any
 * bytes: QIWI reads UTF-8, and an argument goes to QIWI as it is.  (Every
 * other encoding holds only valid text, and no invalid UTF-8 gets into a
 * UTF8 database.)
 */
static void
arg_check_utf8(const char *value, int len, const char *argname)
{
	int			valid;

	if (GetDatabaseEncoding() != PG_SQL_ASCII)
		return;
	valid = pg_encoding_verifymbstr(PG_UTF8, value, len);
	if (valid < len)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("%s is not valid UTF-8", argname),
				 errdetail("Byte %d is not part of a UTF-8 character. The database encoding is SQL_ASCII, which takes any bytes as text; QIWI reads UTF-8, and nothing was sent.",
						   valid + 1),
				 errhint("Send the text in UTF-8 from the client, or use a UTF8 database.")));
}

/* Fetch a text argument that is not NULL (UTF-8 in a SQL_ASCII database) */
static char *
arg_text(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	text	   *arg = PG_GETARG_TEXT_PP(argno);

	arg_check_utf8(VARDATA_ANY(arg), VARSIZE_ANY_EXHDR(arg), argname);
	return text_to_cstring(arg);
}

/* Fetch a required text argument, or raise naming it */
char *
arg_required_text(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	return arg_text(fcinfo, argno, argname);
}

/* Fetch an optional text argument (NULL = omitted); empty is an error */
char *
arg_optional_text(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	char	   *value;

	if (PG_ARGISNULL(argno))
		return NULL;
	value = arg_text(fcinfo, argno, argname);
	if (value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname),
				 errhint("Pass NULL to leave it out.")));
	return value;
}

/* Reject a string longer than max characters */
void
arg_check_length(const char *value, int max, const char *argname)
{
	int			len = pg_mbstrlen(value);

	if (len > max)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long", argname),
				 errdetail("It has %d characters; QIWI accepts at most %d.", len, max)));
}

/* Reject control characters, which no QIWI text field accepts */
void
arg_check_no_control_chars(const char *value, const char *argname)
{
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
	{
		if (*p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s contains a control character", argname),
					 errdetail("Character U+%04X at byte %d.", *p,
							   (int) ((const char *) p - value) + 1)));
	}
}

/*
 * An id of ours (a bill's, a refund's): 1 to limits->max_id_length Latin
 * letters, digits, '_', '-' and '.', not starting with a dot.  That is what
 * QIWI's form documents allow, it keeps ids readable in URLs, logs and
 * error messages, and no '|' can make a signed string ambiguous.
 */
char *
arg_required_id(FunctionCallInfo fcinfo, int argno, const char *argname, const ArgLimits *limits)
{
	char	   *value = arg_required_text(fcinfo, argno, argname);

	if (value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));
	arg_check_length(value, limits->max_id_length, argname);
	for (const char *p = value; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (!(isascii(c) && (isalnum(c) || c == '_' || c == '-' || c == '.')) ||
			(p == value && c == '.'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s contains a character QIWI does not accept", argname),
					 errdetail("Byte 0x%02X at position %d. Allowed: Latin letters, digits, \"_\", \"-\" and \".\" (not first).",
							   c, (int) (p - value) + 1)));
	}
	return value;
}

/* An amount: finite, > 0, at most two decimals, within Number(6.2) */
Numeric
arg_required_amount(FunctionCallInfo fcinfo, int argno, const char *argname, const ArgLimits *limits)
{
	Numeric		amount;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	amount = PG_GETARG_NUMERIC(argno);
	if (numeric_is_nan(amount) || numeric_is_inf(amount))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number", argname)));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(amount),
										  NumericGetDatum(qiwi_numeric_constant("0")))) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be greater than zero", argname)));
	if (!qiwi_amount_has_cents_only(amount))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has more than two decimal places", argname),
				 errdetail("QIWI takes amounts in whole kopecks; the extension never rounds money."),
				 errhint("Round it yourself, e.g. round(amount, 2), if that is what you mean.")));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(amount),
										  NumericGetDatum(qiwi_numeric_constant(limits->max_amount)))) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s exceeds QIWI's maximum of %s", argname, limits->max_amount)));
	return amount;
}

/* A currency: a three-letter ISO 4217 code in upper case, one the API takes */
char *
arg_required_currency(FunctionCallInfo fcinfo, int argno, const char *argname, const ArgLimits *limits)
{
	char	   *value = arg_required_text(fcinfo, argno, argname);
	bool		letters = strlen(value) == 3;
	bool		upper = letters;

	for (int i = 0; letters && i < 3; i++)
	{
		letters = (value[i] >= 'A' && value[i] <= 'Z') || (value[i] >= 'a' && value[i] <= 'z');
		upper = upper && value[i] >= 'A' && value[i] <= 'Z';
	}
	if (!letters)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a three-letter ISO 4217 code such as 'RUB'", argname)));
	if (!upper)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be written in upper case, as QIWI takes it: '%c%c%c', not '%s'",
						argname, pg_toupper((unsigned char) value[0]), pg_toupper((unsigned char) value[1]),
						pg_toupper((unsigned char) value[2]), value)));
	if (limits->currencies != NULL)
	{
		StringInfoData taken;

		initStringInfo(&taken);
		for (int i = 0; limits->currencies[i] != NULL; i++)
		{
			if (strcmp(limits->currencies[i], value) == 0)
				return value;
			appendStringInfo(&taken, "%s%s", i > 0 ? ", " : "", limits->currencies[i]);
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s '%s' is not one the %s API takes", argname, value, limits->api_name),
				 errdetail("It takes %s. Nothing was sent to QIWI.", taken.data)));
	}
	return value;
}

/* Check an expiry: in the future and at most 45 days ahead, as QIWI allows */
void
arg_check_expiry(TimestampTz value, const char *argname, const ArgLimits *limits)
{
	TimestampTz now = GetCurrentTimestamp();

	if (TIMESTAMP_NOT_FINITE(value) || value <= now)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be in the future", argname)));
	if (value > now + (int64) limits->max_lifetime_days * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be at most %d days ahead", argname, limits->max_lifetime_days),
				 errdetail("QIWI expires every bill at most %d days after it is created.",
						   limits->max_lifetime_days)));
}

/* A required expiry argument */
TimestampTz
arg_required_expiry(FunctionCallInfo fcinfo, int argno, const char *argname, const ArgLimits *limits)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname)));
	arg_check_expiry(PG_GETARG_TIMESTAMPTZ(argno), argname, limits);
	return PG_GETARG_TIMESTAMPTZ(argno);
}

/*
 * Two required timestamptz arguments from argno on, named names[0] and
 * names[1] (a history's since and until): finite, the first before the second
 */
void
arg_time_range(FunctionCallInfo fcinfo, int argno, const char *const *names, TimestampTz *range)
{
	for (int i = 0; i < 2; i++)
	{
		if (PG_ARGISNULL(argno + i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL", names[i])));
		range[i] = PG_GETARG_TIMESTAMPTZ(argno + i);
		if (TIMESTAMP_NOT_FINITE(range[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be a finite time", names[i])));
	}
	if (range[0] >= range[1])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be before %s", names[0], names[1]),
				 errdetail("%s is %s; %s is %s.", names[0], timestamptz_to_str(range[0]),
						   names[1], timestamptz_to_str(range[1]))));
}

/* A time range's two arguments (arg_time_range) as a range read in windows of width */
void
arg_time_windows(FunctionCallInfo fcinfo, int argno, const char *const *names, int64 width,
				 QiwiTimeWindows *windows)
{
	TimestampTz range[2];

	arg_time_range(fcinfo, argno, names, range);
	qiwi_windows_init(windows, range[0], range[1], width);
}

/* A phone number in international format, digits only: 79123456789 */
char *
arg_optional_phone(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	char	   *value = arg_optional_text(fcinfo, argno, argname);
	size_t		len;

	if (value == NULL)
		return NULL;
	len = strlen(value);
	if (len < 7 || len > 15 || strspn(value, "0123456789") != len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be 7 to 15 digits in international format, e.g. 79123456789", argname)));
	return value;
}

/* An e-mail address: one '@' with text on both sides, no spaces */
char *
arg_optional_email(FunctionCallInfo fcinfo, int argno, const char *argname, const ArgLimits *limits)
{
	char	   *value = arg_optional_text(fcinfo, argno, argname);
	const char *at;

	if (value == NULL)
		return NULL;
	arg_check_length(value, limits->max_field_length, argname);
	arg_check_no_control_chars(value, argname);
	at = strchr(value, '@');
	if (at == NULL || at == value || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
		strchr(value, ' ') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not an e-mail address", argname)));
	return value;
}

/* Free text QIWI stores for us: bounded length, no control characters */
char *
arg_optional_field(FunctionCallInfo fcinfo, int argno, const char *argname, int max)
{
	char	   *value = arg_optional_text(fcinfo, argno, argname);

	if (value == NULL)
		return NULL;
	arg_check_length(value, max, argname);
	arg_check_no_control_chars(value, argname);
	return value;
}

/* custom_fields: a JSON object whose values are strings of <= 255 characters */
Jsonb *
arg_optional_custom_fields(FunctionCallInfo fcinfo, int argno, const char *argname, const ArgLimits *limits)
{
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	if (PG_ARGISNULL(argno))
		return NULL;
	jb = PG_GETARG_JSONB_P(argno);
	if (!JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", argname)));

	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			arg_check_utf8(key, v.val.string.len, psprintf("a key of %s", argname));
			if (key[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s has an empty key", argname)));
			arg_check_length(key, limits->max_field_length, argname);
		}
		else if (tok == WJB_VALUE)
		{
			char	   *value;

			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s must hold only string values", argname),
						 errdetail("The value of key \"%s\" is not a string.", key)));
			value = pnstrdup(v.val.string.val, v.val.string.len);
			arg_check_utf8(value, v.val.string.len,
						   psprintf("the value of key \"%s\" of %s", key, argname));
			if (pg_mbstrlen(value) > limits->max_field_length)
				ereport(ERROR,
						(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
						 errmsg("%s is too long", argname),
						 errdetail("The value of key \"%s\" has more than %d characters.",
								   key, limits->max_field_length)));
		}
	}
	return jb;
}

/* An http(s) URL that libcurl can parse */
char *
arg_optional_url(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	char	   *value = arg_optional_text(fcinfo, argno, argname);

	if (value == NULL)
		return NULL;
	arg_check_length(value, 2048, argname);
	if (!http_url_is_valid(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an absolute http or https URL", argname)));
	return value;
}

/*
 * Check that a notification trigger (named trigger) fires BEFORE INSERT
 * for each row with at most one argument, 'mark' (the default) or
 * 'reject'; whether it rejects.
 */
bool
arg_notification_trigger_rejects(FunctionCallInfo fcinfo, const char *trigger)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be a BEFORE INSERT ... FOR EACH ROW trigger", trigger)));
	if (trigdata->tg_trigger->tgnargs > 1 ||
		(trigdata->tg_trigger->tgnargs == 1 &&
		 strcmp(trigdata->tg_trigger->tgargs[0], "mark") != 0 &&
		 strcmp(trigdata->tg_trigger->tgargs[0], "reject") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s takes one argument, 'mark' or 'reject'", trigger)));
	return trigdata->tg_trigger->tgnargs == 1 &&
		strcmp(trigdata->tg_trigger->tgargs[0], "reject") == 0;
}

/* The number of a trigger table's column, which must have the given type */
int
arg_trigger_column(Relation rel, const char *name, Oid type, const char *trigger)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0 || TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid != type)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table \"%s\" needs a column \"%s\" of type %s for %s",
						RelationGetRelationName(rel), name, format_type_be(type), trigger)));
	return attnum;
}

/*
 * The blessed tuple descriptor of a function's composite result (type,
 * ncols columns), looked up on its first call and kept in fn_extra with
 * its FmgrInfo (a new plan gets a new one); so the functions that return
 * one keep nothing else there.
 */
TupleDesc
arg_result_desc(FunctionCallInfo fcinfo, int ncols, const char *type)
{
	TupleDesc	tupdesc;
	MemoryContext old;

	if (fcinfo->flinfo->fn_extra != NULL)
		return (TupleDesc) fcinfo->flinfo->fn_extra;
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE ||
		tupdesc->natts != ncols)
		elog(ERROR, "return type must be %s", type);
	fcinfo->flinfo->fn_extra = BlessTupleDesc(tupdesc);
	MemoryContextSwitchTo(old);
	return (TupleDesc) fcinfo->flinfo->fn_extra;
}

/* Is value one of names (a NULL-terminated list: statuses, documented keys ...)? */
bool
qiwi_name_in(const char *value, const char *const *names)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(value, names[i]) == 0)
			return true;
	return false;
}

/* Is s min to max digits (an id, a wallet number)? */
bool
qiwi_all_digits(const char *s, size_t min, size_t max)
{
	size_t		len = strlen(s);

	return len >= min && len <= max && strspn(s, "0123456789") == len;
}
