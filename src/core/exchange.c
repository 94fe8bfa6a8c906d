/*
 * exchange.c
 *		The one path to QIWI, for every API: an operation (its request, how
 *		to read its answer, whether it may be sent again) is sent once, with
 *		retries, for a SQL function, or in a batch for the reconciler, and
 *		its answer read the same way in both.  One that is not idempotent
 *		(a capture, a refund) is asked for by its id before it is ever sent
 *		again.  Failures become QiwiErrors of a stable class; nothing here
 *		raises on a bad answer.
 */
#include "core/core.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* First wait before a retry, and the longest one, in milliseconds */
#define RETRY_BASE_MS	100
#define RETRY_MAX_MS	5000
/* The shortest attempt worth making: less cannot reach QIWI and back */
#define MIN_ATTEMPT_MS	100

int			qiwi_timeout_ms = 10000;
int			qiwi_connect_timeout_ms = 3000;
int			qiwi_max_retries = 3;
int			qiwi_call_deadline_ms = 10000;
char	   *qiwi_ca_file = NULL;

/* ---------- reading answers ---------- */

/* An answer and what to read it into, for a guarded QiwiAnswerReader */
typedef struct AnswerToRead
{
	QiwiAnswerReader reader;
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
bool
qiwi_read_answer(QiwiAnswerReader reader, const HttpResponse *resp, void *result, char **problem)
{
	AnswerToRead a = {reader, resp, result};

	return qiwi_guarded(run_reader, &a, GUARD_DATA_ERRORS, problem);
}

/* Bill Payments' and Payin's error JSON, all of it optional */
static const char *const qiwi_code_fields[] = {"errorCode", NULL};
static const char *const qiwi_text_fields[] = {"description", NULL};
const QiwiErrorFormat qiwi_json_errors = {
	.code_fields = qiwi_code_fields,
	.text_fields = qiwi_text_fields,
	.trace_field = "traceId",
};

/* What an error answer says, in the fields its API's QiwiErrorFormat names */
typedef struct ErrorAnswer
{
	const QiwiErrorFormat *format;
	const char *code_field;		/* the field the code came from */
	char	   *error_code;
	char	   *description;
	char	   *trace_id;
	char	   *blocked_since;
	bool		lossy;			/* it had characters the database encoding lacks */
} ErrorAnswer;

/*
 * The text of a scalar member (a number as written, a string), or NULL when
 * absent or of another type; *found names the first of keys present
 */
static char *
json_scalar_text(JsonbContainer *object, const char *const *keys, const char **found)
{
	for (; object != NULL && keys != NULL && *keys != NULL; keys++)
	{
		JsonbValue *v = json_field(object, *keys);

		if (v == NULL)
			continue;
		if (found != NULL)
			*found = *keys;
		if (v->type == jbvString)
			return pnstrdup(v->val.string.val, v->val.string.len);
		if (v->type == jbvNumeric)
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		return NULL;
	}
	return NULL;
}

/* Reader of an error answer (a QiwiAnswerReader) */
static bool
read_error_answer(const HttpResponse *resp, void *result, char **problem)
{
	ErrorAnswer *answer = (ErrorAnswer *) result;
	const QiwiErrorFormat *f = answer->format;
	Jsonb	   *jb = parse_json_object(resp->body, resp->body_len, &answer->lossy, problem);
	JsonbContainer *fields;
	const char *one[2] = {NULL, NULL};

	if (jb == NULL)
		return false;
	fields = f->envelope ? json_object_member(&jb->root, f->envelope) : &jb->root;
	/* a field of another type counts as absent */
	answer->error_code = json_scalar_text(fields, f->code_fields, &answer->code_field);
	answer->description = json_scalar_text(fields, f->text_fields, NULL);
	one[0] = f->trace_field;
	answer->trace_id = json_scalar_text(fields, one, NULL);
	one[0] = f->blocked_since_field;
	answer->blocked_since = json_scalar_text(fields, one, NULL);
	return true;
}

/* The class a code of the API's table gives, or NULL */
static const QiwiErrorCode *
classed_code(const QiwiErrorFormat *format, const char *code)
{
	for (const QiwiErrorCode *c = format->codes; c != NULL && c->code != NULL && code != NULL; c++)
		if (strcmp(c->code, code) == 0)
			return c;
	return NULL;
}

/* Fill an error of the "QIWI's answer is malformed" class */
bool
qiwi_malformed(QiwiError *error, const char *context, const char *problem)
{
	error->sqlstate = ERRCODE_QIWI_MALFORMED;
	error->message = psprintf("could not %s: QIWI's answer is malformed", context);
	error->detail = pstrdup(problem);
	error->hint = NULL;
	error->retry_safe = false;
	error->error_code = NULL;
	error->blocked_until = 0;
	return false;
}

/*
 * Is what QIWI has under the call's id (a what: "bill", "refund", ...) for
 * the money the call asked?  Otherwise false with *error: an id is never
 * used again for other money.
 */
bool
qiwi_same_money_as_asked(Numeric amount, const char *currency, Numeric asked,
						 const char *asked_currency, const char *context, const char *what,
						 QiwiError *error)
{
	if (qiwi_same_money(amount, currency, asked, asked_currency))
		return true;
	error->sqlstate = ERRCODE_QIWI_INVALID_REQUEST;
	error->message = psprintf("could not %s: QIWI already has a %s with this id for a different amount",
							  context, what);
	error->detail = psprintf("QIWI's %s is for %s %s; this call asked for %s %s.", what,
							 qiwi_format_amount(amount), currency,
							 qiwi_format_amount(asked), asked_currency);
	error->hint = psprintf("Use a new %s_id for a new %s.", what, what);
	error->retry_safe = false;
	error->error_code = NULL;
	error->blocked_until = 0;
	return false;
}

/* ---------- errors ---------- */

/* Turn a transport failure into an error of its class */
static void
error_from_transport(const HttpResponse *resp, const char *context,
					 const char *retry_hint, QiwiError *error)
{
	error->detail = pstrdup(resp->error);
	error->hint = retry_hint ? pstrdup(retry_hint) : NULL;
	error->retry_safe = true;
	error->error_code = NULL;
	error->blocked_until = 0;
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
		case HTTP_FAIL_CONNECT:
			error->sqlstate = ERRCODE_QIWI_NETWORK;
			error->message = psprintf("could not %s: could not connect to QIWI", context);
			error->hint = pstrdup("Nothing was sent: no connection to QIWI was made. Repeating the call is safe.");
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

/* The class of an error answer by its HTTP status alone */
static int
status_class(long status)
{
	if (status == 401)
		return ERRCODE_QIWI_AUTHENTICATION;
	if (status == 403)
		return ERRCODE_QIWI_FORBIDDEN;
	if (status == 404)
		return ERRCODE_QIWI_NOT_FOUND;
	if (status == 423)
		return ERRCODE_QIWI_BLOCKED;
	if (status == 429)
		return ERRCODE_QIWI_RATE_LIMIT;
	if (status >= 500 && status < 600)
		return ERRCODE_QIWI_SERVER_ERROR;
	/* a 2xx here is an envelope's error: a refusal */
	if ((status >= 200 && status < 300) || (status >= 400 && status < 500))
		return ERRCODE_QIWI_INVALID_REQUEST;
	return ERRCODE_QIWI_MALFORMED;
}

/* Why QIWI refused op's key (QK401), with the hint saying which key to check */
static const char *
refused_key(const QiwiOperation *op, QiwiError *error)
{
	/* the default merchant holds one key, the settings' */
	if (op->merchant == NULL || op->merchant->server == InvalidOid)
	{
		error->hint = pstrdup("Check qiwi.secret_key_file or qiwi.secret_key.");
		return "QIWI refused the secret key";
	}
	error->hint = psprintf("Check the %s of the user mapping FOR PUBLIC of server %s.",
						   op->key_option ? op->key_option : merchant_secret_key_option(),
						   quote_identifier(op->merchant->name));
	if (op->key_option == NULL)
		return psprintf("QIWI refused the secret key of merchant \"%s\"", op->merchant->name);
	return psprintf("QIWI refused the %s of merchant \"%s\"", op->key_option, op->merchant->name);
}

/* When a block (QK423) ends: when the answer says it began, or now, plus the API's length; 0: none */
static TimestampTz
block_end(const ErrorAnswer *answer)
{
	TimestampTz since;

	if (answer->format->block_seconds <= 0)
		return 0;
	if (answer->blocked_since == NULL || !parse_qiwi_timestamp(answer->blocked_since, &since))
		since = GetCurrentTimestamp();
	return TimestampTzPlusMilliseconds(since, (int64) answer->format->block_seconds * 1000);
}

/* The reason of an error of a class, for its message; it may set the hint */
static const char *
class_reason(const QiwiOperation *op, QiwiError *error)
{
	switch (error->sqlstate)
	{
		case ERRCODE_QIWI_AUTHENTICATION:
			return refused_key(op, error);
		case ERRCODE_QIWI_FORBIDDEN:
			error->hint = psprintf("The %s is valid but lacks a permission this call needs: give it that permission (its scope) at QIWI.",
								   op->key_option ? op->key_option : "secret key");
			return "QIWI refused the call: the key lacks the permission it needs";
		case ERRCODE_QIWI_NOT_FOUND:
			return "QIWI does not know it";
		case ERRCODE_QIWI_BLOCKED:
			if (error->blocked_until == 0)
				return "QIWI blocks the requests for a time";
			return psprintf("QIWI blocks the requests until %s",
							timestamptz_to_str(error->blocked_until));
		case ERRCODE_QIWI_RATE_LIMIT:
			return "QIWI is limiting the request rate";
		case ERRCODE_QIWI_SERVER_ERROR:
			return "QIWI failed to process it";
		case ERRCODE_QIWI_INVALID_REQUEST:
			return "QIWI rejected the request";
	}
	return "QIWI answered with an unexpected HTTP status";
}

/*
 * text with the credentials op carries (what its Authorization headers
 * give after the scheme) replaced by ********: QIWI may echo them, and a
 * Basic one is not a key the logs know
 */
static char *
without_credentials(const QiwiOperation *op, const char *text)
{
	char	   *result = pstrdup(text);

	for (int i = 0; i < op->request.nheaders; i++)
	{
		const char *header = op->request.headers[i];
		const char *credentials = strrchr(header, ' ');
		StringInfoData out;
		const char *p = result;
		const char *hit;

		if (pg_strncasecmp(header, "Authorization:", 14) != 0 || credentials == NULL ||
			*++credentials == '\0')
			continue;
		initStringInfo(&out);
		while ((hit = strstr(p, credentials)) != NULL)
		{
			appendBinaryStringInfo(&out, p, hit - p);
			appendStringInfoString(&out, "********");
			p = hit + strlen(credentials);
		}
		appendStringInfoString(&out, p);
		result = out.data;
	}
	return result;
}

/*
 * Turn an error answer (a non-2xx, or an envelope's error) into an error:
 * its class from the API's table of codes, else from the HTTP status
 */
static void
error_from_answer(const QiwiOperation *op, const HttpResponse *resp, const ErrorAnswer *answer,
				  QiwiError *error)
{
	const QiwiErrorCode *classed = classed_code(answer->format, answer->error_code);
	StringInfoData detail;
	const char *reason;

	error->hint = NULL;
	error->error_code = answer->error_code;
	error->sqlstate = classed ? classed->sqlstate : status_class(resp->status);
	error->retry_safe = classed ? classed->temporary :
		(error->sqlstate == ERRCODE_QIWI_RATE_LIMIT || error->sqlstate == ERRCODE_QIWI_SERVER_ERROR ||
		 error->sqlstate == ERRCODE_QIWI_BLOCKED);
	error->blocked_until = error->sqlstate == ERRCODE_QIWI_BLOCKED ? block_end(answer) : 0;
	reason = class_reason(op, error);
	if (error->retry_safe && error->hint == NULL && op->retry_hint != NULL)
		error->hint = pstrdup(op->retry_hint);

	/* a description with '?' for what the database cannot show would mislead */
	if (answer->description != NULL && answer->description[0] != '\0' && !answer->lossy)
		error->message = psprintf("could not %s: %s: %s", op->context, reason,
								  without_credentials(op, answer->description));
	else
		error->message = psprintf("could not %s: %s", op->context, reason);

	initStringInfo(&detail);
	appendStringInfo(&detail, "HTTP status %ld", resp->status);
	if (answer->error_code != NULL)
		appendStringInfo(&detail, ", %s \"%s\"", answer->code_field, answer->error_code);
	if (answer->trace_id != NULL && answer->trace_id[0] != '\0')
		appendStringInfo(&detail, ", %s \"%s\"", answer->format->trace_field, answer->trace_id);
	appendStringInfoChar(&detail, '.');
	if (answer->lossy)
		appendStringInfo(&detail, " QIWI's error text has characters that the database encoding %s cannot represent; its description is not shown.",
						 GetDatabaseEncodingName());
	error->detail = without_credentials(op, detail.data);
	if (answer->format->explain != NULL)
		answer->format->explain(op, answer->lossy ? NULL : answer->description, error);
	if (error->blocked_until != 0 && op->rate_limit != NULL)	/* its passes wait for the end */
		qiwi_rate_block(op->rate_limit, op->rate_account, error->blocked_until);
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

/*
 * Is this a successful answer to op (a 2xx, and for an API that answers in
 * an envelope, one whose code is success)?  Otherwise fill *error with the
 * failure's class.
 */
static bool
answered_ok(const QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	const QiwiErrorFormat *format = op->errors ? op->errors : &qiwi_json_errors;
	ErrorAnswer answer = {.format = format};
	char	   *problem = NULL;
	bool		ok_status = resp->status >= 200 && resp->status < 300;

	if (resp->failure != HTTP_OK)
	{
		error_from_transport(resp, op->context, op->retry_hint, error);
		return false;
	}
	if (ok_status && format->success_code == NULL)
		return true;
	/* a body that is not the API's JSON (a gateway's error page) says nothing */
	(void) qiwi_read_answer(read_error_answer, resp, &answer, &problem);
	if (ok_status &&
		(answer.error_code == NULL || strcmp(answer.error_code, format->success_code) == 0))
		return true;
	error_from_answer(op, resp, &answer, error);
	return false;
}

/* ---------- sending ---------- */

/* The transport options of qiwi.timeout, qiwi.connect_timeout, qiwi.ca_file */
static HttpOptions
exchange_options(void)
{
	HttpOptions options = {qiwi_timeout_ms, qiwi_connect_timeout_ms, qiwi_ca_file};

	return options;
}

/* Wipe the credentials in an operation's headers once it is done */
static void
wipe_headers(QiwiOperation *op)
{
	for (int i = 0; i < op->request.nheaders; i++)
		if (pg_strncasecmp(op->request.headers[i], "Authorization:", 14) == 0)
			explicit_bzero((char *) op->request.headers[i], strlen(op->request.headers[i]));
	op->request.nheaders = 0;
}

/* Milliseconds a call that began at start may still take under qiwi.call_deadline */
static long
deadline_left(TimestampTz start)
{
	return qiwi_call_deadline_ms - (long) ((GetCurrentTimestamp() - start) / 1000);
}

/*
 * Milliseconds before qiwi.call_deadline or statement_timeout ends a call
 * that began at start
 */
static long
call_time_left(TimestampTz start)
{
	long		left = deadline_left(start);

	if (StatementTimeout > 0)
		left = Min(left, StatementTimeout -
				   (long) ((GetCurrentTimestamp() - GetCurrentStatementStartTimestamp()) / 1000));
	return left;
}

/*
 * Wait before retry number attempt + 1 of a call that began at start:
 * exponential backoff with jitter, or until a block QIWI announced ends
 * (blocked_until, when not 0); interruptible.  False when the wait would
 * leave the call no time for another attempt (qiwi.call_deadline or
 * statement_timeout), so there is no point in trying.
 */
static bool
retry_wait(int attempt, TimestampTz start, TimestampTz blocked_until)
{
	long		delay_ms = Min(RETRY_MAX_MS, (long) RETRY_BASE_MS << Min(attempt, 16));
	TimestampTz until;

	/* full jitter in the upper half: retries of many sessions spread out */
	delay_ms = delay_ms / 2 + (long) (pg_prng_double(&pg_global_prng_state) * (delay_ms / 2));
	if (blocked_until != 0)
		delay_ms = Max(TimestampDifferenceMilliseconds(GetCurrentTimestamp(), blocked_until), 0);
	if (call_time_left(start) - delay_ms < MIN_ATTEMPT_MS)
		return false;
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
 * Say in a failed call's DETAIL how many attempts it made, and whether its
 * time ran out before the retries did
 */
static void
count_attempts(QiwiError *error, int attempts, bool out_of_time)
{
	size_t		len = error->detail ? strlen(error->detail) : 0;
	StringInfoData detail;

	if (attempts == 1 && !out_of_time)
		return;
	initStringInfo(&detail);
	if (len > 0)
		appendStringInfo(&detail, "%s%s ", error->detail, error->detail[len - 1] == '.' ? "" : ".");
	if (attempts == 1)
		appendStringInfoString(&detail, "1 attempt was made.");
	else
		appendStringInfo(&detail, "%d attempts were made.", attempts);
	if (out_of_time)
		appendStringInfo(&detail, " qiwi.call_deadline (%d ms) or statement_timeout left no time for another.",
						 qiwi_call_deadline_ms);
	error->detail = detail.data;
}

/* What an answer to an operation says: true with op->result filled, or *error */
bool
qiwi_exchange_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error)
{
	return answered_ok(op, resp, error) &&
		op->read(op, resp, error);
}

/*
 * Send one operation for a SQL call that began at start, and when it is
 * idempotent again after network failures, timeouts, 429 and 5xx (with
 * backoff, within qiwi.max_retries, qiwi.call_deadline and
 * statement_timeout); true with op->result, or false with *error.
 */
static bool
send_attempts(QiwiOperation *op, TimestampTz start, QiwiError *error)
{
	HttpOptions options = exchange_options();
	HttpResponse resp;

	op->request.fresh_connection = !op->idempotent;
	for (int attempt = 0;; attempt++)
	{
		/*
		 * No attempt outlasts the call's deadline; statement_timeout ends one
		 * itself, with PostgreSQL's own error (the transfer checks for it)
		 */
		long		left;

		/* a limited account's request waits for its turn; a worker's by no deadline */
		qiwi_rate_pass(op->rate_limit, op->rate_account, IsBackgroundWorker ? 0 : start);
		left = Max(deadline_left(start), MIN_ATTEMPT_MS);
		options.timeout_ms = (int) Min((long) qiwi_timeout_ms, left);
		options.connect_timeout_ms = Min(qiwi_connect_timeout_ms, options.timeout_ms);
		http_perform(&op->request, &options, &resp);
		if (answered_ok(op, &resp, error))
			break;
		if (!op->idempotent || !error->retry_safe || attempt >= qiwi_max_retries ||
			!retry_wait(attempt, start, error->blocked_until))
		{
			count_attempts(error, attempt + 1,
						   op->idempotent && error->retry_safe && attempt < qiwi_max_retries);
			wipe_headers(op);
			return false;
		}
	}
	wipe_headers(op);
	return op->read(op, &resp, error);
}

/*
 * send_attempts, wiping the operation's credentials also when an error
 * (the limiter's refusal, a cancel while waiting to retry) leaves it
 */
static bool
send_with_retries(QiwiOperation *op, TimestampTz start, QiwiError *error)
{
	volatile bool ok = false;

	PG_TRY();
	{
		ok = send_attempts(op, start, error);
	}
	PG_CATCH();
	{
		wipe_headers(op);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return ok;
}

/*
 * Send the ask for an operation whose answer was lost (what *lost says); an
 * error that leaves the asking (the limiter's refusal, a cancel) says that
 * QIWI may have made the operation, for its own text says nothing was sent
 */
static bool
send_ask(QiwiOperation *ask, TimestampTz start, const QiwiError *lost, QiwiError *ask_error)
{
	MemoryContext caller = CurrentMemoryContext;
	volatile bool ok = false;

	PG_TRY();
	{
		ok = send_with_retries(ask, start, ask_error);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		edata->detail = psprintf("%s%sThis request was to ask QIWI for what the call had sent, whose answer was lost (%s); whether QIWI made it is not known.",
								 edata->detail ? edata->detail : "", edata->detail ? " " : "",
								 qiwi_redact_secrets(lost->message));
		ReThrowError(edata);
	}
	PG_END_TRY();
	return ok;
}

/*
 * Send an operation that is not idempotent (a capture, a refund) once; if
 * its answer is lost, unreadable or QIWI failed (a network failure, a
 * timeout, a malformed answer, 429, 5xx: with an empty body Payin asks for
 * the same request again, with a body for a status check; asking first
 * serves both), ask for it by its id and send it again only when QIWI does
 * not know it, up to qiwi.max_retries times.
 */
static bool
send_or_ask(QiwiOperation *op, QiwiError *error)
{
	QiwiOperationBuilder rebuild = op->rebuild;
	void	   *arg = op->rebuild_arg;
	QiwiOperation ask;
	QiwiError	ask_error;
	TimestampTz start = GetCurrentTimestamp();

	for (int attempt = 0;; attempt++)
	{
		if (send_with_retries(op, start, error))
			return true;
		/* a garbled answer may hide money QIWI moved */
		if (!error->retry_safe && error->sqlstate != ERRCODE_QIWI_MALFORMED)
			return false;
		rebuild(arg, true, &ask);
		if (send_ask(&ask, start, error, &ask_error))
			return true;
		if (ask_error.sqlstate != ERRCODE_QIWI_NOT_FOUND || attempt >= qiwi_max_retries)
		{
			error->detail = psprintf("%s Asking QIWI for it failed too: %s", error->detail,
									 ask_error.message);
			return false;
		}
		/* the asks and sends of one call share its deadline */
		if (call_time_left(start) < MIN_ATTEMPT_MS)
		{
			error->detail = psprintf("%s QIWI does not know it, and qiwi.call_deadline (%d ms) or statement_timeout left no time to send it again; it was not sent again.",
									 error->detail, qiwi_call_deadline_ms);
			return false;
		}
		rebuild(arg, false, op);
	}
}

/*
 * Perform one operation for a SQL call: an idempotent one sent with
 * retries, one that is not asked for before it is ever sent again; true
 * with op->result, or false with *error.
 */
bool
qiwi_exchange(QiwiOperation *op, QiwiError *error)
{
	if (!op->idempotent && op->rebuild != NULL)
		return send_or_ask(op, error);
	return send_with_retries(op, GetCurrentTimestamp(), error);
}

/*
 * Has QIWI made this operation (not idempotent) already?  It is not sent:
 * it is asked for by its id; true with op->result if QIWI has it, false if
 * QIWI does not know it.  Raises any other failure.
 */
bool
qiwi_made_already(QiwiOperation *op)
{
	QiwiOperation ask;
	QiwiError	error;

	wipe_headers(op);
	op->rebuild(op->rebuild_arg, true, &ask);
	if (send_with_retries(&ask, GetCurrentTimestamp(), &error))
		return true;
	if (error.sqlstate != ERRCODE_QIWI_NOT_FOUND)
		qiwi_raise(&error);
	return false;
}

/*
 * Send n operations for the reconciler through perform, up to concurrency
 * at once, once each and with no transaction needed: responses[i] is what
 * came back for ops[i] (HTTP_FAIL_ABANDONED if progress stopped the batch
 * first).
 * progress is told which finished, while the next are in flight;
 * qiwi_exchange_answer() reads each, as for a single call.  The
 * credentials in every operation's headers are wiped when the batch ends.
 */
void
qiwi_exchange_batch(QiwiOperation *ops, int n, int concurrency, HttpResponse *responses,
					HttpBatchPerformer perform, HttpProgress progress, void *arg)
{
	HttpOptions options = exchange_options();
	HttpRequest *requests = palloc(sizeof(HttpRequest) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		requests[i] = ops[i].request;
		requests[i].fresh_connection = !ops[i].idempotent;
	}
	/* an error (the limiter's, a cancel while waiting) wipes them too */
	PG_TRY();
	{
		qiwi_rate_perform(ops, requests, n, concurrency, &options, responses, perform, progress,
						  arg);
	}
	PG_FINALLY();
	{
		for (int i = 0; i < n; i++)
			wipe_headers(&ops[i]);
	}
	PG_END_TRY();
	pfree(requests);
}

/* Define the settings of every exchange (from _PG_init) */
void
exchange_init(void)
{
	/* whoever can change the CA bundle can have a key sent to a server of theirs */
	DefineCustomStringVariable("qiwi.ca_file",
							   "CA bundle used to verify the QIWI server's certificate.",
							   "Empty means the system's default trust store. Verification is always on.",
							   &qiwi_ca_file,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.timeout",
							"Time limit of one QIWI request, connection included.",
							NULL,
							&qiwi_timeout_ms,
							10000, 100, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.connect_timeout",
							"Time limit for connecting to QIWI (TCP and TLS).",
							NULL,
							&qiwi_connect_timeout_ms,
							3000, 100, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.call_deadline",
							"Time limit of one SQL call to QIWI, all its attempts and the waits between them included.",
							"No attempt outlasts it or statement_timeout; the reconciler's rounds are not bound by it.",
							&qiwi_call_deadline_ms,
							10000, 100, 3600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.max_retries",
							"Retries of an idempotent QIWI call after a network failure, timeout, 429 or 5xx.",
							"Retries wait 100 ms, 200 ms, 400 ms ... (with jitter, at most 5 s) and stop before qiwi.call_deadline or statement_timeout would.",
							&qiwi_max_retries,
							3, 0, 10,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
}
