# qiwi_kassa: PGXS build
EXTENSION = qiwi_kassa
MODULE_big = qiwi_kassa
OBJS = src/core/module.o src/core/transport.o src/core/exchange.o src/core/guarded.o src/core/paging.o src/core/codecs.o \
	src/core/validate.o src/core/signature.o src/core/ledger.o src/core/ledger_kind.o src/core/intent.o \
	src/core/ledger_due.o src/core/ledger_probe.o src/core/launcher.o \
	src/core/reconciler.o src/core/reconciler_shared.o src/core/requester.o src/core/merchant.o src/core/merchant_key.o src/core/redact.o src/core/syncs.o \
	src/core/guard.o src/apis.o src/core/calls.o src/core/ratelimit.o src/core/notification.o src/core/wire.o \
	src/bill/bill_wire.o src/bill/bill_sql.o src/bill/bill_store.o \
	src/bill/bill_notification.o src/bill/bill_reconcile.o \
	src/payin/payin_wire.o src/payin/payin_parse.o src/payin/payin_sql.o src/payin/payin_args.o src/payin/payin_store.o \
	src/payin/payin_notification.o src/payin/payin_reconcile.o src/payin/payin_intent.o \
	src/pull/pull_wire.o src/pull/pull_sql.o src/pull/pull_store.o src/pull/pull_notification.o src/pull/pull_reconcile.o \
	src/wallet/wallet_wire.o src/wallet/wallet_history.o src/wallet/wallet_transfer.o src/wallet/wallet_webhook.o \
	src/wallet/wallet_sync.o
# The version is written once, in the control file.  Its script is built
# from sql/ext: the core first, then one file per API; older versions'
# scripts and the upgrade scripts stay as released.
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))

# pg_regress inputs live in sql/ and expected/; they need the sandbox (see test/run-tests.sh)
REGRESS = qiwi_setup qiwi_validation qiwi_bills qiwi_refunds qiwi_errors qiwi_retries qiwi_parser qiwi_hostile qiwi_https qiwi_security qiwi_secrets qiwi_signature qiwi_signature_hex qiwi_notifications qiwi_payform qiwi_search_path qiwi_readonly qiwi_mismatch qiwi_merchants qiwi_reports qiwi_writes qiwi_probe qiwi_payin qiwi_payin_validation qiwi_payin_signature qiwi_payin_notifications qiwi_payin_scenarios qiwi_payin_tokens qiwi_payin_card_checks qiwi_payin_security qiwi_payin_refund_checks qiwi_pull qiwi_pull_notifications qiwi_wallet_history qiwi_wallet_transfers qiwi_wallet_webhooks qiwi_tutorial qiwi_catalog_docs qiwi_grants

# make installcheck (defined below): a UTF8 test database on the server at
# PGHOST/PGPORT, which must preload the library (CONTRIBUTING.md)
REGRESS_OPTS = --encoding=UTF8
NO_INSTALLCHECK = 1

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src -Wall -Wextra -Werror -Wno-unused-parameter -DQIWI_KASSA_VERSION='"$(EXTVERSION)"'
SHLIB_LINK = -lcurl -lcrypto

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS's installcheck, run by test/with-sandbox.sh: the QIWI sandboxes are up
# and the sessions' settings point at them while pg_regress runs
installcheck:
	bash $(srcdir)/test/with-sandbox.sh $(top_builddir)/src/test/regress/pg_regress \
		--inputdir=$(srcdir) --bindir='$(bindir)' $(pg_regress_locale_flags) \
		$(EXTRA_REGRESS_OPTS) $(REGRESS_OPTS) $(REGRESS)

# make installcheck in a throwaway cluster that preloads the library
# (pg_virtualenv, from Debian's postgresql-common); VIRTUALENV_OPTS adds
# settings to its postgresql.conf ("-o name=value ...")
.PHONY: installcheck-virtualenv
installcheck-virtualenv:
	pg_virtualenv -t -v $(MAJORVERSION) -o shared_preload_libraries=$(MODULE_big) $(VIRTUALENV_OPTS) $(MAKE) installcheck

# PGXS does not track header dependencies: every object depends on the one header
$(OBJS): src/core/core.h src/core/bookkeeping.h src/core/reconciler_internal.h src/core/ledger_internal.h src/bill/bill.h src/payin/payin.h src/pull/pull.h src/wallet/wallet.h $(EXTENSION).control

# The test runner reads the regression list from here, so it is written once.
.PHONY: regress-list
regress-list:
	@echo $(REGRESS)

EXT_SOURCES = sql/ext/core.sql sql/ext/bill.sql sql/ext/payin.sql sql/ext/pull.sql sql/ext/wallet.sql sql/ext/reports.sql sql/ext/duties.sql
sql/$(EXTENSION)--$(EXTVERSION).sql: $(EXT_SOURCES) $(EXTENSION).control
	cat $(EXT_SOURCES) > $@

.PHONY: extversion
extversion:
	@echo $(EXTVERSION)
