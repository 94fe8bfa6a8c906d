/*
 * ledger_kind.c
 *		The statements of each kind of item an API registers (LedgerKind):
 *		one plan table per kind, the API's statements first and then the
 *		ledger's own, which the ledger builds from the kind's description
 *		(claiming due items, a chunk of checks, the due watermark, an event,
 *		a deferred checked_at).  Plans are kept per backend and rebuilt
 *		when the extension's schema changes.
 */
#include "core/core.h"

#include "catalog/pg_type_d.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "core/ledger_internal.h"

#define MAX_LEDGER_TABLES 16

/* The tables of items the APIs registered, for the drop guard */
static const LedgerTable *ledger_tables[MAX_LEDGER_TABLES];
static int	nledger_tables = 0;

/*
 * The kinds the APIs registered, with their plans and the schema they were
 * prepared in, and the watermark this process's claims of the kind have
 * swept up to (ledger_due.c)
 */
typedef struct KindPlans
{
	const LedgerKind *kind;
	Oid			schema;
	SPIPlanPtr *plans;			/* the API's statements, then LEDGER_PLAN_* */
	TimestampTz swept;
} KindPlans;

static KindPlans kinds[MAX_LEDGER_TABLES];
static int	nkinds = 0;

/* Register an API's table of items, whose open rows the drop guard counts (from _PG_init) */
void
ledger_add_table(const LedgerTable *table)
{
	if (nledger_tables >= MAX_LEDGER_TABLES)
		elog(ERROR, "too many ledger tables");
	ledger_tables[nledger_tables++] = table;
}

/* The registered table of items of that name, or NULL */
const LedgerTable *
ledger_table_named(const char *name)
{
	for (int i = 0; i < nledger_tables; i++)
		if (strcmp(ledger_tables[i]->name, name) == 0)
			return ledger_tables[i];
	return NULL;
}

/* Register a kind of item and its table (from _PG_init) */
void
ledger_add_kind(const LedgerKind *kind)
{
	if (nkinds >= MAX_LEDGER_TABLES)
		elog(ERROR, "too many ledger kinds");
	ledger_add_table(kind->table);
	kinds[nkinds].kind = kind;
	kinds[nkinds].schema = InvalidOid;
	kinds[nkinds].swept = DT_NOBEGIN;
	kinds[nkinds].plans = MemoryContextAllocZero(TopMemoryContext, sizeof(SPIPlanPtr) *
												 (kind->nstatements + LEDGER_NPLANS));
	nkinds++;
}

/* The number of registered kinds, and the i-th (for the ledger's own loops) */
int
ledger_nkinds(void)
{
	return nkinds;
}

/* The i-th registered kind */
const LedgerKind *
ledger_kind_at(int i)
{
	return kinds[i].kind;
}

/* The plans of a registered kind */
static KindPlans *
plans_of(const LedgerKind *kind)
{
	for (int i = 0; i < nkinds; i++)
		if (kinds[i].kind == kind)
			return &kinds[i];
	elog(ERROR, "ledger kind of table %s is not registered", kind->table->name);
	return NULL;
}

/* The watermark this process's claims of a kind have swept up to, to read and set */
TimestampTz *
ledger_kind_swept(const LedgerKind *kind)
{
	return &plans_of(kind)->swept;
}

/* Sweep every kind again at the next claim (a merchant skipped while it swept resumes) */
void
ledger_sweep_again(void)
{
	for (int i = 0; i < nkinds; i++)
		kinds[i].swept = DT_NOBEGIN;
}

/* SQL for a list of statuses: ('A', 'B') */
static char *
status_list(const char *const *statuses)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfoChar(&sql, '(');
	for (int i = 0; statuses[i] != NULL; i++)
		appendStringInfo(&sql, "%s%s", i > 0 ? ", " : "", quote_literal_cstr(statuses[i]));
	appendStringInfoChar(&sql, ')');
	return sql.data;
}

/* The condition that a row is due for the reconciler's checks */
static char *
is_reconciled(const LedgerTable *table, const char *column)
{
	return psprintf("%s IN %s", column, status_list(table->reconciled_statuses));
}

/* The condition (row t) that the reconciler follows a row of the kind */
static char *
followed(const LedgerKind *kind, const char *nsp)
{
	if (kind->followed.rows != NULL)
		return psprintf(kind->followed.rows, nsp);
	return is_reconciled(kind->table, psprintf("t.%s", kind->table->status_column));
}

/*
 * A row's failures before a check: none if it was scheduled before the
 * watermark ($8), as qiwi_reconcile_now() makes every followed item due
 * afresh (a row of 1.3 has no scheduled_at: before any watermark)
 */
#define FAILURES_BEFORE \
	"(CASE WHEN coalesce(t.scheduled_at, '-infinity') < $8 THEN 0 ELSE t.failures END)"

/*
 * Claim due rows, skipping rows another writer holds: merchant, id,
 * status and the kind's due columns.  Due by its schedule (next_check_at
 * passed $3, most overdue first), or else by the watermark $4 that
 * qiwi_reconcile_now() raises (scheduled before it): nothing is written to
 * make a row due.  A chunk of checks in one statement over arrays, planned
 * for each run: each is due again after base * 2^checks (2^failures after
 * a failure), capped, at the latest just after the kind's deadline, or at
 * once as the kind says; scheduled_at says when.
 */
static void
prepare_reconciler_plans(SPIPlanPtr *plans, const LedgerKind *kind, const char *nsp)
{
	Oid			claim_types[4] = {INT4OID, TEXTARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Oid			check_types[8] = {TEXTARRAYOID, TEXTARRAYOID, BOOLARRAYOID, TEXTARRAYOID,
	FLOAT8OID, FLOAT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	const char *table = kind->table->name;
	const char *id = kind->id_column;
	const char *cond = followed(kind, nsp);
	const char *columns = psprintf("SELECT t.merchant, t.%3$s, t.%4$s%5$s%6$s FROM %1$s.%2$s t WHERE %7$s",
								   nsp, table, id, kind->table->status_column,
								   kind->followed.due_columns ? ", " : "",
								   kind->followed.due_columns ? kind->followed.due_columns : "", cond);

	plans[LEDGER_PLAN_CLAIM] = ledger_prepare(psprintf(
		"%s AND t.next_check_at <= $3 AND t.merchant <> ALL ($2)"
		" ORDER BY t.next_check_at LIMIT $1 FOR UPDATE OF t SKIP LOCKED", columns), 3, claim_types);
	plans[LEDGER_PLAN_CLAIM_SWEPT] = ledger_prepare(psprintf(
		"%s AND coalesce(t.scheduled_at, '-infinity') < $4 AND t.next_check_at > $3"
		" AND t.merchant <> ALL ($2) LIMIT $1 FOR UPDATE OF t SKIP LOCKED", columns), 4, claim_types);
	plans[LEDGER_PLAN_CHECKS] = ledger_prepare_for_arrays(psprintf(
		"UPDATE %1$s.%2$s t SET"
		" checked_at = CASE WHEN u.failed THEN t.checked_at ELSE clock_timestamp() END,"
		" check_count = t.check_count + CASE WHEN u.failed THEN 0 ELSE 1 END,"
		" failures = CASE WHEN u.failed THEN " FAILURES_BEFORE " + 1 ELSE 0 END,"
		" last_error = u.error%4$s,"
		" scheduled_at = clock_timestamp(),"
		" next_check_at = CASE %5$s ELSE"
		" least(clock_timestamp() + make_interval(secs => least($6,"
		"   $5 * power(2, least(CASE WHEN u.failed THEN " FAILURES_BEFORE " + 1 ELSE t.check_count + 1 END, 30)))),"
		"  coalesce(%6$s, 'infinity')) END"
		" FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[]) AS u(merchant, id, failed, error)"
		" WHERE t.merchant = u.merchant AND t.%3$s = u.id%7$s%8$s",
		nsp, table, id, kind->followed.check_set, kind->followed.check_at_once,
		psprintf(kind->followed.check_deadline, nsp), kind->followed.checks_only_rows ? " AND " : "",
		kind->followed.checks_only_rows ? cond : ""), 8, check_types);
	/* the followed rows, which a watermark raised now makes due */
	plans[LEDGER_PLAN_COUNT_FOLLOWED] = ledger_prepare(psprintf(
		"SELECT count(*) FROM %1$s.%2$s t WHERE %3$s", nsp, table, cond), 0, NULL);
	plans[LEDGER_PLAN_WATERMARK] = ledger_prepare(psprintf(
		"SELECT due_before FROM %1$s.qiwi_reconcile_watermark", nsp), 0, NULL);
	plans[LEDGER_PLAN_RAISE_WATERMARK] = ledger_prepare(psprintf(
		"INSERT INTO %1$s.qiwi_reconcile_watermark AS w (due_before) VALUES (clock_timestamp())"
		" ON CONFLICT (single) DO UPDATE SET due_before = greatest(w.due_before, excluded.due_before)",
		nsp), 0, NULL);
	/* the sweep's claim (intent.c): every row sent with an outcome not known, due or not */
	if (kind->unknown_outcome != NULL)
		plans[LEDGER_PLAN_SWEEP] = ledger_prepare(psprintf(
			"SELECT t.merchant, t.%3$s, t.%4$s%5$s%6$s FROM %1$s.%2$s t WHERE (%7$s) AND t.merchant <> ALL ($2)"
			" ORDER BY t.next_check_at LIMIT $1 FOR UPDATE OF t SKIP LOCKED",
			nsp, table, id, kind->table->status_column, kind->followed.due_columns ? ", " : "",
			kind->followed.due_columns ? kind->followed.due_columns : "", kind->unknown_outcome), 2, claim_types);
}

/*
 * An event: merchant, object (if the events table has one), id, old and
 * new status, source.  checked_at of rows an answer repeated, written at
 * pre-commit: one row, or arrays of them.  The lock of a row before it is
 * written, with what a write decides on.
 */
static void
prepare_record_plans(SPIPlanPtr *plans, const LedgerKind *kind, const char *nsp)
{
	Oid			event_types[6] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Oid			checked_types[3] = {TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID};
	Oid			checked_one_types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	bool		object = kind->events.object_column != NULL;

	plans[LEDGER_PLAN_EVENT] = ledger_prepare(psprintf(
		"INSERT INTO %1$s.%2$s (merchant, %3$s%4$s%5$s, old_status, new_status, source)"
		" VALUES ($1, %6$s$3, $4, $5, $6)", nsp, kind->events.table,
		object ? kind->events.object_column : "", object ? ", " : "", kind->events.id_column,
		object ? "$2, " : ""), 6, event_types);
	plans[LEDGER_PLAN_CHECKED_ONE] = ledger_prepare(psprintf(
		"UPDATE %1$s.%2$s SET checked_at = greatest(checked_at, $3)"
		" WHERE merchant = $1 AND %3$s = $2", nsp, kind->table->name, kind->id_column),
		3, checked_one_types);
	plans[LEDGER_PLAN_CHECKED_MANY] = ledger_prepare_for_arrays(psprintf(
		"UPDATE %1$s.%2$s t SET checked_at = greatest(t.checked_at, a.at)"
		" FROM (SELECT merchant, id, max(at) AS at"
		"  FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(merchant, id, at)"
		"  GROUP BY merchant, id) a"
		" WHERE t.merchant = a.merchant AND t.%3$s = a.id", nsp, kind->table->name,
		kind->id_column), 3, checked_types);
	plans[LEDGER_PLAN_LOCK] = ledger_prepare(psprintf(
		"SELECT %3$s, amount, currency FROM %1$s.%2$s WHERE merchant = $1 AND %4$s = $2 FOR UPDATE",
		nsp, kind->table->name, kind->table->status_column, kind->id_column), 2, checked_one_types);
	plans[LEDGER_PLAN_ID_LOCK] = ledger_prepare(psprintf(
		"SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext(%1$s), pg_catalog.hashtext($1 || '/' || $2))",
		quote_literal_cstr(kind->table->name)), 2, checked_one_types);
	plans[LEDGER_PLAN_READ] = ledger_prepare(psprintf(
		"SELECT %3$s, amount, currency FROM %1$s.%2$s WHERE merchant = $1 AND %4$s = $2",
		nsp, kind->table->name, kind->table->status_column, kind->id_column), 2, checked_one_types);
}

/* Forget a kind's statements if the extension moved to another schema */
static void
prepare_kind(KindPlans *kp, Oid schema)
{
	if (kp->schema == schema)
		return;
	for (int i = 0; i < kp->kind->nstatements + LEDGER_NPLANS; i++)
		ledger_free_plan(&kp->plans[i]);
	kp->schema = schema;
}

/*
 * A kind's statement, prepared on first use with the others of its group
 * (the API's one by one, the reconciler's, the records'): a process may
 * need few of them (the intent's worker, two)
 */
static SPIPlanPtr
kind_plan(KindPlans *kp, int plan)
{
	const LedgerKind *kind = kp->kind;
	int			own = plan - kind->nstatements;
	const char *nsp;

	if (kp->plans[plan] != NULL)
		return kp->plans[plan];
	if (own == LEDGER_PLAN_SWEEP && kind->unknown_outcome == NULL)
		elog(ERROR, "ledger kind of table %s has no items to sweep", kind->table->name);
	nsp = quote_identifier(get_namespace_name(kp->schema));
	if (own < 0)
	{
		const LedgerStatement *st = &kind->statements[plan];
		const LedgerTable *table = st->table ? st->table : kind->table;
		Oid		   *types = palloc(sizeof(Oid) * Max(st->nargs, 1));

		for (int j = 0; j < st->nargs; j++)
			types[j] = st->params[j].type;
		kp->plans[plan] = ledger_prepare(psprintf(st->sql, nsp, status_list(table->open_statuses)),
										 st->nargs, types);
	}
	else if (own < LEDGER_PLAN_EVENT || own == LEDGER_PLAN_SWEEP)
		prepare_reconciler_plans(kp->plans + kind->nstatements, kind, nsp);
	else
		prepare_record_plans(kp->plans + kind->nstatements, kind, nsp);
	return kp->plans[plan];
}

/* Begin bookkeeping as the owner, with the kind's statements ready */
void
ledger_begin_kind(OwnerContext *ctx, const LedgerKind *kind)
{
	ledger_begin(ctx);
	prepare_kind(plans_of(kind), ctx->schema);
}

/*
 * Run statement plan of a kind (ledger_begin_kind first): the API's, or
 * LEDGER_ROW_LOCK; checking its result code
 */
uint64
ledger_run_plan(const LedgerKind *kind, int plan, Datum *values, const char *nulls, int expected)
{
	if (plan == LEDGER_ROW_LOCK)
		plan = kind->nstatements + LEDGER_PLAN_LOCK;
	return ledger_run(kind_plan(plans_of(kind), plan), values, nulls, expected);
}

/* Run one of the ledger's own statements of a kind (LEDGER_PLAN_*) */
uint64
ledger_run_own(const LedgerKind *kind, int plan, Datum *values, const char *nulls, int expected)
{
	return ledger_run_plan(kind, kind->nstatements + plan, values, nulls, expected);
}

/*
 * A new id of the merchant's items of a kind, ids that only ever increase
 * (QIWI takes some ids once each, increasing): given, it must be above the
 * merchant's greatest (else an error naming argname, with detail); none,
 * the greater of the clock in microseconds and the greatest + 1, which
 * never goes back (the ids travel with restores and to a promoted standby,
 * and one a restore lost was below today's clock).  Ids are digits without
 * leading zeros.  The merchant's ids stay locked to the transaction's end,
 * so that the item written with it is the next writer's greatest.
 */
char *
ledger_increasing_id(const LedgerKind *kind, const char *merchant, const char *given,
					 const char *argname, const char *detail)
{
	OwnerContext ctx;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(kind->table->name), CStringGetTextDatum(merchant)};
	char	   *greatest;
	size_t		len = given ? strlen(given) : 0;

	/* one writer of a merchant's ids at a time, to its commit; then a fresh snapshot reads them */
	ledger_begin_kind(&ctx, kind);
	if (SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext($1), pg_catalog.hashtext($2))",
							  2, types, values, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_execute_with_args(psprintf("SELECT max(%3$s::pg_catalog.numeric)::text, GREATEST(pg_catalog.floor("
									   "EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()) OPERATOR(pg_catalog.*) 1000000),"
									   " max(%3$s::pg_catalog.numeric) OPERATOR(pg_catalog.+) 1)::text FROM %1$s.%2$s"
									   " WHERE merchant = $2", quote_identifier(get_namespace_name(ctx.schema)),
									   quote_identifier(kind->table->name), quote_identifier(kind->id_column)),
							  2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the greatest id of %s", kind->table->name);
	greatest = ledger_row_text(&ctx, 1);
	/* digits without leading zeros: the longer is the greater */
	if (len > 0 && greatest != NULL &&
		(len < strlen(greatest) || (len == strlen(greatest) && strcmp(given, greatest) <= 0)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be greater than %s, this merchant's greatest", argname, greatest),
				 errdetail("%s", detail), errhint("Give none to have one generated.")));
	if (len == 0)
		given = ledger_row_text(&ctx, 2);
	ledger_end(&ctx);
	return (char *) given;
}

/*
 * Write an item's change as the owner: statement plan of a kind with
 * values (nulls as SPI takes them); when it wrote, the event of item id's
 * change to status, from source, and from the old status a *_RETURNING
 * statement returns first (else none: a new item).  Whether it wrote.
 */
bool
ledger_write_values(const LedgerKind *kind, int plan, Datum *values, const char *nulls, int expected,
					const char *merchant, const char *id, const char *status, const char *source)
{
	OwnerContext ctx;
	bool		wrote;

	ledger_begin_kind(&ctx, kind);
	wrote = ledger_run_plan(kind, plan, values, nulls, expected) > 0;
	if (wrote)
		ledger_event(kind, merchant, kind->events.object, id, expected == SPI_OK_UPDATE_RETURNING ||
					 expected == SPI_OK_INSERT_RETURNING || expected == SPI_OK_DELETE_RETURNING ?
					 ledger_row_text(&ctx, 1) : NULL, status, source);
	ledger_end(&ctx);
	return wrote;
}

/* ledger_write_values with an answer's values (params, n) */
bool
ledger_write_change(const LedgerKind *kind, int plan, const LedgerParam *params, int n,
					const void *answer, int expected, const char *merchant, const char *id,
					const char *status, const char *source)
{
	Datum	   *values = palloc(sizeof(Datum) * n);
	char	   *nulls = palloc(n + 1);

	ledger_fill(params, n, answer, values, nulls);
	return ledger_write_values(kind, plan, values, nulls, expected, merchant, id, status, source);
}

/*
 * The greatest id of the merchant's items above id (ledger_increasing_id's
 * ids) whose status is among accepted (an SQL list: "('a', 'b')"), or
 * NULL: QIWI, which takes such ids only increasing, refuses id once it
 * took that one.  In its own bookkeeping, as the owner.
 */
char *
ledger_id_overtaken(const LedgerKind *kind, const char *merchant, const char *id, const char *accepted)
{
	OwnerContext ctx;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(merchant), CStringGetTextDatum(id)};
	char	   *greater;

	ledger_begin_kind(&ctx, kind);
	if (SPI_execute_with_args(psprintf("SELECT max(%3$s::pg_catalog.numeric)::text FROM %1$s.%2$s WHERE merchant = $1"
									   " AND %4$s IN %5$s AND %3$s::pg_catalog.numeric > $2::pg_catalog.numeric",
									   quote_identifier(get_namespace_name(ctx.schema)),
									   quote_identifier(kind->table->name), quote_identifier(kind->id_column),
									   quote_identifier(kind->table->status_column), accepted),
							  2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the greater ids of %s", kind->table->name);
	greater = ledger_row_text(&ctx, 1);
	ledger_end(&ctx);
	return greater;
}

/*
 * Is due item i, sent with an outcome not known, to be given up as never
 * made?  Only once qiwi.unsent_after has passed since
 * created, its intent (QIWI may record it late), and a look after that
 * (the row's checked_at, due column checked_column) found it absent too:
 * this look is the second.
 */
bool
ledger_due_past_grace(const LedgerDue *due, int i, TimestampTz created, int checked_column)
{
	bool		never;
	Datum		checked_at = ledger_due_value(due, i, checked_column, &never);
	TimestampTz grace_end = created + (int64) qiwi_unsent_after_s * USECS_PER_SEC;

	return !never && DatumGetTimestampTz(checked_at) >= grace_end && GetCurrentTimestamp() >= grace_end;
}

/*
 * Fill the parameters an answer holds (values, and nulls with its end);
 * those the API sets are left to it, marked not NULL
 */
void
ledger_fill(const LedgerParam *params, int n, const void *answer, Datum *values, char *nulls)
{
	const char *base = answer;

	ledger_no_nulls(nulls, n);
	for (int i = 0; i < n; i++)
	{
		const LedgerParam *p = &params[i];
		const void *field = base + p->offset;
		bool		present = p->has_offset < 0 || *(const bool *) (base + p->has_offset);

		switch (p->value)
		{
			case LEDGER_V_SET:
				break;
			case LEDGER_V_TEXT:
				values[i] = ledger_text_or_null(*(char *const *) field, &nulls[i]);
				break;
			case LEDGER_V_NUMERIC:
				values[i] = NumericGetDatum(*(const Numeric *) field);
				break;
			case LEDGER_V_VARLENA:
				values[i] = ledger_pointer_or_null(*(void *const *) field, &nulls[i]);
				break;
			case LEDGER_V_TIMESTAMP:
				values[i] = ledger_time_or_null(*(const TimestampTz *) field, present, &nulls[i]);
				break;
			case LEDGER_V_BOOL:
				values[i] = BoolGetDatum(*(const bool *) field);
				nulls[i] = present ? ' ' : 'n';
				break;
			case LEDGER_V_INT64:
				values[i] = Int64GetDatum(*(const int64 *) field);
				nulls[i] = *(const int64 *) field != 0 ? ' ' : 'n';
				break;
			case LEDGER_V_INT32:
				values[i] = Int32GetDatum(*(const int32 *) field);
				nulls[i] = *(const int32 *) field != 0 ? ' ' : 'n';
				break;
		}
	}
}

/*
 * Lock an item's row before a call that changes it at QIWI (a conflicting
 * writer or a serialization failure shows now, before anything is sent);
 * false if it is unknown, else its status, amount and currency
 */
bool
ledger_lock_item(const LedgerKind *kind, const char *merchant, const char *id, char **status,
				 Numeric *amount, char **currency)
{
	Datum		values[2] = {CStringGetTextDatum(merchant), CStringGetTextDatum(id)};
	OwnerContext ctx;
	bool		known;

	ledger_begin_kind(&ctx, kind);
	known = ledger_run_plan(kind, LEDGER_ROW_LOCK, values, NULL, SPI_OK_SELECT) > 0;
	if (known)
	{
		*status = ledger_row_text(&ctx, 1);
		*amount = ledger_row_numeric(&ctx, 2);
		*currency = ledger_row_text(&ctx, 3);
	}
	ledger_end(&ctx);
	return known;
}

/*
 * Become the one writer of an item's id to the end of the transaction (a
 * second caller waits here until the first commits or rolls back, then
 * reads what it did), then read its row without locking it: a worker that
 * commits or withdraws the item's intent apart (intent.c) must not wait
 * for the caller.  False if it is unknown, else its status, amount and
 * currency.
 */
bool
ledger_lock_id(const LedgerKind *kind, const char *merchant, const char *id, char **status,
			   Numeric *amount, char **currency)
{
	Datum		values[2] = {CStringGetTextDatum(merchant), CStringGetTextDatum(id)};
	OwnerContext ctx;
	bool		known;

	ledger_begin_kind(&ctx, kind);
	ledger_run_own(kind, LEDGER_PLAN_ID_LOCK, values, NULL, SPI_OK_SELECT);
	/* a statement of its own: its snapshot sees what the caller waited for committed */
	known = ledger_run_own(kind, LEDGER_PLAN_READ, values, NULL, SPI_OK_SELECT) > 0;
	if (known)
	{
		*status = ledger_row_text(&ctx, 1);
		*amount = ledger_row_numeric(&ctx, 2);
		*currency = ledger_row_text(&ctx, 3);
	}
	ledger_end(&ctx);
	return known;
}

/*
 * Lock an item's row (lock_plan, a SELECT ... FOR UPDATE) or insert it
 * (insert_plan, ON CONFLICT DO NOTHING), trying again when a concurrent
 * writer inserted it first; true if it was there (its row in SPI_tuptable)
 */
bool
ledger_lock_or_insert(const LedgerKind *kind, int lock_plan, Datum *lock_values,
					  const char *lock_nulls, int insert_plan, Datum *values, const char *nulls)
{
	for (;;)
	{
		if (ledger_run_plan(kind, lock_plan, lock_values, lock_nulls, SPI_OK_SELECT) > 0)
			return true;
		if (ledger_run_plan(kind, insert_plan, values, nulls, SPI_OK_INSERT) > 0)
			return false;
	}
}

/* Column i of the first row SPI returned, as text in the caller's context, or NULL */
char *
ledger_row_text(OwnerContext *ctx, int column)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);

	return isnull ? NULL : MemoryContextStrdup(ctx->caller_context, TextDatumGetCString(d));
}

/* Column i of the first row SPI returned, a boolean (false if NULL) */
bool
ledger_row_bool(int column)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);

	return !isnull && DatumGetBool(d);
}

/* Column i of the first row SPI returned, as numeric in the caller's context, or NULL */
Numeric
ledger_row_numeric(OwnerContext *ctx, int column)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);
	MemoryContext spi_context;
	Numeric		value;

	if (isnull)
		return NULL;
	spi_context = MemoryContextSwitchTo(ctx->caller_context);
	value = DatumGetNumericCopy(d);
	MemoryContextSwitchTo(spi_context);
	return value;
}

/*
 * Record a status change in the kind's events table and announce it on
 * its channel at commit (inside ledger_begin_kind); object is NULL for a
 * kind whose events have no object
 */
void
ledger_event(const LedgerKind *kind, const char *merchant, const char *object, const char *id,
			 const char *old_status, const char *new_status, const char *source)
{
	Datum		values[6];
	char		nulls[7] = "      ";
	StringInfoData payload;

	values[0] = CStringGetTextDatum(merchant);
	values[1] = ledger_text_or_null(object, &nulls[1]);
	values[2] = CStringGetTextDatum(id);
	values[3] = ledger_text_or_null(old_status, &nulls[3]);
	values[4] = CStringGetTextDatum(new_status);
	values[5] = CStringGetTextDatum(source);
	ledger_run_own(kind, LEDGER_PLAN_EVENT, values, nulls, SPI_OK_INSERT);

	initStringInfo(&payload);
	appendStringInfoChar(&payload, '{');
	if (object != NULL)
	{
		appendStringInfoString(&payload, "\"object\":");
		escape_json(&payload, object);
		appendStringInfoChar(&payload, ',');
	}
	escape_json(&payload, kind->events.payload_id_key);
	appendStringInfoChar(&payload, ':');
	escape_json(&payload, id);
	appendStringInfoString(&payload, ",\"status\":");
	escape_json(&payload, new_status);
	appendStringInfoString(&payload, ",\"source\":");
	escape_json(&payload, source);
	appendStringInfoString(&payload, ",\"merchant\":");
	escape_json(&payload, merchant);
	appendStringInfoChar(&payload, '}');
	Async_Notify(kind->events.channel, payload.data);
}

/*
 * Say that QIWI reported an item (what, id) for other money (amount,
 * currency, with QIWI's status) than the shop's (shop: the shop's item);
 * kept says how it is recorded
 */
void
ledger_report_mismatch(int elevel, const char *what, const char *id, Numeric amount,
					   const char *currency, const char *status, const char *shop,
					   Numeric shop_amount, const char *shop_currency, const char *kept)
{
	ereport(elevel,
			(errcode(ERRCODE_QIWI_AMOUNT_MISMATCH),
			 errmsg("QIWI reports %s \"%s\" for %s %s, but the shop's %s is for %s %s",
					what, id, qiwi_format_amount(amount), currency, shop,
					qiwi_format_amount(shop_amount), shop_currency),
			 errdetail("QIWI says %s. %s", status, kept)));
}
