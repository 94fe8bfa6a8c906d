/*
 * payin.h
 *		The Payin API v1 (seed 004, qiwi-api.md §2 and §8): invoices, card
 *		payments in one or two steps, captures, refunds and reversals.  An
 *		invoice is followed from its SQL function (payin_sql.c) to the wire
 *		and back (payin_wire.c, and core/exchange.c) into the bookkeeping
 *		(payin_store.c).
 *
 * payin_parse.c  the objects of its answers and notifications
 * payin_wire.c   URLs, bodies, answers, one operation per API call, options
 * payin_sql.c    the SQL functions
 * payin_args.c   the closed sets of create_invoice's arguments
 * payin_store.c  qiwi_payin_invoices, _payments, _tokens, _card_checks, _events
 * payin_notification.c  the signatures of notifications
 * payin_reconcile.c  invoices as a kind of thing the reconciler keeps current
 * payin_intent.c  captures and refunds: intents committed before they are
 *                sent, answers recorded over them, the unknown ones asked for
 */
#ifndef QIWI_PAYIN_H
#define QIWI_PAYIN_H

#include "core/core.h"

/* Limits of the Payin API (§8: comment and custom fields are string(256)) */
#define PAYIN_MAX_ID_LENGTH			200
#define PAYIN_MAX_FIELD_LENGTH		256
#define PAYIN_MAX_LIFETIME_DAYS		45
#define PAYIN_MAX_AMOUNT			"999999.99"
#define PAYIN_DEFAULT_API_URL		"https://api.qiwi.com"
#define PAYIN_DEFAULT_CAPTURE_HOURS	72
/* QIWI captures or releases a hold after at most 5 days (seed 004) */
#define PAYIN_MAX_CAPTURE_HOURS		120

typedef struct PayinInvoice
{
	const char *merchant;
	char	   *bill_id;
	char	   *invoice_uid;
	char	   *site_id;
	Numeric		amount;
	char	   *currency;
	char	   *status;			/* CREATED, PAID, EXPIRED; MISMATCH once recorded */
	ArrayType  *flags;			/* text[] */
	bool		has_created_at;
	TimestampTz created_at;
	bool		has_status_changed_at;
	TimestampTz status_changed_at;
	QiwiInvoiceTerms terms;
	List	   *payments;		/* PayinPayment *, from bills/{billId}/details */
} PayinInvoice;

typedef struct PayinPayment
{
	const char *merchant;
	char	   *payment_id;
	char	   *bill_id;
	char	   *status;			/* WAITING, COMPLETED, DECLINED; MISMATCH once recorded */
	Numeric		amount;
	char	   *currency;
	Numeric		captured_amount;
	Numeric		refunded_amount;
	char	   *method;
	char	   *masked_pan;
	char	   *reason_code;
	char	   *reason_message;
	bool		has_created_at;
	TimestampTz created_at;
	bool		has_status_changed_at;
	TimestampTz status_changed_at;
	ArrayType  *flags;
} PayinPayment;

/* A capture or a refund: the same shape on the wire */
typedef struct PayinOperationResult
{
	const char *merchant;
	char	   *payment_id;
	char	   *id;				/* captureId or refundId */
	Numeric		amount;
	char	   *currency;
	char	   *status;			/* COMPLETED or DECLINED */
	char	   *comment;
	bool		reversal;		/* a refund that released a hold */
	ArrayType  *flags;
	bool		has_created_at;
	TimestampTz created_at;
	bool		has_status_changed_at;
	TimestampTz status_changed_at;
} PayinOperationResult;

typedef struct PayinCreateArgs
{
	const char *bill_id;
	Numeric		amount;
	const char *currency;
	TimestampTz expires_at;
	bool		sale;			/* capture 'auto': flags ["SALE"] */
	const char *comment;
	const char *phone;
	const char *email;
	const char *account;
	Jsonb	   *custom_fields;
	List	   *payment_methods;	/* char * */
	const char *callback_url;
	bool		bind_token;
	bool		check_card;		/* flags ["CHECK_CARD"], no amount sent (amount is 0) */
} PayinCreateArgs;

/* A payment token QIWI bound (or refused to bind) for a buyer's account */
typedef struct PayinToken
{
	const char *merchant;
	char	   *account;
	char	   *status;			/* CREATED or REJECTED */
	char	   *token;			/* NULL when REJECTED */
	char	   *name;			/* the card, masked */
	bool		has_expires_at;
	TimestampTz expires_at;
	bool		has_bound_at;
	TimestampTz bound_at;
} PayinToken;

/*
 * A card check QIWI made on the form (a CHECK_CARD notification's
 * checkPaymentMethod, or the answer of GET validation/card/requests)
 */
typedef struct PayinCardCheck
{
	const char *merchant;
	char	   *request_uid;
	char	   *status;			/* INIT, WAITING_3DS, SUCCESS, ERROR: kept as written */
	bool		has_valid_card;
	bool		valid_card;		/* isValidCard */
	char	   *three_ds_status;
	bool		has_operation_date; /* always in a notification; not while INIT */
	TimestampTz operation_date; /* checkOperationDate */
	Jsonb	   *card_info;
	bool		has_token;		/* createdToken: a token bound by the check */
	PayinToken	token;
} PayinCardCheck;

/* What a PAYMENT, CAPTURE, REFUND, TOKEN or CHECK_CARD notification says */
typedef enum PayinNoticeKind
{
	PAYIN_NOTICE_PAYMENT,
	PAYIN_NOTICE_CAPTURE,
	PAYIN_NOTICE_REFUND,
	PAYIN_NOTICE_TOKEN,
	PAYIN_NOTICE_CHECK_CARD
} PayinNoticeKind;

typedef struct PayinNotice
{
	PayinNoticeKind kind;
	char	   *type;
	PayinPayment payment;		/* PAYMENT */
	PayinOperationResult operation;	/* CAPTURE, REFUND */
	PayinToken	token;			/* TOKEN */
	PayinCardCheck check;		/* CHECK_CARD */
} PayinNotice;

/* ---------- payin_parse.c ---------- */

extern bool payin_parse_payment(JsonbContainer *root, bool notice, PayinPayment *payment,
								char **problem);
extern bool payin_parse_invoice(JsonbContainer *root, PayinInvoice *invoice, char **problem);
extern bool payin_parse_operation_result(JsonbContainer *root, bool notice, const char *id_key,
										 PayinOperationResult *result, char **problem);
extern bool payin_parse_card_check(JsonbContainer *root, bool notification,
								   PayinCardCheck *check, char **problem);
extern bool payin_parse_notification(Jsonb *body, PayinNotice *notice, char **problem);

/* ---------- payin_wire.c ---------- */

extern const ArgLimits payin_limits;
extern int	payin_option_site_id;
extern int	payin_option_api_url;
extern int	payin_option_capture_hours;
extern int	payin_option_api_key;
extern int	payin_option_notification_key;
extern char *qiwi_payin_site_id;
extern char *qiwi_payin_api_url;

extern void payin_define_merchant_options(void);
extern int	payin_capture_hours(const Merchant *merchant);
extern void payin_create_operation(const Merchant *merchant, const PayinCreateArgs *args,
								   PayinInvoice *invoice, QiwiOperation *op);
extern void payin_details_operation(const Merchant *merchant, const char *bill_id,
									PayinInvoice *invoice, QiwiOperation *op);
extern void payin_payment_operation(const Merchant *merchant, const char *payment_id,
									PayinPayment *payment, QiwiOperation *op);
extern void payin_capture_operation(const Merchant *merchant, const char *payment_id,
									const char *capture_id, const char *comment, bool send,
									PayinOperationResult *capture, QiwiOperation *op);
extern void payin_refund_operation(const Merchant *merchant, const char *payment_id,
								   const char *refund_id, Numeric amount, const char *currency,
								   bool send, PayinOperationResult *refund, QiwiOperation *op);
extern void payin_refunds_operation(const Merchant *merchant, const char *payment_id,
									List **refunds, QiwiOperation *op);
extern void payin_delete_token_operation(const Merchant *merchant, const char *account,
										 const char *token, bool *deleted, QiwiOperation *op);
extern void payin_card_check_operation(const Merchant *merchant, const char *request_uid,
									   PayinCardCheck *check, QiwiOperation *op);
extern bool payin_not_found(const QiwiError *error);

/* ---------- payin_args.c ---------- */

extern Jsonb *payin_custom_fields_argument(FunctionCallInfo fcinfo, int argno);
extern List *payin_payment_methods_argument(FunctionCallInfo fcinfo, int argno);

/* ---------- payin_store.c ---------- */

/* What qiwi_payin_payments knows of a payment's money, for a refund */
typedef struct PayinHeadroom
{
	Numeric		left;			/* held or captured, minus the refunds recorded
								 * ('sending' too, not UNSENT) or QIWI reported
								 * (other ids than this one) */
	Numeric		left_here;		/* the same, counting only qiwi_payin_refunds */
	Numeric		refunded;		/* base minus left */
	Numeric		base;			/* what they are subtracted from */
	bool		captured;
	char	   *status;
	char	   *currency;		/* the payment's */
} PayinHeadroom;

extern void payin_store_invoice(PayinInvoice *invoice, const char *source, bool check_recorded);
extern void payin_store_payment(PayinPayment *payment, const char *source);
extern bool payin_store_token(const PayinToken *token, const char *source);
extern bool payin_store_token_deleted(const char *merchant, const char *account, const char *token,
									  bool confirmed);
extern bool payin_store_card_check(const PayinCardCheck *check, const char *source);
extern char *payin_store_notified(const char *merchant, const char *payment_id,
								  const char *bill_id);
extern void payin_store_lock_payment(const char *merchant, const char *payment_id);
extern bool payin_store_headroom(const char *merchant, const char *payment_id,
								 const char *refund_id, PayinHeadroom *headroom);
extern bool payin_store_lock_invoice(const char *merchant, const char *bill_id,
									 Numeric *amount, char **currency, char **status);

/* An invoice the reconciler follows: CREATED, or PAID with money held */
/* qiwi_payin_invoices as a kind of item of the ledger */
extern const LedgerKind payin_invoice_kind;
extern void payin_store_register_tables(void);

/* ---------- payin_sql.c ---------- */

extern void payin_init(void);

/* ---------- payin_reconcile.c ---------- */

extern char *payin_merchant_problem(const Merchant *merchant);
extern void payin_reconcile_init(void);

/* ---------- payin_intent.c ---------- */

extern const LedgerKind payin_capture_kind;
extern const LedgerKind payin_refund_kind;
extern char *payin_operation_key(const char *payment_id, const char *id);
extern void payin_store_capture(const PayinOperationResult *capture, const char *source);
extern void payin_store_refund(const PayinOperationResult *refund, const char *source);
extern bool payin_store_intent(const PayinOperationResult *intent, bool refund, bool again,
							   const char *what);
extern void payin_store_withdraw(const PayinOperationResult *intent, bool refund, const char *what);
extern void payin_intent_init(void);

#endif							/* QIWI_PAYIN_H */
