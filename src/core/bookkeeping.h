/*
 * bookkeeping.h
 *		The part of the core that records what QIWI says, one section per
 *		file: the notification trigger shell, the ledger of each kind of
 *		item, the reconciler, the guards.  Included by core.h, after what it
 *		builds on (merchants, operations, signatures).
 */
#ifndef QIWI_BOOKKEEPING_H
#define QIWI_BOOKKEEPING_H

#include "core/core.h"

/* ---------- notification.c ---------- */

typedef struct NotificationKind NotificationKind;

/* Applies a merchant's verified notification: NULL, or why it changed nothing */
typedef char *(*NotificationApplier) (Jsonb *body, const Merchant *merchant, bool *applied);

/*
 * Is a notification the word of merchant?  credential: what the web tier
 * stored beside it (a signature, an Authorization header; NULL if the kind
 * has no such column); false with *problem
 */
typedef bool (*NotificationVerifier) (const NotificationKind *kind, const Merchant *merchant,
									  text *credential, Jsonb *body, char **problem);

/* The key a merchant verifies an API's notifications with */
typedef struct NotificationKey
{
	const int  *option;			/* the merchant option that holds it, once defined */
	const char *option_name;	/* its name: "bill_secret_key" */
	const char *setting;		/* the default merchant's setting of it, or NULL */
	const char *argument;		/* the SQL functions' argument that gives one: "secret" */
	const char *missing;		/* the ERROR when there is none: "no secret key to ..." */
} NotificationKey;

/* How an API's notifications are signed */
typedef struct NotificationSignature
{
	SignatureHash hash;
	SignatureKeyEncoding key_encoding;
	SignatureOutput output;		/* how the signature is written */
	int			length;			/* its length as received */
} NotificationSignature;

/*
 * An API's notifications as the trigger shell sees them: the columns of
 * the table the web tier stores them in (beside body jsonb, verified and
 * applied boolean, error text), the merchant one names, the check that
 * QIWI sent it, and what applying it does.
 */
struct NotificationKind
{
	const char *trigger;		/* its trigger function, for messages: "qiwi_notification_verify()" */
	const char *rejected;		/* the ERROR of a 'reject' trigger: "QIWI notification rejected" */
	const char *reject_hint;
	const char *credential_column;	/* text column verify reads, or NULL */
	const char *site_column;	/* text column naming the site it came for, or NULL */
	bool		merchant_column;	/* a text column "merchant" takes the merchant's name */
	/* the merchant it names (site: site_column's value, or NULL); NULL with *problem */
	const Merchant *(*merchant) (Jsonb *body, const char *site, char **problem);
	NotificationVerifier verify;
	NotificationApplier apply;
	NotificationKey key;
	NotificationSignature signature;
	/* the string QIWI signs; false with *problem if it cannot be signed */
	bool		(*signed_string) (Jsonb *body, StringInfo buf, char **problem);
};

extern SignatureKey *notification_signer(const NotificationKind *kind, const Merchant *merchant,
										 const char *key, int len);
extern SignatureKey *notification_argument_signer(FunctionCallInfo fcinfo, int argno,
												  const NotificationKind *kind);
extern bool notification_signature_holds(const NotificationKind *kind, SignatureKey *key,
										 const char *signature, int len, Jsonb *notification,
										 char **problem);
extern bool notification_verify_signature(const NotificationKind *kind, const Merchant *merchant,
										  text *credential, Jsonb *body, char **problem);
extern Datum notification_trigger(FunctionCallInfo fcinfo, const NotificationKind *kind);

/* ---------- ledger.c ---------- */

/* The user and search_path to restore after writing as the extension's owner */
typedef struct OwnerContext
{
	Oid			save_userid;
	int			save_sec_context;
	int			guc_nestlevel;	/* undoes the fixed search_path */
	MemoryContext caller_context;	/* survives SPI_finish */
	Oid			schema;			/* the extension's schema */
} OwnerContext;

typedef enum ExtensionState
{
	EXTENSION_NOT_INSTALLED,
	EXTENSION_OLD_VERSION,		/* waiting for ALTER EXTENSION ... UPDATE */
	EXTENSION_READY,
	EXTENSION_REPORTING_COPY	/* ready, in a reporting copy (the reconciler's view) */
} ExtensionState;

extern ExtensionState ledger_extension_state(void);
extern void ledger_require_ready(void);
extern Oid	ledger_schema(void);
extern void ledger_require_writable(const char *what, const char *tables);
extern bool ledger_can_record(const char *what, const char *tables);
extern void ledger_begin(OwnerContext *ctx);
extern void ledger_end(OwnerContext *ctx);
extern void ledger_durable_commit(void);
extern bool ledger_commit_durably(void);
extern bool ledger_commit_step(bool (*step) (void *arg), void *arg);
extern struct _SPI_plan *ledger_prepare(const char *sql, int nargs, Oid *argtypes);
extern struct _SPI_plan *ledger_prepare_for_arrays(const char *sql, int nargs, Oid *argtypes);
extern void ledger_free_plan(struct _SPI_plan **plan);
extern uint64 ledger_run(struct _SPI_plan *plan, Datum *values, const char *nulls, int expected);
extern uint64 ledger_execute(const char *sql, int nargs, const Oid *types, Datum *values,
							 const char *nulls, int expected, Datum *row, int ncolumns);
extern Datum ledger_text_or_null(const char *s, char *null);
extern Datum ledger_time_or_null(TimestampTz t, bool present, char *null);
extern Datum ledger_pointer_or_null(const void *p, char *null);
extern void ledger_no_nulls(char *nulls, int n);

/*
 * What the ledger knows of an API's table of items: the statuses a row may
 * still leave (the forward-only rule) and those the reconciler checks; each
 * list ends with NULL.
 */
typedef struct LedgerTable
{
	const char *name;			/* the table, in the extension's schema */
	const char *status_column;	/* its text column of statuses */
	const char *const *open_statuses;
	const char *const *reconciled_statuses;
} LedgerTable;

extern void ledger_add_table(const LedgerTable *table);
extern const LedgerTable *ledger_table_named(const char *name);

/* ---------- ledger_kind.c, ledger_probe.c ---------- */

/* How the unchanged-row probe compares a column with the answer's value */
typedef enum LedgerCompare
{
	LEDGER_TEXT,
	LEDGER_NUMERIC,				/* equal numbers */
	LEDGER_AMOUNT,				/* equal numbers at the same scale */
	LEDGER_TIMESTAMP,
	LEDGER_JSONB,
	LEDGER_TEXT_ARRAY
} LedgerCompare;

/* How an answer (an API's struct) holds a parameter's value */
typedef enum LedgerValue
{
	LEDGER_V_SET,				/* it does not: the API sets it */
	LEDGER_V_TEXT,				/* a string; NULL is SQL NULL */
	LEDGER_V_NUMERIC,
	LEDGER_V_VARLENA,			/* jsonb or an array; NULL is SQL NULL */
	LEDGER_V_TIMESTAMP,			/* present when the bool at has_offset is */
	LEDGER_V_BOOL,				/* present when the bool at has_offset is (-1: always) */
	LEDGER_V_INT64,				/* an id: 0 is SQL NULL */
	LEDGER_V_INT32				/* a code: 0 is SQL NULL */
} LedgerValue;

/*
 * A parameter of an API's statements: its type, where an answer holds it,
 * and for the unchanged-row probe the column it fills (NULL: none)
 */
typedef struct LedgerParam
{
	Oid			type;
	LedgerValue value;
	int			offset;
	int			has_offset;		/* -1: always present */
	const char *column;
	LedgerCompare compare;
	bool		null_keeps;		/* an absent value keeps the row's */
} LedgerParam;

/* A parameter set by the API; one an answer holds; one that fills its column */
#define LEDGER_SET(type) {type, LEDGER_V_SET, 0, -1, NULL, LEDGER_TEXT, false}
#define LEDGER_ARG(type, how, answer, field) \
	{type, how, offsetof(answer, field), -1, NULL, LEDGER_TEXT, false}
#define LEDGER_COLUMN(type, how, answer, field, compare, keeps) \
	{type, how, offsetof(answer, field), -1, #field, compare, keeps}
/* An optional value (present when the answer's has_field is): a time, a bool */
#define LEDGER_TIME_ARG(answer, field) {TIMESTAMPTZOID, LEDGER_V_TIMESTAMP, offsetof(answer, field), \
	offsetof(answer, has_##field), NULL, LEDGER_TEXT, false}
#define LEDGER_TIME_COLUMN(answer, field, keeps) {TIMESTAMPTZOID, LEDGER_V_TIMESTAMP, \
	offsetof(answer, field), offsetof(answer, has_##field), #field, LEDGER_TIMESTAMP, keeps}
#define LEDGER_BOOL_ARG(answer, field) {BOOLOID, LEDGER_V_BOOL, offsetof(answer, field), \
	offsetof(answer, has_##field), NULL, LEDGER_TEXT, false}
/*
 * The three parameters of an item's money and status, the columns the
 * ledger reads of every kind's table (its row lock): amount, compared as
 * compare (LEDGER_NUMERIC or LEDGER_AMOUNT), currency and status
 */
#define LEDGER_MONEY_COLUMNS(answer, compare) \
	LEDGER_COLUMN(NUMERICOID, LEDGER_V_NUMERIC, answer, amount, compare, false), \
	LEDGER_COLUMN(TEXTOID, LEDGER_V_TEXT, answer, currency, LEDGER_TEXT, false), \
	LEDGER_COLUMN(TEXTOID, LEDGER_V_TEXT, answer, status, LEDGER_TEXT, false)
/*
 * The five parameters of an answer's QiwiInvoiceTerms (its member), in
 * this order, each filling the column of its name; with keeps, an answer
 * without the time or the link keeps the row's
 */
#define LEDGER_TERMS_COLUMNS(answer, member, keeps) \
	{TIMESTAMPTZOID, LEDGER_V_TIMESTAMP, offsetof(answer, member.expires_at), \
	 offsetof(answer, member.has_expires_at), "expires_at", LEDGER_TIMESTAMP, keeps}, \
	{TEXTOID, LEDGER_V_TEXT, offsetof(answer, member.pay_url), -1, "pay_url", LEDGER_TEXT, keeps}, \
	{TEXTOID, LEDGER_V_TEXT, offsetof(answer, member.comment), -1, "comment", LEDGER_TEXT, false}, \
	{JSONBOID, LEDGER_V_VARLENA, offsetof(answer, member.customer), -1, "customer", \
	 LEDGER_JSONB, false}, \
	{JSONBOID, LEDGER_V_VARLENA, offsetof(answer, member.custom_fields), -1, "custom_fields", \
	 LEDGER_JSONB, false}

/*
 * A statement of an API's: %1$s stands for the extension's schema, %2$s
 * for the open statuses of table (the kind's if NULL), as ('A', 'B')
 */
typedef struct LedgerStatement
{
	const char *sql;
	int			nargs;
	const LedgerParam *params;	/* $1..$nargs */
	const LedgerTable *table;
} LedgerStatement;

/*
 * A kind of item, as an API describes it: its table (key: merchant and
 * id_column); the rows the reconciler follows, what a claim returns of
 * them and how a check makes them due again; the columns an answer fills,
 * for the unchanged-row probe; where its events go; and the API's own
 * statements.  SQL fragments name the row t, a check u (u.failed), the
 * schema %1$s.  The ledger's own statements take one parameter order:
 * a claim ($1 limit, $2 merchants to skip, $3 its time, $4 the due
 * watermark), a chunk of checks ($1 merchants, $2 ids, $3 failed, $4
 * errors, $5 base and $6 longest interval in seconds, $7 when the chunk
 * was claimed, $8 the due watermark), an event ($1
 * merchant, $2 object, $3 id, $4 old status, $5 new status, $6 source).
 */
/* The rows of a kind the reconciler follows, what a claim returns, how a check makes them due */
typedef struct LedgerFollowed
{
	const char *rows;			/* NULL: the reconciled statuses */
	bool		checks_only_rows;	/* a check writes only followed rows */
	const char *due_columns;	/* after merchant, id and status; NULL: none */
	const char *check_set;		/* more of a check's SET ("" for none) */
	const char *check_at_once;	/* "WHEN cond THEN time" of next_check_at */
	const char *check_deadline; /* due at the latest then */
} LedgerFollowed;

/* The columns an answer fills, where the key is among its parameters */
typedef struct LedgerAnswer
{
	const LedgerParam *params;
	int			nparams;
	int			merchant_param;
	int			id_param;
	bool		needs_clean;	/* unchanged only with no failed check to clear */
} LedgerAnswer;

/* Where a kind's events go: a table and a NOTIFY channel */
typedef struct LedgerEvents
{
	const char *table;
	const char *id_column;
	const char *object_column;	/* NULL: no object column */
	const char *channel;
	const char *payload_id_key;
	const char *object;			/* what the kind's own writes name, with object_column */
} LedgerEvents;

typedef struct LedgerKind
{
	const LedgerTable *table;
	const char *id_column;
	LedgerFollowed followed;
	LedgerAnswer answer;
	LedgerEvents events;
	const LedgerStatement *statements;
	int			nstatements;
	/*
	 * The rows (t) whose send's outcome the ledger may not know, or NULL:
	 * the reconciler sweeps them, asking QIWI, before it sends anything new
	 * after a start (a crash, a promotion: intent.c)
	 */
	const char *unknown_outcome;
} LedgerKind;

/* The items a reconciler round claimed, and the checks of its chunk */
typedef struct LedgerDue
{
	const LedgerKind *kind;
	int			n;
	const char **merchant_names;
	const char **ids;
	const char **statuses;
	const Merchant **merchants;
	HeapTuple  *rows;			/* due_columns start at attribute 4 */
	TupleDesc	desc;
	void	  **answers;		/* the API's, one per item */
	bool		sweeping;		/* claimed by the sweep: ask QIWI, send nothing */
	TimestampTz claimed_at;
	TimestampTz watermark;		/* the due watermark the claim compared with */
	int			nchecks;
	const char **check_merchants;
	const char **check_ids;
	bool	   *check_failed;
	const char **check_errors;
} LedgerDue;

/* A plan of the ledger's, for ledger_run_plan: lock (merchant $1, id $2), read status, amount, currency */
#define LEDGER_ROW_LOCK (-1)

extern void ledger_add_kind(const LedgerKind *kind);
extern void ledger_begin_kind(OwnerContext *ctx, const LedgerKind *kind);
extern uint64 ledger_run_plan(const LedgerKind *kind, int plan, Datum *values,
							  const char *nulls, int expected);
extern bool ledger_lock_id(const LedgerKind *kind, const char *merchant, const char *id, char **status,
						   Numeric *amount, char **currency);
extern bool ledger_lock_item(const LedgerKind *kind, const char *merchant, const char *id,
							 char **status, Numeric *amount, char **currency);
extern bool ledger_lock_or_insert(const LedgerKind *kind, int lock_plan, Datum *lock_values,
								  const char *lock_nulls, int insert_plan, Datum *values,
								  const char *nulls);
extern char *ledger_row_text(OwnerContext *ctx, int column);
extern char *ledger_increasing_id(const LedgerKind *kind, const char *merchant, const char *given,
								  const char *argname, const char *detail);
extern bool ledger_write_values(const LedgerKind *kind, int plan, Datum *values, const char *nulls,
								int expected, const char *merchant, const char *id, const char *status,
								const char *source);
extern bool ledger_write_change(const LedgerKind *kind, int plan, const LedgerParam *params, int n,
								const void *answer, int expected, const char *merchant, const char *id,
								const char *status, const char *source);
extern Numeric ledger_row_numeric(OwnerContext *ctx, int column);
extern bool ledger_row_bool(int column);
/* Who told the ledger of an item's state, as its events record it (source) */
#define LEDGER_BY_CALL			"call"
#define LEDGER_BY_RECONCILER	"reconciler"
#define LEDGER_BY_NOTIFICATION	"notification"
extern void ledger_event(const LedgerKind *kind, const char *merchant, const char *object,
						 const char *id, const char *old_status, const char *new_status,
						 const char *source);
extern LedgerDue *ledger_claim_due(const LedgerKind *kind, int limit, Datum skip,
								   char *(*merchant_problem) (const Merchant *merchant),
								   bool sweeping);
extern Datum ledger_due_value(const LedgerDue *due, int i, int column, bool *isnull);
extern char *ledger_due_text(const LedgerDue *due, int i, int column);
extern bool ledger_due_past_grace(const LedgerDue *due, int i, TimestampTz created, int checked_column);
extern char *ledger_id_overtaken(const LedgerKind *kind, const char *merchant, const char *id,
								 const char *accepted);
extern void ledger_add_check(LedgerDue *due, int i, bool failed, const char *error);
extern void ledger_add_failure(LedgerDue *due, int i, const QiwiError *error, bool *failed,
							   bool *key_refused);
extern bool ledger_answer_taken(LedgerDue *due, int i, QiwiOperation *op, const HttpResponse *resp,
								bool *failed, bool *key_refused);
extern void ledger_flush_checks(LedgerDue *due);
extern int64 ledger_make_all_due(const LedgerKind *kind);
extern void ledger_sweep_again(void);
extern void ledger_defer_checked_at(const LedgerKind *kind, const char *merchant, const char *id);
extern bool ledger_row_unchanged(const LedgerKind *kind, Datum *values, const char *nulls);
extern void ledger_report_mismatch(int elevel, const char *what, const char *id, Numeric amount,
								   const char *currency, const char *status, const char *shop,
								   Numeric shop_amount, const char *shop_currency,
								   const char *kept);
extern void ledger_fill(const LedgerParam *params, int n, const void *answer, Datum *values,
						char *nulls);

/* ---------- intent.c ---------- */

extern bool intent_commit(const LedgerKind *kind, int plan, const LedgerParam *params, int n,
						  const void *answer, int expected, const char *merchant, const char *id,
						  const char *status, const char *source, const char *what);
extern bool intent_send(const LedgerKind *kind, const char *merchant, const char *id,
						const char *intent_status, QiwiOperation *op, const char *const (*hints)[2],
						int nhints, const char *kept,
						void (*refused) (void *arg, const QiwiError *error), void *arg);

/* ---------- reconciler.c, reconciler_shared.c ---------- */

extern char *qiwi_database;
extern int	qiwi_reconcile_interval_s;
extern int	qiwi_reconcile_max_interval_s;
extern int	qiwi_reconcile_concurrency;
extern int	qiwi_reconcile_batch_size;
extern int	qiwi_unsent_after_s;

/*
 * A kind of thing to reconcile, registered by an API: the merchant options
 * it cannot work without, its items (the ledger claims them, records the
 * checks and makes them due for qiwi_reconcile_now), why a merchant cannot
 * be asked (NULL: only a missing option), the operation for each item
 * (built with no transaction open), and how to record an answer (in a
 * transaction; true if the item changed, *failed if the check failed,
 * *key_refused if QIWI refused the merchant's key).  What record adds to
 * the chunk's checks (ledger_add_check) is written in one statement
 * before the chunk commits.
 */
typedef struct ReconcileKind
{
	const char *what;			/* "bills", for pg_stat_activity */
	const int  *required_options;
	int			nrequired;
	const LedgerKind *ledger;
	char	   *(*merchant_problem) (const Merchant *merchant);
	void		(*operation) (LedgerDue *due, int i, QiwiOperation *op);
	bool		(*record) (LedgerDue *due, int i, QiwiOperation *op, const HttpResponse *resp,
						   bool *failed, bool *key_refused);
} ReconcileKind;

/* What a round did, over all kinds and syncs */
typedef struct ReconcileCounts
{
	int64		checked;
	int64		changed;
	int64		failed;
} ReconcileCounts;

/*
 * A sync an API runs in every round for each merchant having its options,
 * beside the kinds' due items: a list QIWI keeps (a wallet's history) read
 * into a table.  sync is called with no transaction open, in the round's
 * memory; it adds to *counts what it read, changed and could not record,
 * sets *refused_status (401, 403) when QIWI refused the merchant's key, and
 * returns whether the merchant has more to read at once (the next round
 * starts without waiting).  It stops early when reconciler_may_go_on()
 * (called between transactions) is false.
 */
typedef struct ReconcileSync
{
	const char *what;			/* "wallet history", for pg_stat_activity */
	const int  *required_options;
	int			nrequired;
	bool		(*sync) (const Merchant *merchant, ReconcileCounts *counts, long *refused_status);
} ReconcileSync;

extern void reconciler_init(void);
extern void reconciler_add_kind(const ReconcileKind *kind);
extern bool reconciler_may_go_on(void);
extern void reconciler_wake_at_commit(void);
extern bool reconciler_registered(void);
extern bool reconciler_serves(const char *database);
extern void reconciler_extension_created(void);

/* ---------- syncs.c ---------- */

extern void reconciler_add_sync(const ReconcileSync *sync);
extern bool reconciler_in_transaction(bool (*fn) (void *arg), void *arg);
extern void reconciler_start_read_transaction(MemoryContext caller);
extern bool reconciler_sync_read(bool (*read) (void *arg, QiwiError *error), void *arg,
								 QiwiError *error, bool *rolled_back);

/* ---------- guard.c ---------- */

extern void guard_init(void);
extern void guard_require_reconciler(const char *function, const char *undone);
extern bool guard_reporting_copy(char **subscription);
extern void guard_refuse_reporting_copy(const char *what);

#endif							/* QIWI_BOOKKEEPING_H */
