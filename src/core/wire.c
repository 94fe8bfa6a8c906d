/*
 * wire.c
 *		What every API's wire shares, from what the API declares of it (a
 *		WireFormat): the URL of a call, the merchant's options a call cannot
 *		go without, the operation with its credentials (Bearer or Basic),
 *		its body's type and how the API writes errors, and the reading of
 *		the object an answer holds.
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
