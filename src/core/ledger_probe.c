/*
 * ledger_probe.c
 *		Does an answer repeat an item's row?  The most common answer: the
 *		row is found through the primary key (merchant, id) without the
 *		executor, in the snapshot a statement would use, and compared in
 *		place, column for column as the kind describes them.  It runs no SQL
 *		and no user code (index AM, built-in equality): it needs neither the
 *		owner's rights nor the fixed search_path.
 */
#include "core/core.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type_d.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "core/ledger_internal.h"

#define MAX_PROBE_KINDS 8
#define MAX_PROBE_COLUMNS 24

/*
 * What the probe knows of a kind's table: its columns' numbers and
 * collations and its primary key.  relid is reset when the table changes
 * (a relcache callback), and the rest is then looked up again.
 */
typedef struct Probe
{
	const LedgerKind *kind;
	Oid			relid;
	Oid			schema;
	Oid			pkey;
	Oid			key_collations[2];
	AttrNumber	attnums[MAX_PROBE_COLUMNS];
	Oid			collations[MAX_PROBE_COLUMNS];
	AttrNumber	failures;
	AttrNumber	last_error;
	AttrNumber	last;			/* the highest of them */
} Probe;

static Probe probes[MAX_PROBE_KINDS];
static int	nprobes = 0;
static bool callback_registered = false;
static FmgrInfo array_eq_info;

/* Forget the probes' look-ups when their table (or every relation) changes */
static void
probe_invalidate(Datum arg, Oid relid)
{
	for (int i = 0; i < nprobes; i++)
		if (relid == InvalidOid || relid == probes[i].relid)
			probes[i].relid = InvalidOid;
}

/* The probe of a kind */
static Probe *
probe_of(const LedgerKind *kind)
{
	for (int i = 0; i < nprobes; i++)
		if (probes[i].kind == kind)
			return &probes[i];
	if (nprobes >= MAX_PROBE_KINDS || kind->answer.nparams > MAX_PROBE_COLUMNS)
		elog(ERROR, "too many ledger kinds or columns to probe");
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(probe_invalidate, (Datum) 0);
		fmgr_info_cxt(F_ARRAY_EQ, &array_eq_info, TopMemoryContext);
		callback_registered = true;
	}
	probes[nprobes].kind = kind;
	probes[nprobes].relid = InvalidOid;
	return &probes[nprobes++];
}

/* The number of a column of the kind's table, which must have the given type */
static AttrNumber
probe_attnum(Probe *probe, Relation rel, const char *name, Oid type)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);

	if (attnum <= 0 || TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid != type)
		elog(ERROR, "column %s.%s is missing or has another type", probe->kind->table->name, name);
	probe->last = Max(probe->last, attnum);
	return attnum;
}

/* Look the kind's table up in the extension's schema for the probe */
static void
probe_lookup(Probe *probe, Oid schema)
{
	const LedgerKind *kind = probe->kind;
	const char *name = kind->table->name;
	Oid			relid = get_relname_relid(name, schema);
	Relation	rel;
	Relation	pkey;
	AttrNumber	merchant;
	AttrNumber	id;

	if (!OidIsValid(relid))
		elog(ERROR, "table %s is missing", name);
	rel = table_open(relid, AccessShareLock);
	probe->last = 0;
	for (int i = 0; i < kind->answer.nparams; i++)
	{
		const LedgerParam *param = &kind->answer.params[i];

		if (param->column == NULL)
			continue;
		probe->attnums[i] = probe_attnum(probe, rel, param->column, param->type);
		probe->collations[i] = TupleDescAttr(RelationGetDescr(rel), probe->attnums[i] - 1)->attcollation;
	}
	probe->failures = probe_attnum(probe, rel, "failures", INT4OID);
	probe->last_error = probe_attnum(probe, rel, "last_error", TEXTOID);
	merchant = probe_attnum(probe, rel, "merchant", TEXTOID);
	id = probe_attnum(probe, rel, kind->id_column, TEXTOID);
	probe->pkey = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(probe->pkey))
		elog(ERROR, "table %s has no primary key", name);
	pkey = index_open(probe->pkey, AccessShareLock);
	if (pkey->rd_index->indnkeyatts != 2 || pkey->rd_index->indkey.values[0] != merchant ||
		pkey->rd_index->indkey.values[1] != id)
		elog(ERROR, "the primary key of %s is not (merchant, %s)", name, kind->id_column);
	probe->key_collations[0] = pkey->rd_indcollation[0];
	probe->key_collations[1] = pkey->rd_indcollation[1];
	index_close(pkey, NoLock);
	table_close(rel, NoLock);
	probe->schema = schema;
	probe->relid = relid;
}

/* The same number, and with LEDGER_AMOUNT the same scale; NaN and infinity have no scale */
static bool
same_number(LedgerCompare compare, Numeric a, Numeric b)
{
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(a), NumericGetDatum(b))))
		return false;
	if (compare != LEDGER_AMOUNT)
		return true;
	return !numeric_is_nan(a) && !numeric_is_inf(a) &&
		DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(a))) ==
		DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(b)));
}

/*
 * Does a column of the row hold the answer's value?  As SQL's IS NOT
 * DISTINCT FROM, but numbers must be there and equal, and an absent value
 * of a null_keeps column matches anything.
 */
static bool
column_same(const LedgerParam *column, Oid collation, Datum row, bool row_null,
			Datum value, bool value_null)
{
	bool		number = column->compare == LEDGER_AMOUNT || column->compare == LEDGER_NUMERIC;

	if (value_null && column->null_keeps)
		return true;
	if (row_null || value_null)
		return row_null && value_null && !number;
	switch (column->compare)
	{
		case LEDGER_TEXT:
			return DatumGetBool(DirectFunctionCall2Coll(texteq, collation, row, value));
		case LEDGER_NUMERIC:
		case LEDGER_AMOUNT:
			return same_number(column->compare, DatumGetNumeric(row), DatumGetNumeric(value));
		case LEDGER_TIMESTAMP:
			return DatumGetTimestampTz(row) == DatumGetTimestampTz(value);
		case LEDGER_JSONB:
			return DatumGetBool(DirectFunctionCall2(jsonb_eq, row, value));
		case LEDGER_TEXT_ARRAY:
			return DatumGetBool(FunctionCall2Coll(&array_eq_info, collation, row, value));
	}
	return false;
}

/* Does the row in slot repeat the answer (values, nulls: the kind's parameters)? */
static bool
slot_same(const Probe *probe, TupleTableSlot *slot, Datum *values, const char *nulls)
{
	const LedgerKind *kind = probe->kind;
	bool		same = true;

	slot_getsomeattrs(slot, probe->last);
	if (kind->answer.needs_clean)
		same = !slot->tts_isnull[probe->failures - 1] &&
			DatumGetInt32(slot->tts_values[probe->failures - 1]) == 0 &&
			slot->tts_isnull[probe->last_error - 1];
	for (int i = 0; same && i < kind->answer.nparams; i++)
	{
		AttrNumber	attnum = probe->attnums[i];

		if (kind->answer.params[i].column != NULL)
			same = column_same(&kind->answer.params[i], probe->collations[i],
							   slot->tts_values[attnum - 1], slot->tts_isnull[attnum - 1],
							   values[i], nulls[i] == 'n');
	}
	return same;
}

/*
 * Does the item's row repeat the answer column for column (an amount's
 * scale too, where the kind says so)?  values and nulls are the kind's
 * parameters of an answer; false if there is no row.
 */
bool
ledger_row_unchanged(const LedgerKind *kind, Datum *values, const char *nulls)
{
	Probe	   *probe = probe_of(kind);
	Oid			schema = ledger_schema();
	Relation	rel;
	Relation	pkey;
	Snapshot	snapshot;
	ScanKeyData keys[2];
	TupleTableSlot *slot;
	IndexScanDesc scan;
	bool		same = false;

	for (;;)
	{
		if (probe->relid == InvalidOid || probe->schema != schema)
			probe_lookup(probe, schema);
		rel = table_open(probe->relid, AccessShareLock);
		/* locking it took in what changed it since it was looked up */
		if (probe->relid == RelationGetRelid(rel))
			break;
		table_close(rel, NoLock);
	}
	pkey = index_open(probe->pkey, AccessShareLock);
	/* as SPI does for each statement: our own writes so far are visible */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   probe->key_collations[0], F_TEXTEQ, values[kind->answer.merchant_param]);
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   probe->key_collations[1], F_TEXTEQ, values[kind->answer.id_param]);
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, pkey, snapshot, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
		same = slot_same(probe, slot, values, nulls);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(pkey, NoLock);
	table_close(rel, NoLock);
	return same;
}
