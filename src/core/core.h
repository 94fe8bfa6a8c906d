/*
 * core.h
 *		What every QIWI API shares, knowing no single API; one section per
 *		file of src/core (the bookkeeping's sections in bookkeeping.h,
 *		which this header includes).
 *
 * module.c      start-up and the keys: qiwi.secret_key, qiwi.secret_key_file, log redaction
 * redact.c      which statements give a key, from their parse trees
 * merchant.c    merchants: servers of the wrapper qiwi, their options and keys
 * transport.c   HTTP over kept-alive libcurl handles
 * exchange.c    the one path to QIWI: operations, retries, error classes
 * guarded.c     work in a subtransaction whose errors are a problem to report
 * paging.c      lists QIWI answers a page at a time
 * ratelimit.c   the shared-memory limiter of requests per account
 * wire.c        what an API declares of its wire: URLs, credentials, bodies,
 *               operations, and reading the objects of its answers
 * codecs.c      money, timestamps, JSON
 * validate.c    checks of SQL arguments
 * calls.c       what every API's SQL functions share: calls, result rows,
 *               the checks of a refund
 * signature.c   keyed HMAC signatures
 * notification.c  the one trigger shell of every API's notifications
 * ledger.c      the bookkeeping write path, as the extension's owner
 * ledger_kind.c the statements of a kind of item: claims, checks, events
 * ledger_probe.c whether an answer repeats an item's row
 * intent.c      a SQL call's intent committed by a worker of its own before
 *               it sends what is not idempotent
 * launcher.c    the worker that starts the reconciler for qiwi.database
 * reconciler.c  the reconciler's rounds over registered kinds, its state
 * syncs.c       the per-merchant syncs the reconciler runs each round
 * requester.c   the process that sends a round's requests
 *               (the four share the private reconciler_internal.h)
 * guard.c       refusals that keep the record of money: a call only the
 *               reconciler completes, where none serves; a call that writes
 *               in a reporting copy (a subscriber); dropping a ledger that
 *               holds rows
 */
#ifndef QIWI_CORE_H
#define QIWI_CORE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/numeric.h"

/* SQLSTATEs of the QIWI error classes; the README documents them */
#define ERRCODE_QIWI_INVALID_REQUEST	MAKE_SQLSTATE('Q','K','4','0','0')
#define ERRCODE_QIWI_AUTHENTICATION		MAKE_SQLSTATE('Q','K','4','0','1')
#define ERRCODE_QIWI_FORBIDDEN			MAKE_SQLSTATE('Q','K','4','0','3')
#define ERRCODE_QIWI_NOT_FOUND			MAKE_SQLSTATE('Q','K','4','0','4')
#define ERRCODE_QIWI_BLOCKED			MAKE_SQLSTATE('Q','K','4','2','3')
#define ERRCODE_QIWI_RATE_LIMIT			MAKE_SQLSTATE('Q','K','4','2','9')
#define ERRCODE_QIWI_SERVER_ERROR		MAKE_SQLSTATE('Q','K','5','0','0')
#define ERRCODE_QIWI_NETWORK			MAKE_SQLSTATE('Q','K','N','E','T')
#define ERRCODE_QIWI_TIMEOUT			MAKE_SQLSTATE('Q','K','T','M','O')
#define ERRCODE_QIWI_TLS				MAKE_SQLSTATE('Q','K','T','L','S')
#define ERRCODE_QIWI_MALFORMED			MAKE_SQLSTATE('Q','K','B','A','D')
#define ERRCODE_QIWI_BAD_SIGNATURE		MAKE_SQLSTATE('Q','K','S','I','G')
#define ERRCODE_QIWI_AMOUNT_MISMATCH	MAKE_SQLSTATE('Q','K','A','M','T')

/* ---------- module.c ---------- */

/*
 * The shortest secret key accepted (settings and merchants): the logs hide
 * a key wherever its text appears, so a key of a few letters would hide
 * ordinary words ("e********isting").  QIWI's keys are far longer.
 */
#define QIWI_KEY_MIN_LENGTH 8

/*
 * The key in effect: qiwi.secret_key_file's, else qiwi.secret_key's.  It is
 * the default merchant's value of the key option an API defines with
 * qiwi_secret_key as its setting (merchant_secret_key_option()).
 */
extern char *qiwi_secret_key;
extern char *qiwi_redact_secrets(const char *text);

/* Start every API (src/apis.c, outside the core: the one list of the APIs) */
extern void qiwi_apis_init(void);

/* ---------- redact.c ---------- */

extern void redact_init(void);
extern bool statement_gives_key_text(const char *text, bool just_parsed);
extern bool context_gives_key(const char *context);

/* ---------- merchant.c ---------- */

/* The merchant of the qiwi.* settings, and the name no server may take */
#define MERCHANT_DEFAULT "default"


/* Where an option is given: ids and endpoints on the server, keys on the mapping */
typedef enum MerchantOptionPlace
{
	MERCHANT_ON_SERVER,
	MERCHANT_ON_USER_MAPPING
} MerchantOptionPlace;

/* An option an API reads from its merchants */
typedef struct MerchantOptionDef
{
	const char *name;			/* names its API: "bill_site_id" */
	const char *former_name;	/* its name before 1.4 ("site_id"), or NULL */
	MerchantOptionPlace place;
	char	  **setting;		/* the default merchant's value (a setting's), or NULL */
	const char *setting_name;	/* that setting: "qiwi.site_id"; NULL with setting */
	bool		(*check) (const char *value, char **why);	/* never shows value */
} MerchantOptionDef;

typedef struct Merchant
{
	char	   *name;			/* "default" or the server's name */
	Oid			server;			/* InvalidOid for the default merchant */
	char	  **values;			/* by option number, one per defined option;
								 * NULL for the default merchant */
} Merchant;

extern int	merchant_define_option(const MerchantOptionDef *def);
extern const Merchant *merchant_for_call(const char *name);
extern const Merchant *merchant_by_name(const char *name);
extern const Merchant *merchant_by_option(int option, const char *value, char **problem);
extern const char *merchant_value(const Merchant *m, int option);
extern List *merchant_unusable(const int *required, int nrequired);
extern List *merchant_usable(const int *required, int nrequired);
extern char *merchant_default_lacks(const int *required, int nrequired);
extern int	merchant_count(void);
extern uint32 merchant_fingerprint(const Merchant *m);
extern int	merchant_secrets(const char ***list);
extern bool merchant_check_url(const char *value, char **why);
extern bool merchant_check_key(const char *value, char **why);
extern bool merchant_check_secret(const char *value, char **why);
extern bool merchant_is_key_option(const char *name);
extern const char *merchant_key_option_name(int n);
extern const MerchantOptionDef *merchant_option_def(int option);
extern const char *merchant_secret_key_option(void);

/* ---------- merchant_key.c ---------- */

struct RoleSpec;
extern struct RoleSpec *merchant_key_mapping(const Merchant *merchant, int option);
extern void merchant_store_key(const Merchant *merchant, struct RoleSpec *mapping, int option,
							   const char *value);

/* ---------- transport.c ---------- */

/* Largest response body accepted; a QIWI object is well under 4 kB */
#define HTTP_MAX_RESPONSE_BYTES		(256 * 1024)

typedef enum HttpMethod
{
	HTTP_GET,
	HTTP_PUT,
	HTTP_POST,
	HTTP_PATCH,
	HTTP_DELETE
} HttpMethod;

typedef enum HttpFailure
{
	HTTP_OK = 0,				/* an HTTP answer arrived (any status) */
	HTTP_FAIL_NETWORK,			/* could not connect, connection reset, ... */
	HTTP_FAIL_TIMEOUT,			/* the timeout or the connect timeout hit */
	HTTP_FAIL_TLS,				/* certificate or handshake failure */
	HTTP_FAIL_TOO_LARGE,		/* body above HTTP_MAX_RESPONSE_BYTES */
	HTTP_FAIL_CONNECT,			/* no connection was made: nothing was sent */
	HTTP_FAIL_ABANDONED			/* never finished: the caller stopped the batch */
} HttpFailure;

typedef struct HttpResponse
{
	HttpFailure failure;
	long		status;			/* HTTP status when failure == HTTP_OK */
	char	   *body;			/* palloc'd, NUL-terminated */
	size_t		body_len;
	char	   *error;			/* palloc'd description when failure != OK */
} HttpResponse;

typedef struct HttpRequest
{
	HttpMethod	method;
	char	   *url;
	const char **headers;		/* whole header lines, "Name: value" */
	int			nheaders;
	char	   *body;			/* for PUT/POST/PATCH/DELETE, or NULL */
	const char *content_type;	/* of the body (not GET), or NULL */
	bool		fresh_connection;	/* not over a kept-alive connection: when
									 * one dies unanswered, libcurl silently
									 * sends the request again */
} HttpRequest;

/* How a batch of requests is sent; TLS is always verified */
typedef struct HttpOptions
{
	int			timeout_ms;
	int			connect_timeout_ms;
	const char *ca_file;		/* NULL or empty: the system's trust store */
} HttpOptions;

extern void http_perform(const HttpRequest *request, const HttpOptions *options,
						 HttpResponse *response);
/*
 * Called by a batch before each wait, while its requests are in flight,
 * with the requests that finished since the last call (indices; at the
 * end too, with the last ones); false abandons the rest of the batch.
 */
typedef bool (*HttpProgress) (void *arg, const int *finished, int nfinished);

/* What sends a batch of requests: http_perform_many, or the reconciler's requester */
typedef void (*HttpBatchPerformer) (const HttpRequest *requests, int n, int concurrency,
									const HttpOptions *options, HttpResponse *responses,
									HttpProgress progress, void *arg);

extern void http_perform_many(const HttpRequest *requests, int n, int concurrency,
							  const HttpOptions *options, HttpResponse *responses,
							  HttpProgress progress, void *arg);
extern char *http_escape_path_segment(const char *segment);
extern bool http_url_is_valid(const char *url);
extern bool http_url_is_secure(const char *url);
extern char *http_append_query(const char *url, const char *name, const char *value);
extern void http_append_form_field(StringInfo form, const char *name, const char *value);
extern char *http_authorization(const char *scheme, const char *user, const char *secret);
extern bool http_basic_authorization_matches(const char *user, const char *secret, const char *value,
											 int len);

/* ---------- exchange.c ---------- */

/* The HINTs of a failed call that is safe to repeat */
#define QIWI_IDEMPOTENT_RETRY_HINT \
	"The request may have reached QIWI. Repeating the same call is safe: QIWI answers with the existing object."
#define QIWI_READ_RETRY_HINT "Repeating the call is safe."

extern int	qiwi_timeout_ms;
extern int	qiwi_connect_timeout_ms;
extern int	qiwi_max_retries;
extern int	qiwi_call_deadline_ms;
extern char *qiwi_ca_file;

/* What went wrong with one QIWI call, in a form both raisers and the worker use */
typedef struct QiwiError
{
	int			sqlstate;
	char	   *message;		/* "could not create bill \"x\": QIWI rejected ..." */
	char	   *detail;			/* errorCode, description, traceId, HTTP status */
	char	   *hint;
	bool		retry_safe;		/* a later identical call may succeed */
	char	   *error_code;		/* QIWI's code of an error answer, or NULL */
	TimestampTz blocked_until;	/* QK423: when QIWI's block ends; else 0 */
} QiwiError;

/* A code of an API's error answers that has a class of its own */
typedef struct QiwiErrorCode
{
	const char *code;			/* as QIWI writes it: "13", "request.blocked" */
	int			sqlstate;
	bool		temporary;		/* a later identical call may succeed */
} QiwiErrorCode;

typedef struct QiwiOperation QiwiOperation;

/*
 * How an API writes its errors, so that each maps to the same classes: the
 * fields of its error answers (the first present of each list counts; a
 * number is read as written), and, for an API that answers in an envelope,
 * the envelope's success code, read on every HTTP status (an error may come
 * with 200).  A code of the table decides the class; any other, the HTTP
 * status (with a 2xx, the request was rejected).
 */
typedef struct QiwiErrorFormat
{
	const char *envelope;		/* the member holding the fields, or NULL: the root */
	const char *const *code_fields;	/* NULL-terminated */
	const char *const *text_fields;	/* the description; NULL-terminated */
	const char *trace_field;	/* or NULL */
	const char *success_code;	/* the envelope's "no error" ("0"), or NULL */
	const QiwiErrorCode *codes; /* ends with {NULL}; NULL: none */
	const char *blocked_since_field;	/* 423: when the block began, or NULL:
										 * when the answer came */
	int			block_seconds;	/* 423: how long a block lasts */
	/* the API's words on an error beyond its class's (NULL: none): it may
	 * rewrite the message and hint; description is QIWI's text, or NULL */
	void		(*explain) (const QiwiOperation *op, const char *description, QiwiError *error);
} QiwiErrorFormat;

/* Bill Payments' and Payin's errors: {errorCode, description, traceId} */
extern const QiwiErrorFormat qiwi_json_errors;

/*
 * Builds an operation that is not idempotent afresh (ask false), or the one
 * that asks QIWI for what it made, by its id (ask true), which fills the
 * same result
 */
typedef void (*QiwiOperationBuilder) (void *arg, bool ask, QiwiOperation *op);

/* Reads a 2xx answer to an operation into op->result; false with *error */
typedef bool (*QiwiOperationReader) (QiwiOperation *op, const HttpResponse *resp,
									 QiwiError *error);

/* One call of one API, as its wire format builds it */
struct QiwiOperation
{
	HttpRequest request;
	char	   *context;		/* what it does, for messages: "create bill \"x\"" */
	const char *retry_hint;		/* the HINT when a retry is safe */
	const Merchant *merchant;	/* whose credentials it carries */
	bool		idempotent;		/* may be sent again after a failure; if not,
								 * never over a kept-alive connection */
	const char *key_option;		/* the merchant's key it carries; NULL: the one
								 * qiwi.secret_key gives the default merchant */
	const QiwiErrorFormat *errors;	/* how its API writes errors; NULL:
									 * qiwi_json_errors */
	QiwiOperationReader read;
	const void *args;			/* what read checks the answer against */
	void	   *result;			/* what read fills */
	QiwiOperationBuilder rebuild;	/* not idempotent: asked for by its id
									 * before it is sent again; NULL: never
									 * sent again */
	void	   *rebuild_arg;
	const struct QiwiRateLimit *rate_limit;	/* its API's limit, or NULL: none */
	const char *rate_account;	/* the account rate_limit counts it for */
};

/* Reads an answer body into *result; false with *problem if it cannot */
typedef bool (*QiwiAnswerReader) (const HttpResponse *resp, void *result, char **problem);

/* A function run by qiwi_guarded(): true on success, else *problem */
typedef bool (*GuardedFn) (void *arg, char **problem);
typedef enum GuardedErrors
{
	GUARD_DATA_ERRORS,			/* data exceptions and program limits only */
	GUARD_ALL_BUT_CANCEL		/* every error but a cancel and the other
								 * errors of the moment (a deadlock, a lock
								 * timeout, out of memory) */
} GuardedErrors;

extern void exchange_init(void);
extern bool qiwi_exchange(QiwiOperation *op, QiwiError *error);
extern void qiwi_exchange_batch(QiwiOperation *ops, int n, int concurrency,
								HttpResponse *responses, HttpBatchPerformer perform,
								HttpProgress progress, void *arg);
extern bool qiwi_made_already(QiwiOperation *op);
extern bool qiwi_exchange_answer(QiwiOperation *op, const HttpResponse *resp, QiwiError *error);
extern bool qiwi_read_answer(QiwiAnswerReader reader, const HttpResponse *resp, void *result,
							 char **problem);
extern bool qiwi_malformed(QiwiError *error, const char *context, const char *problem);
extern bool qiwi_same_money_as_asked(Numeric amount, const char *currency, Numeric asked,
									 const char *asked_currency, const char *context,
									 const char *what, QiwiError *error);
extern void qiwi_raise(const QiwiError *error) pg_attribute_noreturn();
extern bool qiwi_guarded(GuardedFn fn, void *arg, GuardedErrors which, char **problem);

/* ---------- paging.c ---------- */

/*
 * One page of a list QIWI answers in pages, as an API's reader fills it
 * (the QiwiPage is op->result of the page's operation), in the page's
 * memory: freed when the next page has been asked for.
 */
typedef struct QiwiPage
{
	int			number;			/* 1 for the first page */
	void	  **items;			/* Jsonb * or the API's structs */
	int			nitems;
	void	   *next;			/* the next page's cursor; NULL: the last page */
	List	   *skipped;		/* why items that could not be read were skipped (char *) */
} QiwiPage;

/*
 * A list an API reads a page at a time: how to ask for the page at a
 * cursor (NULL: the first page; op->context is required, op->result is
 * the pager's), and whether a failed page means that the list has nothing
 * more (Wallet's 404 for an empty history; NULL: never).  A page with no
 * items ends the list too, unless after_empty names where the list goes
 * on after it (a list read in windows: the next window's first page), in
 * the new page's memory; after_empty must move the list forward each time.
 */
typedef struct QiwiPagedList
{
	void		(*operation) (const void *args, const void *cursor, QiwiOperation *op);
	bool		(*ends_list) (const QiwiError *error, int page);
	void	   *(*after_empty) (const void *args, const void *cursor);
} QiwiPagedList;

/* Checks a paged SRF's arguments (before any request) and returns the list's args */
typedef void *(*QiwiPagedStart) (FunctionCallInfo fcinfo, FuncCallContext *funcctx);
/* A paged SRF's result for an item, in the call's memory */
typedef Datum (*QiwiItemDatum) (FuncCallContext *funcctx, const void *args, void *item);
/* Takes a page for a sync (e.g. upserts its items); false stops the list */
typedef bool (*QiwiPageConsumer) (void *arg, const QiwiPage *page);
/* Reads one element of a page's array into *item; false with *problem */
typedef bool (*QiwiItemReader) (JsonbValue *element, void **item, char **problem);

/*
 * A time range a list is asked for in windows of at most width, newest
 * first, in the whole seconds QIWI dates items by: each window ends a
 * second before the next begins, so that an item comes once
 */
typedef struct QiwiTimeWindows
{
	TimestampTz since;			/* as asked */
	TimestampTz first;			/* since, rounded up to a second */
	TimestampTz last;			/* until, rounded down to a second */
	int64		width;			/* in microseconds */
} QiwiTimeWindows;

extern Datum qiwi_pages_srf(FunctionCallInfo fcinfo, const QiwiPagedList *list,
							QiwiPagedStart start, QiwiItemDatum item_datum);
extern bool qiwi_pages_each(const QiwiPagedList *list, const void *args,
							QiwiPageConsumer consume, void *arg, QiwiError *error);
extern void qiwi_windows_init(QiwiTimeWindows *range, TimestampTz since, TimestampTz until,
							  int64 width);
extern bool qiwi_window(const QiwiTimeWindows *range, int n, TimestampTz *start, TimestampTz *end);
extern bool qiwi_not_found_ends_list(const QiwiError *error, int page);
extern bool qiwi_page_read_array(QiwiPage *page, JsonbContainer *answer, const char *key,
								 QiwiItemReader read_item, char **problem);
extern bool qiwi_page_read_items(QiwiPage *page, JsonbContainer *answer, const char *key,
								 QiwiItemReader read_item, char **problem);
/* ---------- ratelimit.c ---------- */

/* The most requests a limit may allow per window (an account's log of passes) */
#define QIWI_RATE_MAX_REQUESTS		128
/* The least time a wait may leave a SQL call to send its request (exchange.c's shortest attempt) */
#define QIWI_RATE_MIN_ATTEMPT_MS	100

/*
 * An API's limit on the requests of one account, declared as a static
 * struct: at most `requests` in any window of window_ms.  An API with no
 * limit declares none (its operations' rate_limit is NULL).
 */
typedef struct QiwiRateLimit
{
	const char *name;			/* the key's and the messages' name: "Wallet" */
	int			requests;		/* 1 to QIWI_RATE_MAX_REQUESTS */
	int			window_ms;
} QiwiRateLimit;

extern void ratelimit_init(void);
extern int64 qiwi_rate_pass(const QiwiRateLimit *limit, const char *account,
							TimestampTz call_start);
extern void qiwi_rate_block(const QiwiRateLimit *limit, const char *account, TimestampTz until);
extern void qiwi_rate_perform(const QiwiOperation *ops, const HttpRequest *requests, int n,
							  int concurrency, const HttpOptions *options,
							  HttpResponse *responses, HttpBatchPerformer perform,
							  HttpProgress progress, void *arg);

/* ---------- wire.c ---------- */

typedef enum WireAuth
{
	WIRE_AUTH_BEARER,			/* Authorization: Bearer <key> */
	WIRE_AUTH_BASIC				/* Authorization: Basic base64(<user>:<key>) */
} WireAuth;

typedef enum WireBody
{
	WIRE_BODY_JSON,
	WIRE_BODY_FORM				/* application/x-www-form-urlencoded */
} WireBody;

/*
 * What an API declares of its wire, once; the core builds every call from
 * it.  Options are merchant_define_option numbers, by address since they
 * are known only once _PG_init has run.
 */
typedef struct WireFormat
{
	const char *api_name;		/* for messages: "Payin" */
	const int  *url_option;		/* the merchant's base URL */
	const char *default_url;	/* when the merchant gives none */
	const char *account_path;	/* every URL's path to the merchant's account
								 * at QIWI ("partner/payin/v1/sites"), or NULL */
	const int  *account_option; /* the account's id after it: payin_site_id */
	WireAuth	auth;
	const int  *user_option;	/* Basic: the login */
	const int  *key_option;		/* the token, or Basic's password */
	const char *key_name;		/* in messages about a refused key; NULL: the
								 * secret key (qiwi.secret_key's) */
	WireBody	body;
	const QiwiErrorFormat *errors;	/* NULL: qiwi_json_errors */
} WireFormat;

/* Reads an object of an answer into *result; false with *problem */
typedef bool (*WireObjectParser) (JsonbContainer *root, void *result, char **problem);

/*
 * How a reading call's answer, an object, goes into its result: read by the
 * API's parser; or its array member key read into a QiwiPage's items with
 * item; or, without key, read whole as one item (into a void *)
 */
typedef struct WireAnswer
{
	WireObjectParser object;
	const char *key;
	QiwiItemReader item;
} WireAnswer;

extern const char *wire_require_option(const WireFormat *wire, const Merchant *merchant,
									   int option);
extern char *wire_url(const WireFormat *wire, const Merchant *merchant, int nsegments,
					  const char *const *segments);
extern void wire_operation(QiwiOperation *op, const WireFormat *wire, const Merchant *merchant,
						   HttpMethod method, char *url, char *body, char *context,
						   const char *retry_hint, bool idempotent);
extern bool wire_read_object(QiwiOperation *op, const HttpResponse *resp, WireObjectParser parse,
							 void *result, QiwiError *error);
extern bool wire_read_answer(QiwiOperation *op, const HttpResponse *resp, QiwiAnswerReader reader,
							 void *result, QiwiError *error);
extern bool wire_read_list(QiwiOperation *op, const HttpResponse *resp, WireObjectParser parse,
						   size_t size, List **out, QiwiError *error);
extern void wire_read_call(QiwiOperation *op, const WireAnswer *answer, void *result);
extern char *qiwi_currency_letters(int32 numeric_code);
extern bool json_integer(JsonbContainer *object, const char *key, int64 *out, char **problem);
extern bool json_coded_money(JsonbContainer *money, const char *what, Numeric *amount,
							 char **currency, char **problem);
extern bool wire_answer_is_about(QiwiOperation *op, const char *what, const char *answered,
								 const char *asked, QiwiError *error);

/* ---------- codecs.c ---------- */

/*
 * What a bill of Bill Payments and an invoice of Payin both carry, in the
 * same fields of QIWI's objects: when it expires, the payment form's link,
 * and what the shop gave with it
 */
typedef struct QiwiInvoiceTerms
{
	bool		has_expires_at;
	TimestampTz expires_at;
	char	   *pay_url;
	char	   *comment;
	Jsonb	   *customer;
	Jsonb	   *custom_fields;
} QiwiInvoiceTerms;

extern Numeric qiwi_amount_to_cents(Numeric amount);
extern bool qiwi_amount_has_cents_only(Numeric amount);
extern char *qiwi_format_amount(Numeric amount);
extern bool qiwi_same_money(Numeric a, const char *a_currency, Numeric b, const char *b_currency);
extern bool qiwi_money_within(Numeric a, const char *a_currency, Numeric limit, const char *limit_currency);
extern Numeric qiwi_numeric_constant(const char *literal);
extern bool qiwi_json_amount(JsonbContainer *object, const char *max_amount, Numeric *amount,
							 char **currency, char **problem);
extern bool qiwi_json_money(JsonbContainer *object, const char *key, bool allow_zero,
							const char *max_amount, Numeric *amount, char **currency,
							char **problem);
extern char *format_qiwi_timestamp(TimestampTz ts);
extern bool parse_qiwi_timestamp(const char *str, TimestampTz *result);
extern Jsonb *parse_json_object(char *body, size_t len, bool *lossy, char **problem);
extern JsonbValue *json_field(JsonbContainer *object, const char *key);

/*
 * The object a member of object holds, or NULL (object NULL, the member
 * absent or not an object); inline and with nothing allocated, for the
 * signature checks' hot loops.
 */
static inline JsonbContainer *
json_object_member(JsonbContainer *object, const char *key)
{
	JsonbValue	found;
	JsonbValue *v = object ? getKeyJsonValueFromContainer(object, key, strlen(key), &found) : NULL;

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

extern bool json_string(JsonbContainer *object, const char *key, bool required,
						char **out, char **problem);
extern bool json_identifier(JsonbContainer *object, const char *key, char **out, char **problem);
extern bool json_member_object(JsonbContainer *object, const char *key, bool required,
							   JsonbContainer **container, Jsonb **copy, char **problem);
extern bool json_timestamp(JsonbContainer *object, const char *key, const char *alt_key,
						   bool *present, TimestampTz *out, char **problem);
extern bool qiwi_json_invoice_terms(JsonbContainer *root, QiwiInvoiceTerms *terms,
									char **problem);
extern void append_json_member(StringInfo buf, const char *key, const char *value, bool *first);
extern void append_json_money(StringInfo buf, const char *key, Numeric amount, const char *currency);
extern bool json_object_list(JsonbValue *array, const char *what, size_t size,
							 WireObjectParser parse, List **out, char **problem);

/* ---------- validate.c ---------- */

extern bool qiwi_name_in(const char *value, const char *const *names);
extern bool qiwi_all_digits(const char *s, size_t min, size_t max);

/* An API's limits on what the argument checks accept */
typedef struct ArgLimits
{
	const char *api_name;		/* for messages: "Bill Payments" */
	const char *const *currencies;	/* those it takes, NULL-terminated; NULL: any */
	int			max_id_length;
	int			max_field_length;
	const char *max_amount;		/* numeric literal */
	int			max_lifetime_days;
} ArgLimits;

extern char *arg_required_text(FunctionCallInfo fcinfo, int argno, const char *argname);
extern char *arg_optional_text(FunctionCallInfo fcinfo, int argno, const char *argname);
extern void arg_check_length(const char *value, int max, const char *argname);
extern void arg_check_no_control_chars(const char *value, const char *argname);
extern char *arg_required_id(FunctionCallInfo fcinfo, int argno, const char *argname,
							 const ArgLimits *limits);
extern Numeric arg_required_amount(FunctionCallInfo fcinfo, int argno, const char *argname,
								   const ArgLimits *limits);
extern char *arg_required_currency(FunctionCallInfo fcinfo, int argno, const char *argname,
								   const ArgLimits *limits);
extern void arg_check_expiry(TimestampTz value, const char *argname, const ArgLimits *limits);
extern TimestampTz arg_required_expiry(FunctionCallInfo fcinfo, int argno, const char *argname,
									   const ArgLimits *limits);
extern void arg_time_range(FunctionCallInfo fcinfo, int argno, const char *const *names,
						   TimestampTz *range);
extern void arg_time_windows(FunctionCallInfo fcinfo, int argno, const char *const *names,
							 int64 width, QiwiTimeWindows *windows);
extern char *arg_optional_phone(FunctionCallInfo fcinfo, int argno, const char *argname);
extern char *arg_optional_email(FunctionCallInfo fcinfo, int argno, const char *argname,
								const ArgLimits *limits);
extern char *arg_optional_field(FunctionCallInfo fcinfo, int argno, const char *argname, int max);
extern Jsonb *arg_optional_custom_fields(FunctionCallInfo fcinfo, int argno, const char *argname,
										 const ArgLimits *limits);
extern char *arg_optional_url(FunctionCallInfo fcinfo, int argno, const char *argname);
extern bool arg_notification_trigger_rejects(FunctionCallInfo fcinfo, const char *trigger);
extern int	arg_trigger_column(Relation rel, const char *name, Oid type, const char *trigger);
extern TupleDesc arg_result_desc(FunctionCallInfo fcinfo, int ncols, const char *type);

/* ---------- calls.c ---------- */

/* A column of a result row */
typedef struct ResultColumn
{
	Datum		value;
	bool		isnull;
} ResultColumn;

/* Money in one currency: two sums (in, out), or one amount as read, in sums[0] */
typedef struct QiwiCurrencySums
{
	char	   *currency;
	Numeric		sums[2];
} QiwiCurrencySums;

extern const Merchant *arg_merchant(FunctionCallInfo fcinfo, int argno);
extern const Merchant *arg_reading_call(FunctionCallInfo fcinfo, const char *idname,
										const ArgLimits *limits, char **id);
extern char *arg_optional_limited_text(FunctionCallInfo fcinfo, int argno, const char *argname,
									   int max);
extern char *arg_optional_name(FunctionCallInfo fcinfo, int argno, const char *argname,
							   const char *const *names);
extern char *arg_required_name(FunctionCallInfo fcinfo, int argno, const char *argname,
							   const char *const *names);
extern char *qiwi_quoted_names(const char *const *names);
extern List *arg_optional_names(FunctionCallInfo fcinfo, int argno, const char *argname,
								const char *const *names, const char *hint);
extern void qiwi_call(QiwiOperation *op);
extern bool qiwi_read_call(QiwiOperation *op, const char *tables, const char *what,...)
			pg_attribute_printf(3, 4);
extern void qiwi_require_same_money(const char *item, const char *table, const char *noun,
									Numeric stored_amount, const char *stored_currency,
									const char *stored_status, Numeric amount,
									const char *currency);
extern ResultColumn result_text(const char *s);
extern ResultColumn result_datum(Datum value);
extern ResultColumn result_pointer(const void *p);
extern ResultColumn result_timestamp(TimestampTz ts, bool present);
extern HeapTuple qiwi_result_tuple(TupleDesc tupdesc, const ResultColumn *columns, int n);
extern void qiwi_result_put(FunctionCallInfo fcinfo, const ResultColumn *columns, int n);
extern void qiwi_currency_sums_add(List **rows, const char *currency, int column, Numeric amount);
extern void qiwi_result_put_sums(FunctionCallInfo fcinfo, List *rows);
extern void qiwi_result_put_page(FunctionCallInfo fcinfo, const QiwiPage *page, int n);
extern Datum qiwi_result_row(FunctionCallInfo fcinfo, const char *type,
							 const ResultColumn *columns, int n);
extern void qiwi_refund_fetch(QiwiOperation *op, const char *why, const char *refund_id);
extern void qiwi_refund_check_currency(const char *item, const char *item_currency,
									   const char *refund_id, Numeric amount,
									   const char *currency);
extern void qiwi_refund_refuse(const char *item, const char *refund_id, const char *detail)
			pg_attribute_noreturn();
extern char *qiwi_refund_counted(const char *whole, Numeric base, Numeric refunded,
								 Numeric left, Numeric amount, const char *outcome);

/* ---------- signature.c ---------- */

typedef enum SignatureHash
{
	SIGNATURE_SHA256,
	SIGNATURE_SHA1
} SignatureHash;
typedef enum SignatureKeyEncoding
{
	SIGNATURE_KEY_UTF8,
	SIGNATURE_KEY_BASE64
} SignatureKeyEncoding;
typedef enum SignatureOutput
{
	SIGNATURE_HEX,
	SIGNATURE_BASE64
} SignatureOutput;
typedef struct SignatureKey SignatureKey;	/* opaque; owned by the per-backend cache */

/* a keyed signer for key (server-encoded text; UTF8 = its UTF-8 bytes, BASE64 = decoded), cached per backend */
extern SignatureKey *signature_key(SignatureHash hash, SignatureKeyEncoding encoding, const char *key, int len);
/* the encoded signature (hex lowercase, or base64) of message, palloc'd */
extern char *signature_sign(SignatureKey *key, SignatureOutput output, const char *message, size_t len);
/* whether given (hex in either case, or base64) is the signature of message; constant time */
extern bool signature_verify(SignatureKey *key, SignatureOutput output, const char *message, size_t len,
							 const char *given, int given_len);
extern void signature_append_utf8(StringInfo buf, const char *value, int len);
/* the strings notifications sign: fields, each followed by '|', in a buffer reused from row to row */
extern StringInfo signature_message_buffer(void);
/* a signed field (NULL: missing): a string, or with number_ok a JSON number; false with *problem */
extern bool signature_append_field(StringInfo buf, JsonbValue *v, bool number_ok, const char *path,
								   char **problem);
/* an amount object's value (NULL: missing) with exactly two decimals; parent holds "amount" */
extern bool signature_append_amount(StringInfo buf, JsonbValue *value, JsonbContainer *parent,
									const char *max_amount, char **problem);
/* drop the separator after the last field */
extern void signature_end_message(StringInfo buf);
/* the fields a list such as "sum.amount,type" names, read once and cached; use before the next list */
typedef struct SignedPaths SignedPaths;
extern const SignedPaths *signature_paths(const char *list, int len);
/* the values they name in object, numbers without trailing zeros; false with *problem */
extern bool signature_append_paths(StringInfo buf, const SignedPaths *paths, JsonbContainer *object,
								   const char *where, char **problem);

/* What records QIWI's answers: notifications, the ledger, the reconciler, the guards */
#include "core/bookkeeping.h"

#endif							/* QIWI_CORE_H */
