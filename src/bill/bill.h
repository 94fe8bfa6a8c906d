/*
 * bill.h
 *		The Bill Payments API (seed 001): its objects, its wire format, its
 *		bookkeeping.  A bill is followed from its SQL function (bill_sql.c)
 *		to the wire and back (bill_wire.c, and core/exchange.c).
 *
 * bill_wire.c          URLs, bodies, answers, one operation per API call
 * bill_sql.c           the SQL functions and payment links
 * bill_store.c         qiwi_bills, qiwi_refunds, qiwi_bill_events
 * bill_notification.c  the signed notifications and their trigger
 * bill_reconcile.c     bills as a kind the reconciler keeps current
 */
#ifndef QIWI_BILL_H
#define QIWI_BILL_H

#include "core/core.h"

/* Limits of the Bill Payments API (seed 001) */
#define QIWI_MAX_ID_LENGTH			200
#define QIWI_MAX_COMMENT_LENGTH		255
#define QIWI_MAX_FIELD_LENGTH		255
#define QIWI_MAX_LIFETIME_DAYS		45
/* Where the API is when a merchant names no bill_api_url */
#define QIWI_DEFAULT_API_URL		"https://api.qiwi.com"
/* The option of a merchant's user mapping that holds its key (qiwi.secret_key's for the default merchant) */
#define BILL_SECRET_KEY_OPTION		"bill_secret_key"
/* QIWI's Number(6.2): the largest amount of a bill or a refund */
#define QIWI_MAX_AMOUNT				"999999.99"

typedef struct QiwiBill
{
	const char *merchant;		/* whose bill: "default" or a server's name */
	char	   *bill_id;
	char	   *site_id;
	Numeric		amount;
	char	   *currency;
	char	   *status;
	bool		has_status_changed_at;
	TimestampTz status_changed_at;
	bool		has_created_at;
	TimestampTz created_at;
	QiwiInvoiceTerms terms;
} QiwiBill;

typedef struct QiwiRefund
{
	const char *merchant;
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
	const char *merchant;
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

/* ---------- bill_wire.c ---------- */

extern const ArgLimits bill_limits;
extern int	bill_option_api_url;
extern int	bill_option_site_id;
extern int	bill_option_public_key;
extern int	bill_option_secret_key;

extern bool qiwi_parse_bill_object(JsonbContainer *root, QiwiBill *bill, char **problem);
extern void bill_get_operation(const Merchant *merchant, const char *bill_id, QiwiBill *bill,
							   QiwiOperation *op);
extern void bill_create_operation(const Merchant *merchant, const QiwiCreateBillArgs *args,
								  bool check_money, QiwiBill *bill, QiwiOperation *op);
extern void bill_refund_operation(const Merchant *merchant, const char *bill_id,
								  const char *refund_id, Numeric amount, const char *currency,
								  QiwiRefund *refund, QiwiOperation *op);
extern void bill_get_refund_operation(const Merchant *merchant, const char *bill_id,
									  const char *refund_id, QiwiRefund *refund,
									  QiwiOperation *op);
extern bool bill_reject(const Merchant *merchant, const char *bill_id, QiwiBill *bill,
						QiwiError *error);
extern void bill_define_merchant_options(void);

/* ---------- bill_sql.c ---------- */

extern char *qiwi_api_url;
extern char *qiwi_public_key;
extern void bill_init(void);

/* ---------- bill_store.c ---------- */

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
	char	   *status;			/* before the call */
	Numeric		amount;
	char	   *currency;
	bool		moved;			/* the call changed the row (a MISMATCH flagged it) */
} StoredBill;

/* qiwi_bills as a kind of item of the ledger */
extern const LedgerKind bill_kind;

extern StoreOutcome store_bill(const QiwiBill *bill, const char *source,
							   StoredBill *stored);
extern bool store_lock_bill(const char *merchant, const char *bill_id, StoredBill *stored);
extern void store_report_mismatch(int elevel, const QiwiBill *bill, const StoredBill *stored);
extern bool store_bill_intent(const QiwiCreateBillArgs *args, Jsonb *customer);
extern void store_create_failed(const char *merchant, const char *bill_id, const char *reason);
extern void store_register_table(void);
extern bool store_refund_headroom(const char *merchant, const char *bill_id,
								  const char *refund_id, Numeric *paid, Numeric *refunded);
extern void store_refund(const QiwiRefund *refund);

/* ---------- bill_notification.c ---------- */

extern char *qiwi_site_id;
extern void notification_init(void);

/* ---------- bill_reconcile.c ---------- */

extern void bill_reconcile_init(void);

#endif							/* QIWI_BILL_H */
