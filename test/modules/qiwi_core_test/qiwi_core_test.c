/*
 * qiwi_core_test.c
 *		The test module's library: each mechanism's entry points live in a
 *		file of their own beside this one.
 */
#include "core/core.h"

PG_MODULE_MAGIC;
