/*
 * wallet.h
 *		The QIWI Wallet API (seed 003, qiwi-api.md §4, §8, §9) at
 *		https://edge.qiwi.com with the wallet's Bearer token, every request
 *		through the core's rate limiter keyed by the wallet number.
 *
 * wallet_wire.c     options, the wire, errors, the rate limit, answers
 * wallet_history.c  the history in pages and windows, a transaction, totals, balances
 * wallet_transfer.c transfers: recorded before sending, never doubled
 * wallet_webhook.c  webhooks: registration, the key, verification, the trigger
 * wallet_sync.c     qiwi_wallet_payments, kept by the worker
 */
#ifndef QIWI_WALLET_H
#define QIWI_WALLET_H

#include "core/core.h"

#define WALLET_DEFAULT_API_URL		"https://edge.qiwi.com"
/* History: 1-50 rows a page; a window of at most 90 days (§8) */
#define WALLET_MAX_ROWS				50
#define WALLET_MAX_WINDOW_DAYS		90
/* A transfer's client id: at most 20 digits, unique and increasing (§8, §9) */
#define WALLET_MAX_CLIENT_ID_DIGITS	20
#define WALLET_TRANSFER_PROVIDER	"99"
/* A webhook's URL: at most 100 characters before encoding (§9) */
#define WALLET_MAX_HOOK_URL			100
/* A token lives 180 days; we warn 14 days before (seed 003) */
#define WALLET_TOKEN_LIFETIME_DAYS	180
#define WALLET_TOKEN_WARN_DAYS		14
/* A 423 blocks every endpoint of the wallet for 5 minutes from its dateTime (§9) */
#define WALLET_BLOCK_SECONDS		300
/* Moscow time, in which the history's cursor is written: UTC+3 */
#define WALLET_MOSCOW_OFFSET_SECS	(3 * SECS_PER_HOUR)

/* A history item (PaymentHistoryItem), as the history or a webhook gives it */
typedef struct WalletPayment
{
	int64		txn_id;
	char	   *trm_txn_id;		/* a transfer's client id, as sent; or NULL */
	TimestampTz date;
	char	   *type;			/* IN, OUT, QIWI_CARD */
	char	   *status;			/* SUCCESS, WAITING, ERROR */
	Numeric		amount;			/* sum.amount */
	char	   *currency;		/* ISO letters ("RUB") of sum.currency (643) */
	Numeric		commission;		/* or NULL */
	Numeric		total;			/* or NULL */
	int32		provider;		/* provider.id, or 0 */
	char	   *account;
	char	   *comment;
	int32		error_code;		/* 0: none */
	char	   *error;
	Jsonb	   *item;			/* the whole item, as QIWI wrote it */
} WalletPayment;

/* ---------- wallet_wire.c ---------- */

extern int	wallet_option_token;
extern int	wallet_option_number;
extern int	wallet_option_api_url;
extern int	wallet_option_token_issued;
extern const WireFormat wallet_wire;
extern const QiwiRateLimit *wallet_rate_limit(void);

extern void wallet_define_merchant_options(void);
extern void wallet_define_settings(void);
extern const char *wallet_number(const Merchant *merchant);
extern void wallet_operation(QiwiOperation *op, const Merchant *merchant, HttpMethod method,
							 char *url, char *body, char *context, bool idempotent);
extern void wallet_read_call(const Merchant *merchant, char *url, char *context,
							 const WireAnswer *answer, void *result);
extern bool wallet_read_payment(JsonbValue *element, void **payment, char **problem);

/* ---------- wallet_history.c ---------- */

/* Takes one history item (e.g. upserts it); false stops the history */
typedef bool (*WalletPaymentConsumer) (void *arg, const WalletPayment *payment);
/* Told of a history item that could not be read, and skipped: why */
typedef void (*WalletItemSkipped) (void *arg, const char *problem);

extern bool wallet_history_each(const Merchant *merchant, TimestampTz since, TimestampTz until,
								const char *operation, WalletPaymentConsumer consume,
								WalletItemSkipped skipped, void *arg, QiwiError *error);

/* ---------- wallet_webhook.c ---------- */

extern int	wallet_option_webhook_key;
extern void wallet_webhook_init(void);

/* ---------- wallet_sync.c ---------- */

extern void wallet_sync_init(void);

/* ---------- start-up (each file's own) ---------- */
extern void wallet_init(void);
extern void wallet_transfer_init(void);

#endif							/* QIWI_WALLET_H */
