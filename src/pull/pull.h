/*
 * pull.h
 *		The QIWI Wallet Pull REST API 2.1 (seed 002, qiwi-api.md §3 with its
 *		corrections in §8 and §9): bills and their refunds under
 *		/api/v2/prv/{prv_id}, Basic authorization, form bodies, answers in a
 *		{"response": {"result_code": N, ...}} envelope.  A bill is followed
 *		from its SQL function (pull_sql.c) to the wire and back
 *		(pull_wire.c, and core/exchange.c) into the bookkeeping
 *		(pull_store.c).
 *
 * pull_wire.c   options, URLs, bodies, result codes, answers, operations
 * pull_sql.c    the SQL functions
 * pull_store.c  qiwi_pull_bills, qiwi_pull_refunds, qiwi_pull_events
 * pull_notification.c  notifications: signatures, Basic, the trigger
 * pull_reconcile.c  bills and refunds as kinds the reconciler follows
 */
#ifndef QIWI_PULL_H
#define QIWI_PULL_H

#include "core/core.h"

/* Limits of the Pull API (§3: bill_id string(200), comment 255, prv_name 100) */
#define PULL_MAX_ID_LENGTH			200
#define PULL_MAX_COMMENT_LENGTH		255
#define PULL_MAX_PRV_NAME_LENGTH	100
#define PULL_MAX_REFUND_ID_LENGTH	9
/* "Invoice will be automatically expired when 45 days is passed": a later lifetime is refused */
#define PULL_MAX_LIFETIME_DAYS		45
#define PULL_MAX_AMOUNT				"999999.99"
#define PULL_DEFAULT_API_URL		"https://api.qiwi.com"
/* The payment form a buyer is sent to (§3, "Redirect to checkout") */
#define PULL_FORM_URL				"https://oplata.qiwi.com/form"
/* Moscow time, in which lifetimes are written: UTC+3 all year since 2014 */
#define PULL_MOSCOW_OFFSET_SECS		(3 * SECS_PER_HOUR)

/* A bill as an answer gives it */
typedef struct PullBill
{
	const char *merchant;
	char	   *bill_id;
	Numeric		amount;
	char	   *currency;
	char	   *status;			/* waiting, paid, rejected, unpaid, expired */
	char	   *user;			/* tel:+7... */
	char	   *comment;
	Numeric		origin_amount;	/* once the buyer started paying, or NULL */
	char	   *origin_currency;
	char	   *error;			/* the bill's error code, as written */
} PullBill;

/* A refund as an answer gives it */
typedef struct PullRefund
{
	const char *merchant;
	char	   *bill_id;
	char	   *refund_id;
	Numeric		amount;
	char	   *currency;		/* the bill's, when the tables know it */
	char	   *status;			/* processing, success, fail */
	char	   *error;
} PullRefund;

/* What a create asks for */
typedef struct PullCreateArgs
{
	const char *bill_id;
	const char *phone;			/* digits: sent as tel:+<phone> */
	Numeric		amount;
	const char *comment;
	TimestampTz lifetime;
	const char *currency;
	const char *pay_source;		/* qw or mobile, or NULL */
	const char *prv_name;
} PullCreateArgs;

/* ---------- pull_wire.c ---------- */

extern const ArgLimits pull_limits;
extern int	pull_option_api_id;
extern int	pull_option_api_password;
extern int	pull_option_prv_id;
extern int	pull_option_api_url;
extern int	pull_option_notification_password;

extern void pull_define_merchant_options(void);
extern void pull_create_operation(const Merchant *merchant, const PullCreateArgs *args,
								  PullBill *bill, QiwiOperation *op);
extern void pull_bill_operation(const Merchant *merchant, const char *bill_id, bool cancel,
								PullBill *bill, QiwiOperation *op);
extern void pull_refund_operation(const Merchant *merchant, const char *bill_id,
								  const char *refund_id, Numeric amount, PullRefund *refund,
								  QiwiOperation *op);
extern char *pull_form_url(const Merchant *merchant, const char *bill_id, const char *success_url,
						   const char *fail_url, const char *pay_source);

/* ---------- pull_store.c ---------- */

extern const LedgerKind pull_bill_kind;
extern const LedgerKind pull_refund_kind;
extern bool pull_store_bill(PullBill *bill, const char *source);
extern void pull_store_refund(PullRefund *refund, const char *source);
extern char *pull_store_bill_currency(const char *merchant, const char *bill_id);
extern Numeric pull_store_refunded(const char *merchant, const char *bill_id,
								   const char *refund_id);

/* ---------- pull_sql.c ---------- */

extern void pull_init(void);

/* ---------- pull_reconcile.c ---------- */

extern void pull_reconcile_init(void);

#endif							/* QIWI_PULL_H */
