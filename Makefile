# qiwi_kassa: PGXS build
EXTENSION = qiwi_kassa
MODULE_big = qiwi_kassa
OBJS = src/module.o src/http.o src/protocol.o src/store.o src/functions.o src/notification.o src/worker.o
DATA = sql/qiwi_kassa--1.0.sql

# pg_regress inputs live in sql/ and expected/; they need the sandbox (see test/run-tests.sh)
REGRESS = qiwi_setup qiwi_validation qiwi_bills qiwi_refunds qiwi_errors qiwi_retries qiwi_parser qiwi_https qiwi_security qiwi_secrets qiwi_signature qiwi_notifications qiwi_payform

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter
SHLIB_LINK = -lcurl -lcrypto

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track header dependencies: every object depends on the one header
$(OBJS): src/qiwi_kassa.h

# The test runner reads the regression list from here, so it is written once.
.PHONY: regress-list
regress-list:
	@echo $(REGRESS)
