/*
 * calls.c
 *		What the SQL functions of every API share: the merchant argument and
 *		arguments from a closed set of names, sending an operation and
 *		raising what went wrong, whether a reading call may record what it
 *		learnt, refusing a create under an id used for other money, result
 *		rows (one, or a materialized set's: of columns, a page's items, sums
 *		by currency), and the checks every refund makes before anything is
 *		sent.  The API supplies the wording and the lookups.
 */
#include "core/core.h"

#include "access/htup_details.h"
#include "catalog/pg_type_d.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* ---------- arguments ---------- */

/* The merchant named by argument argno (NULL, or absent from an older signature: the default one) */
const Merchant *
arg_merchant(FunctionCallInfo fcinfo, int argno)
{
	return merchant_for_call(argno < PG_NARGS() ? arg_optional_text(fcinfo, argno, "merchant") : NULL);
}

/*
 * The id (argument 0, idname) and the merchant (argument 1) of a call that
 * reads an object at QIWI, checked in this order; then the extension must
 * be ready to record what the call learns
 */
const Merchant *
arg_reading_call(FunctionCallInfo fcinfo, const char *idname, const ArgLimits *limits, char **id)
{
	const Merchant *merchant;

	*id = arg_required_id(fcinfo, 0, idname, limits);
	merchant = arg_merchant(fcinfo, 1);
	ledger_require_ready();
	return merchant;
}

/* An optional text of at most max characters (a comment: control characters allowed) */
char *
arg_optional_limited_text(FunctionCallInfo fcinfo, int argno, const char *argname, int max)
{
	char	   *value = arg_optional_text(fcinfo, argno, argname);

	if (value != NULL)
		arg_check_length(value, max, argname);
	return value;
}

/* Raise unless value (not NULL) is one of names */
static void
arg_check_name(const char *value, const char *argname, const char *const *names)
{
	if (!qiwi_name_in(value, names))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be one of %s", argname, qiwi_quoted_names(names))));
}

/* An optional argument that is one of names */
char *
arg_optional_name(FunctionCallInfo fcinfo, int argno, const char *argname,
				  const char *const *names)
{
	char	   *value = arg_optional_text(fcinfo, argno, argname);

	if (value != NULL)
		arg_check_name(value, argname, names);
	return value;
}

/* A required argument that is one of names */
char *
arg_required_name(FunctionCallInfo fcinfo, int argno, const char *argname,
				  const char *const *names)
{
	char	   *value = arg_required_text(fcinfo, argno, argname);

	arg_check_name(value, argname, names);
	return value;
}

/* names, quoted and joined for a message: 'a', 'b', 'c' */
char *
qiwi_quoted_names(const char *const *names)
{
	StringInfoData list;

	initStringInfo(&list);
	for (int i = 0; names[i] != NULL; i++)
		appendStringInfo(&list, "%s'%s'", i > 0 ? ", " : "", names[i]);
	return list.data;
}

/*
 * A non-empty one-dimensional text array of names (NULL: NIL); hint says
 * what NULL would mean
 */
List *
arg_optional_names(FunctionCallInfo fcinfo, int argno, const char *argname,
				   const char *const *names, const char *hint)
{
	ArrayType  *array;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *values = NIL;

	if (PG_ARGISNULL(argno))
		return NIL;
	array = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", argname)));
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname),
				 errhint("%s", hint)));
	for (int i = 0; i < n; i++)
	{
		char	   *value;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", argname)));
		value = TextDatumGetCString(elems[i]);
		if (!qiwi_name_in(value, names))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s may contain only %s", argname, qiwi_quoted_names(names)),
					 errdetail("Element %d is \"%s\".", i + 1, value)));
		values = lappend(values, value);
	}
	return values;
}

/* ---------- calls ---------- */

/* Perform an operation for a SQL call; raise what went wrong */
void
qiwi_call(QiwiOperation *op)
{
	QiwiError	error;

	if (!qiwi_exchange(op, &error))
		qiwi_raise(&error);
}

/*
 * Perform a reading call's operation (qiwi_call), and say whether what it
 * learnt of what (printf-style) may be recorded in tables
 */
bool
qiwi_read_call(QiwiOperation *op, const char *tables, const char *what,...)
{
	StringInfoData described;

	qiwi_call(op);
	initStringInfo(&described);
	for (;;)
	{
		va_list		ap;
		int			needed;

		va_start(ap, what);
		needed = appendStringInfoVA(&described, what, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&described, needed);
	}
	return ledger_can_record(described.data, tables);
}

/*
 * Refuse, before anything is sent, a create under an id that table has
 * for other money (item: "bill \"x\""; noun: what a new bill_id makes):
 * QIWI would answer with its object, or refuse, for the old amount
 */
void
qiwi_require_same_money(const char *item, const char *table, const char *noun,
						Numeric stored_amount, const char *stored_currency,
						const char *stored_status, Numeric amount, const char *currency)
{
	if (qiwi_same_money(stored_amount, stored_currency, amount, currency))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("%s is already in %s for another amount", item, table),
			 errdetail("%s has it for %s %s (%s); this call asks for %s %s. Nothing was sent to QIWI.",
					   table, qiwi_format_amount(stored_amount), stored_currency, stored_status,
					   qiwi_format_amount(amount), currency),
			 errhint("Use a new bill_id for a new %s.", noun)));
}

/* ---------- results ---------- */

/* A text column, NULL for NULL */
ResultColumn
result_text(const char *s)
{
	return (ResultColumn) {s ? CStringGetTextDatum(s) : (Datum) 0, s == NULL};
}

/* A column of a value that is never NULL */
ResultColumn
result_datum(Datum value)
{
	return (ResultColumn) {value, false};
}

/* A column of a varlena (jsonb, text[]), NULL for NULL */
ResultColumn
result_pointer(const void *p)
{
	return (ResultColumn) {PointerGetDatum(p), p == NULL};
}

/* A timestamptz column, NULL when absent */
ResultColumn
result_timestamp(TimestampTz ts, bool present)
{
	return (ResultColumn) {TimestampTzGetDatum(ts), !present};
}

/* A row of n columns */
HeapTuple
qiwi_result_tuple(TupleDesc tupdesc, const ResultColumn *columns, int n)
{
	Datum	   *values = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);

	for (int i = 0; i < n; i++)
	{
		values[i] = columns[i].value;
		nulls[i] = columns[i].isnull;
	}
	return heap_form_tuple(tupdesc, values, nulls);
}

/* Add a row of n columns to a materialized set-returning function's result (InitMaterializedSRF) */
void
qiwi_result_put(FunctionCallInfo fcinfo, const ResultColumn *columns, int n)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	tuplestore_puttuple(rsinfo->setResult, qiwi_result_tuple(rsinfo->setDesc, columns, n));
}

/* Add each item of a page, a row of n columns (a ResultColumn array), to a materialized SRF's result */
void
qiwi_result_put_page(FunctionCallInfo fcinfo, const QiwiPage *page, int n)
{
	for (int i = 0; i < page->nitems; i++)
		qiwi_result_put(fcinfo, (const ResultColumn *) page->items[i], n);
}

/*
 * Add amount to sum column (0 or 1) of currency's row in *rows, a List of
 * QiwiCurrencySums made as currencies come (both sums 0 at first): money in
 * and out per currency, over several answers
 */
void
qiwi_currency_sums_add(List **rows, const char *currency, int column, Numeric amount)
{
	QiwiCurrencySums *row = NULL;
	ListCell   *lc;

	foreach(lc, *rows)
		if (strcmp(((QiwiCurrencySums *) lfirst(lc))->currency, currency) == 0)
			row = lfirst(lc);
	if (row == NULL)
	{
		row = palloc(sizeof(QiwiCurrencySums));
		row->currency = pstrdup(currency);
		row->sums[0] = row->sums[1] = qiwi_numeric_constant("0");
		*rows = lappend(*rows, row);
	}
	row->sums[column] = numeric_add_opt_error(row->sums[column], amount, NULL);
}

/* Add each row of currency sums (qiwi_currency_sums_add) to a materialized SRF's result */
void
qiwi_result_put_sums(FunctionCallInfo fcinfo, List *rows)
{
	ListCell   *lc;

	foreach(lc, rows)
	{
		QiwiCurrencySums *row = lfirst(lc);
		ResultColumn columns[] = {result_text(row->currency), result_pointer(row->sums[0]),
		result_pointer(row->sums[1])};

		qiwi_result_put(fcinfo, columns, lengthof(columns));
	}
}

/* The result of a function returning the composite type of n columns */
Datum
qiwi_result_row(FunctionCallInfo fcinfo, const char *type, const ResultColumn *columns, int n)
{
	return HeapTupleGetDatum(qiwi_result_tuple(arg_result_desc(fcinfo, n, type), columns, n));
}

/* ---------- refunds ---------- */

/*
 * Ask QIWI for what a refund returns money of (a bill, a payment) that the
 * tables lack (why: "qiwi_bills does not have the bill"), before the refund
 * is sent; raise what went wrong, saying that the refund was not sent
 */
void
qiwi_refund_fetch(QiwiOperation *op, const char *why, const char *refund_id)
{
	QiwiError	error;

	if (qiwi_exchange(op, &error))
		return;
	error.detail = psprintf("%s %s, so QIWI was asked for it before refund \"%s\"; the refund was not sent.",
							error.detail, why, refund_id);
	qiwi_raise(&error);
}

/* Refuse a refund in another currency than that of what it returns money of (item: "bill \"x\"") */
void
qiwi_refund_check_currency(const char *item, const char *item_currency, const char *refund_id,
						   Numeric amount, const char *currency)
{
	if (strcmp(currency, item_currency) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("currency must be %s, the currency of %s", item_currency, item),
				 errdetail("Refund \"%s\" asks for %s %s. Nothing was sent to QIWI.",
						   refund_id, qiwi_format_amount(amount), currency)));
}

/*
 * Refuse a refund of more than is left of item; detail: why, for the
 * DETAIL (qiwi_refund_counted says it for money counted)
 */
void
qiwi_refund_refuse(const char *item, const char *refund_id, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_QIWI_INVALID_REQUEST),
			 errmsg("could not refund \"%s\" of %s: the amount is more than is left to refund",
					refund_id, item),
			 errdetail("%s", detail)));
	pg_unreachable();
}

/*
 * How a refund's money was counted, for qiwi_refund_refuse: whole ("The
 * bill is for"), base, the other refunds, what is left, what the call asks,
 * and what came of it
 */
char *
qiwi_refund_counted(const char *whole, Numeric base, Numeric refunded, Numeric left,
					Numeric amount, const char *outcome)
{
	return psprintf("%s %s; other refunds returned %s; %s is left, this call asks for %s. %s",
					whole, qiwi_format_amount(base), qiwi_format_amount(refunded),
					qiwi_format_amount(left), qiwi_format_amount(amount), outcome);
}
