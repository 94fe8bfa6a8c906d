/*
 * apis.c
 *		The APIs this library speaks: the one place outside src/<api>/ that
 *		names them, so that the core (src/core/) names none.  Adding an API
 *		adds its start-up here (src/README.md).
 */
#include "core/core.h"

#include "bill/bill.h"
#include "payin/payin.h"
#include "pull/pull.h"
#include "wallet/wallet.h"

/* Start every API: its settings, merchant options, tables and kinds of items */
void
qiwi_apis_init(void)
{
	bill_init();
	payin_init();
	pull_init();
	wallet_init();
}
