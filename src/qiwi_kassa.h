/*
 * qiwi_kassa.h
 *		Declarations shared by the files of the qiwi_kassa extension.
 *
 * module.c    GUCs and start-up
 * http.c      the libcurl transport (one reused connection per backend)
 * protocol.c  QIWI Bill Payments requests, responses and errors
 * store.c     the qiwi_bills / qiwi_refunds bookkeeping tables
 * notification.c  notification signatures and the verifying trigger
 * worker.c    the reconciler: launcher and background worker
 * functions.c the SQL-callable functions
 */
#ifndef QIWI_KASSA_H
#define QIWI_KASSA_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* SQLSTATEs of the QIWI error classes; the README documents them */
#define ERRCODE_QIWI_INVALID_REQUEST	MAKE_SQLSTATE('Q','K','4','0','0')
#define ERRCODE_QIWI_AUTHENTICATION		MAKE_SQLSTATE('Q','K','4','0','1')
#define ERRCODE_QIWI_NOT_FOUND			MAKE_SQLSTATE('Q','K','4','0','4')
#define ERRCODE_QIWI_RATE_LIMIT			MAKE_SQLSTATE('Q','K','4','2','9')
#define ERRCODE_QIWI_SERVER_ERROR		MAKE_SQLSTATE('Q','K','5','0','0')
#define ERRCODE_QIWI_NETWORK			MAKE_SQLSTATE('Q','K','N','E','T')
#define ERRCODE_QIWI_TIMEOUT			MAKE_SQLSTATE('Q','K','T','M','O')
#define ERRCODE_QIWI_TLS				MAKE_SQLSTATE('Q','K','T','L','S')
#define ERRCODE_QIWI_MALFORMED			MAKE_SQLSTATE('Q','K','B','A','D')
#define ERRCODE_QIWI_BAD_SIGNATURE		MAKE_SQLSTATE('Q','K','S','I','G')
#define ERRCODE_QIWI_AMOUNT_MISMATCH	MAKE_SQLSTATE('Q','K','A','M','T')

/* Largest response body accepted from QIWI; a bill is well under 4 kB */
#define QIWI_MAX_RESPONSE_BYTES		(256 * 1024)

/* Limits of the Bill Payments API (seed 001) */
#define QIWI_MAX_ID_LENGTH			200
#define QIWI_MAX_COMMENT_LENGTH		255
#define QIWI_MAX_FIELD_LENGTH		255
#define QIWI_MAX_LIFETIME_DAYS		45
/* QIWI's Number(6.2): the largest amount of a bill or a refund */
#define QIWI_MAX_AMOUNT				"999999.99"

/* module.c: GUC values; qiwi_secret_key is the key in effect (see module.c) */
extern char *qiwi_api_url;
extern char *qiwi_secret_key;
extern char *qiwi_ca_file;
extern char *qiwi_public_key;
extern int	qiwi_timeout_ms;
extern int	qiwi_connect_timeout_ms;
extern int	qiwi_max_retries;
extern char *qiwi_database;
extern int	qiwi_reconcile_interval_s;
extern int	qiwi_reconcile_max_interval_s;
extern int	qiwi_reconcile_concurrency;
extern int	qiwi_reconcile_batch_size;
extern char *qiwi_redact_secrets(const char *text);

/* http.c: one HTTP exchange */
typedef enum HttpMethod
{
	HTTP_GET,
	HTTP_PUT,
	HTTP_POST
} HttpMethod;

typedef enum HttpFailure
{
	HTTP_OK = 0,				/* an HTTP answer arrived (any status) */
	HTTP_FAIL_NETWORK,			/* could not connect, connection reset, ... */
	HTTP_FAIL_TIMEOUT,			/* qiwi.timeout or qiwi.connect_timeout hit */
	HTTP_FAIL_TLS,				/* certificate or handshake failure */
	HTTP_FAIL_TOO_LARGE,		/* body above QIWI_MAX_RESPONSE_BYTES */
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
	char	   *body;			/* JSON for PUT/POST, or NULL */
} HttpRequest;

extern void http_perform(const HttpRequest *request, const char *bearer,
						 HttpResponse *response);
extern void http_perform_many(const HttpRequest *requests, int n, int concurrency,
							  const char *bearer, HttpResponse *responses,
							  bool (*keep_going) (void));
extern char *http_escape_path_segment(const char *segment);
extern bool http_url_is_valid(const char *url);
extern char *http_append_query(const char *url, const char *name, const char *value);

/* protocol.c: the Bill Payments objects */
typedef struct QiwiBill
{
	char	   *bill_id;
	char	   *site_id;
	Numeric		amount;
	char	   *currency;
	char	   *status;
	bool		has_status_changed_at;
	TimestampTz status_changed_at;
	bool		has_created_at;
	TimestampTz created_at;
	bool		has_expires_at;
	TimestampTz expires_at;
	char	   *pay_url;
	char	   *comment;
	Jsonb	   *customer;
	Jsonb	   *custom_fields;
} QiwiBill;

typedef struct QiwiRefund
{
	char	   *bill_id;
	char	   *refund_id;
	Numeric		amount;
	char	   *currency;
	char	   *status;
	bool		has_created_at;
	TimestampTz created_at;
} QiwiRefund;

typedef struct QiwiCreateBillArgs
{
	const char *bill_id;
	Numeric		amount;			/* already validated: > 0, <= 2 decimals */
	const char *currency;
	TimestampTz expires_at;
	const char *comment;		/* NULL = omitted */
	const char *phone;
	const char *email;
	const char *account;
	Jsonb	   *custom_fields;
} QiwiCreateBillArgs;

/* What went wrong with one QIWI call, in a form both raisers and the worker use */
typedef struct QiwiError
{
	int			sqlstate;
	char	   *message;		/* "QIWI rejected the request for bill \"x\"" */
	char	   *detail;			/* errorCode, description, traceId, HTTP status */
	char	   *hint;
	bool		retry_safe;		/* a later identical call may succeed */
} QiwiError;

extern bool qiwi_create_bill_call(const QiwiCreateBillArgs *args, QiwiBill *bill, QiwiError *error);
extern bool qiwi_get_bill_call(const char *bill_id, QiwiBill *bill, QiwiError *error);
extern void qiwi_get_bill_request(const char *bill_id, HttpRequest *request);
extern bool qiwi_get_bill_answer(const char *bill_id, const HttpResponse *resp,
								 QiwiBill *bill, QiwiError *error);
extern void qiwi_create_bill_request(const QiwiCreateBillArgs *args, HttpRequest *request);
extern bool qiwi_create_bill_answer(const QiwiCreateBillArgs *args, const HttpResponse *resp,
									QiwiBill *bill, QiwiError *error);
extern bool qiwi_reject_bill_call(const char *bill_id, QiwiBill *bill, QiwiError *error);
extern bool qiwi_refund_call(const char *bill_id, const char *refund_id,
							 Numeric amount, const char *currency,
							 QiwiRefund *refund, QiwiError *error);
extern bool qiwi_get_refund_call(const char *bill_id, const char *refund_id,
								 QiwiRefund *refund, QiwiError *error);
extern void qiwi_raise(const QiwiError *error) pg_attribute_noreturn();

/* A function run guarded by qiwi_guarded(): true on success, else *problem */
typedef bool (*GuardedFn) (void *arg, char **problem);
typedef enum GuardedErrors
{
	GUARD_DATA_ERRORS,			/* data exceptions and program limits only */
	GUARD_ALL_BUT_CANCEL		/* every error but a cancel */
} GuardedErrors;
extern bool qiwi_guarded(GuardedFn fn, void *arg, GuardedErrors which, char **problem);
extern bool qiwi_parse_bill_object(JsonbContainer *root, QiwiBill *bill, char **problem);
extern bool qiwi_json_amount(JsonbContainer *object, Numeric *amount, char **currency,
							 char **problem);
extern char *qiwi_format_amount(Numeric amount);
extern Numeric qiwi_amount_to_cents(Numeric amount);
extern bool qiwi_amount_has_cents_only(Numeric amount);

/* store.c: bookkeeping in the extension's tables */
typedef enum StoreOutcome
{
	STORE_INSERTED,				/* a bill this database had not seen */
	STORE_ADVANCED,				/* WAITING moved to a final status */
	STORE_REFRESHED,			/* same status, details refreshed */
	STORE_DUPLICATE,			/* a notification repeating the known status */
	STORE_STALE,				/* the row is final already; left alone */
	STORE_MISMATCH,				/* QIWI's amount or currency is not the shop's */
	STORE_FOREIGN_SITE			/* a notification from another site than the bill's */
} StoreOutcome;

/* What qiwi_bills holds for a bill: its status and the shop's money */
typedef struct StoredBill
{
	char	   *status;
	Numeric		amount;
	char	   *currency;
} StoredBill;

typedef enum StoreSource
{
	SOURCE_CALL,				/* a SQL function's call to QIWI */
	SOURCE_RECONCILER,			/* the background worker */
	SOURCE_NOTIFICATION			/* a verified notification */
} StoreSource;

extern StoreOutcome store_bill(const QiwiBill *bill, StoreSource source,
							   StoredBill *stored);
extern bool store_lock_bill(const char *bill_id, StoredBill *stored);
extern void store_require_ready(void);
extern void store_check_result(const char *bill_id, bool failed, const char *error);
/* A bill due for the reconciler: to check, or (creating) to create */
typedef struct DueBill
{
	char	   *bill_id;
	bool		creating;
	QiwiCreateBillArgs create;	/* the shop's bill_id, amount and currency; the rest
								 * when creating */
} DueBill;

extern DueBill *store_due_bills(int limit, int *n);

typedef enum ExtensionState
{
	EXTENSION_NOT_INSTALLED,
	EXTENSION_OLD_VERSION,		/* waiting for ALTER EXTENSION ... UPDATE */
	EXTENSION_READY
} ExtensionState;

extern ExtensionState store_extension_state(void);
extern bool store_bill_intent(const QiwiCreateBillArgs *args, Jsonb *customer);
extern void store_create_failed(const char *bill_id, const char *reason);
extern int64 store_make_all_due(void);
extern bool store_refund_headroom(const char *bill_id, const char *refund_id,
								  Numeric *paid, Numeric *refunded);
extern void store_refund(const QiwiRefund *refund);

/* notification.c */
extern char *qiwi_site_id;
extern void notification_init(void);

/* worker.c: the reconciler */
extern void reconciler_register(void);
extern void reconciler_wake_at_commit(void);
extern void reconciler_state(Datum *values, bool *nulls);

#endif							/* QIWI_KASSA_H */
