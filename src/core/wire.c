/*
 * wire.c
 *		What every API's wire shares, from what the API declares of it (a
 *		WireFormat): the URL of a call, the merchant's options a call cannot
 *		go without, the operation with its credentials (Bearer or Basic),
 *		its body's type and how the API writes errors, and the reading of
 *		the object an answer holds, and of the integers and money QIWI
 *		writes with a currency's ISO number.
 */
#include "core/core.h"

#include "utils/builtins.h"

/*
 * A merchant's option that a call of the API cannot go without, or a 55000
 * error saying who gives it, and where
 */
const char *
wire_require_option(const WireFormat *wire, const Merchant *merchant, int option)
{
	const char *value = merchant_value(merchant, option);
	const MerchantOptionDef *def = merchant_option_def(option);

	if (value != NULL)
		return value;
	/* an API whose key no setting holds has no default merchant */
	if (merchant->server == InvalidOid && merchant_option_def(*wire->key_option)->setting == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the default merchant cannot make %s calls: it has no %s %s",
						wire->api_name, wire->api_name, def->name),
				 errdetail("%s keys are options of a merchant's user mapping; the qiwi.* settings hold none.",
						   wire->api_name),
				 errhint("Create a merchant: CREATE SERVER name FOREIGN DATA WRAPPER qiwi OPTIONS (%s '...'); CREATE USER MAPPING FOR PUBLIC SERVER name OPTIONS (%s '...'); and name it in the call's merchant argument.",
						 merchant_option_def(wire->account_option ? *wire->account_option : *wire->url_option)->name,
						 merchant_option_def(*wire->key_option)->name)));
	if (merchant->server == InvalidOid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is not set", def->setting_name),
				 def->setting == &qiwi_secret_key ?
				 errhint("Put the key in a file readable only by the server's user and name it in qiwi.secret_key_file (see \"Holding keys\" in the README).") :
				 errhint("Set %s, or name a merchant that has %s.", def->setting_name, def->name)));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("merchant \"%s\" has no %s", merchant->name, def->name),
			 def->place == MERCHANT_ON_USER_MAPPING ?
			 errhint("A superuser gives it with CREATE USER MAPPING FOR PUBLIC SERVER %s OPTIONS (%s '...'); a mapping for a single role is not used.",
					 quote_identifier(merchant->name), def->name) :
			 errhint("Its owner gives it with ALTER SERVER %s OPTIONS (ADD %s '...').",
					 quote_identifier(merchant->name), def->name)));
	pg_unreachable();
}

/*
 * URL of a call for a merchant: its base URL (or the API's default)
 * without trailing '/', its account's path and id if the API has one, then
 * the segments, each after a '/': the first,
 * third, ... are the API's fixed words and pass as they are; the others
 * are ids, and are escaped.
 */
char *
wire_url(const WireFormat *wire, const Merchant *merchant, int nsegments,
		 const char *const *segments)
{
	StringInfoData url;
	const char *base = merchant_value(merchant, *wire->url_option);
	size_t		base_len;

	if (base == NULL)
		base = wire->default_url;
	base_len = strlen(base);
	while (base_len > 0 && base[base_len - 1] == '/')
		base_len--;
	initStringInfo(&url);
	appendBinaryStringInfo(&url, base, base_len);
	if (wire->account_path != NULL)
		appendStringInfo(&url, "/%s/%s", wire->account_path,
						 http_escape_path_segment(wire_require_option(wire, merchant,
																	  *wire->account_option)));
	for (int i = 0; i < nsegments; i++)
	{
		appendStringInfoChar(&url, '/');
		appendStringInfoString(&url, i % 2 == 0 ? segments[i] : http_escape_path_segment(segments[i]));
	}
	return url.data;
}

/*
 * Start an operation of an API for a merchant: its request, with the
 * headers every call of the API carries (it takes JSON; the merchant's
 * credentials), its body's type, and what it does.  A call that may not be
 * sent again after a failure is never sent over a kept-alive connection.
 */
void
wire_operation(QiwiOperation *op, const WireFormat *wire, const Merchant *merchant,
			   HttpMethod method, char *url, char *body, char *context, const char *retry_hint,
			   bool idempotent)
{
	const char **headers = palloc(sizeof(char *) * 2);
	const char *key = wire_require_option(wire, merchant, *wire->key_option);

	memset(op, 0, sizeof(*op));
	headers[0] = "Accept: application/json";
	if (wire->auth == WIRE_AUTH_BASIC)
		headers[1] = http_authorization("Basic",
										wire_require_option(wire, merchant, *wire->user_option),
										key);
	else
		headers[1] = http_authorization("Bearer", NULL, key);
	op->merchant = merchant;
	op->request.method = method;
	op->request.url = url;
	op->request.body = body;
	if (method != HTTP_GET)
		op->request.content_type = wire->body == WIRE_BODY_FORM ?
			"application/x-www-form-urlencoded; charset=utf-8" : "application/json;charset=UTF-8";
	op->request.headers = headers;
	op->request.nheaders = 2;
	op->context = context;
	op->retry_hint = retry_hint;
	op->idempotent = idempotent;
	op->key_option = wire->key_name;
	op->errors = wire->errors;
}

/* An answer's object to read with an API's parser */
typedef struct ObjectToRead
{
	WireObjectParser parse;
	void	   *result;
} ObjectToRead;

/* Reader of the JSON object of an answer (a QiwiAnswerReader) */
static bool
read_object(const HttpResponse *resp, void *result, char **problem)
{
	ObjectToRead *o = (ObjectToRead *) result;
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);

	return jb != NULL && o->parse(&jb->root, o->result, problem);
}

/*
 * Read the object of an answer to op with the API's parser, guarded (see
 * qiwi_read_answer); false with a QK BAD *error if it cannot
 */
bool
wire_read_object(QiwiOperation *op, const HttpResponse *resp, WireObjectParser parse,
				 void *result, QiwiError *error)
{
	ObjectToRead o = {parse, result};
	char	   *problem = NULL;

	if (!qiwi_read_answer(read_object, resp, &o, &problem))
		return qiwi_malformed(error, op->context, problem);
	return true;
}

/* Read an answer to op with an API's reader, guarded; false with a QK BAD *error if it cannot */
bool
wire_read_answer(QiwiOperation *op, const HttpResponse *resp, QiwiAnswerReader reader,
				 void *result, QiwiError *error)
{
	char	   *problem = NULL;

	return qiwi_read_answer(reader, resp, result, &problem) ||
		qiwi_malformed(error, op->context, problem);
}

/* An answer's array to read into a list, with an API's parser of its objects */
typedef struct ListToRead
{
	WireObjectParser parse;
	size_t		size;
	List	  **out;
} ListToRead;

/* Reader of a JSON array of objects answered (a QiwiAnswerReader) */
static bool
read_list(const HttpResponse *resp, void *result, char **problem)
{
	ListToRead *l = (ListToRead *) result;
	char	   *wrapped;
	Jsonb	   *jb;

	if (resp->body_len > 0 && resp->body[0] != '[')
	{
		*problem = pstrdup("the answer is not an array");
		return false;
	}
	/* parse_json_object (depth, encoding) reads objects: the array becomes a member */
	wrapped = psprintf("{\"list\":%s}", resp->body);
	jb = parse_json_object(wrapped, strlen(wrapped), NULL, problem);
	return jb != NULL &&
		json_object_list(json_field(&jb->root, "list"), "the answer", l->size, l->parse, l->out,
						 problem);
}

/*
 * Read the array of objects answered to op into *out (structs of a size),
 * each with the API's parser, guarded; false with a QK BAD *error
 */
bool
wire_read_list(QiwiOperation *op, const HttpResponse *resp, WireObjectParser parse, size_t size,
			   List **out, QiwiError *error)
{
	ListToRead	l = {parse, size, out};
	char	   *problem = NULL;

	*out = NIL;
	if (!qiwi_read_answer(read_list, resp, &l, &problem))
		return qiwi_malformed(error, op->context, problem);
	return true;
}

/* An answer's object read as the API's WireAnswer says (a QiwiAnswerReader) */
static bool
read_wire_answer(const HttpResponse *resp, void *result, char **problem)
{
	QiwiOperation *op = (QiwiOperation *) result;
	const WireAnswer *answer = (const WireAnswer *) op->args;
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, NULL, problem);
	JsonbValue	whole = {.type = jbvBinary};

	if (jb == NULL)
		return false;
	if (answer->object != NULL)
		return answer->object(&jb->root, op->result, problem);
	if (answer->key != NULL)
		return qiwi_page_read_array((QiwiPage *) op->result, &jb->root, answer->key, answer->item,
									problem);
	whole.val.binary.data = &jb->root;
	whole.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	return answer->item(&whole, (void **) op->result, problem);
}

/* Read an answer to op as op->args, a WireAnswer, says (a QiwiOperationReader) */
static bool
read_wire_call(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	return wire_read_answer(op, resp, read_wire_answer, op, error);
}

/*
 * Send a reading call (an operation the API built, safe to repeat) whose
 * answer is read into result as answer says; raise what went wrong
 */
void
wire_read_call(QiwiOperation *op, const WireAnswer *answer, void *result)
{
	op->retry_hint = QIWI_READ_RETRY_HINT;
	op->read = read_wire_call;
	op->args = answer;
	op->result = result;
	qiwi_call(op);
}

/*
 * Is the answer about the object op asked about (a what: "bill", ...)?
 * Otherwise false with a QK BAD *error: it would be recorded for another.
 */
bool
wire_answer_is_about(QiwiOperation *op, const char *what, const char *answered,
					 const char *asked, QiwiError *error)
{
	if (strcmp(answered, asked) == 0)
		return true;
	return qiwi_malformed(error, op->context,
						  psprintf("the answer is about %s \"%s\"", what, answered));
}

/* ---------- integers and money with a currency's ISO number ---------- */

/* The ISO letters of a currency QIWI writes as its ISO number (643: RUB); others stay digits */
char *
qiwi_currency_letters(int32 numeric_code)
{
	switch (numeric_code)
	{
		case 643:
			return "RUB";
		case 840:
			return "USD";
		case 978:
			return "EUR";
		case 398:
			return "KZT";
	}
	return psprintf("%d", numeric_code);
}

/* An integer QIWI writes as a number or as a string of digits ("errorCode": "0"); absent: 0 */
bool
json_integer(JsonbContainer *object, const char *key, int64 *out, char **problem)
{
	char	   *text;
	char	   *end;

	*out = 0;
	if (!json_identifier(object, key, &text, problem))
		return false;
	if (text == NULL)
		return true;
	errno = 0;
	*out = strtoi64(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
	{
		*problem = psprintf("field \"%s\" is not an integer: \"%s\"", key, text);
		return false;
	}
	return true;
}

/*
 * Money {amount, currency} (a JSON number, and the currency's ISO number as
 * a number or digits) as *amount and the currency's letters (currency NULL:
 * not read); what names the object in *problem
 */
bool
json_coded_money(JsonbContainer *money, const char *what, Numeric *amount, char **currency,
				 char **problem)
{
	JsonbValue *v = json_field(money, "amount");
	int64		code;

	if (v == NULL || v->type != jbvNumeric)
	{
		*problem = psprintf("field \"%s.amount\" is not a number", what);
		return false;
	}
	*amount = v->val.numeric;
	if (currency == NULL)
		return true;
	if (!json_integer(money, "currency", &code, problem))
		return false;
	if (json_field(money, "currency") == NULL || code < 0 || code > PG_INT32_MAX)
	{
		*problem = psprintf("field \"%s.currency\" is not a currency's ISO number", what);
		return false;
	}
	*currency = qiwi_currency_letters((int32) code);
	return true;
}
