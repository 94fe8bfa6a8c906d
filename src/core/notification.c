/*
 * notification.c
 *		The one trigger shell of every API's notifications: a row the web
 *		tier stores is checked with the key of the merchant it names,
 *		applied forward only in a subtransaction when it is QIWI's, and
 *		marked verified, applied, or with the reason it is not.  An API
 *		describes its kind of notification (NotificationKind): how to find
 *		the merchant, how to check the sender, and how to apply it; its
 *		stores refuse a duplicate or a step back.
 */
#include "core/core.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/rel.h"

/* The column numbers of a notification table (0: the kind has no such column) */
typedef struct NotificationColumns
{
	int			credential;
	int			body;
	int			site;
	int			merchant;
	int			verified;
	int			applied;
	int			error;
} NotificationColumns;

/* What a row the web tier stored holds (NULL: the column is NULL or absent) */
typedef struct StoredNotification
{
	Jsonb	   *body;
	text	   *credential;
	char	   *site;
} StoredNotification;

/* A verified notification to apply, and what applying it said */
typedef struct NotificationToApply
{
	NotificationApplier apply;
	Jsonb	   *body;
	const Merchant *merchant;
	bool		applied;
	char	   *outcome;
} NotificationToApply;

/*
 * The signer of key (len bytes), or when it is NULL of the merchant's key;
 * an ERROR if there is none
 */
SignatureKey *
notification_signer(const NotificationKind *kind, const Merchant *merchant, const char *key,
					int len)
{
	if (key == NULL)
	{
		key = merchant_value(merchant, *kind->key.option);
		len = key ? strlen(key) : 0;
	}
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s", kind->key.missing),
				 merchant->server == InvalidOid && kind->key.setting != NULL ?
				 errdetail("The %s argument is NULL or empty and %s is not set.",
						   kind->key.argument, kind->key.setting) :
				 errdetail("The %s argument is NULL or empty and merchant \"%s\" has no %s.",
						   kind->key.argument, merchant->name, kind->key.option_name)));
	return signature_key(kind->signature.hash, kind->signature.key_encoding, key, len);
}

/*
 * The signer of a SQL function: its key argument (argno), else the key of
 * its merchant argument (argno + 1; NULL: the default merchant)
 */
SignatureKey *
notification_argument_signer(FunctionCallInfo fcinfo, int argno, const NotificationKind *kind)
{
	const Merchant *merchant = merchant_for_call(PG_NARGS() > argno + 1 && !PG_ARGISNULL(argno + 1) ?
												 text_to_cstring(PG_GETARG_TEXT_PP(argno + 1)) : NULL);

	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
	{
		text	   *arg = PG_GETARG_TEXT_PP(argno);

		return notification_signer(kind, merchant, VARDATA_ANY(arg), VARSIZE_ANY_EXHDR(arg));
	}
	return notification_signer(kind, merchant, NULL, 0);
}

/*
 * Does signature (len bytes, as received) hold for notification under key,
 * with kind's signed string?  false with *problem when it does not, or when
 * the notification cannot be signed.  A hex signature's case is ignored;
 * the comparison takes the same time wherever they differ.
 */
bool
notification_signature_holds(const NotificationKind *kind, SignatureKey *key,
							 const char *signature, int len, Jsonb *notification, char **problem)
{
	StringInfo	message = signature_message_buffer();

	if (!kind->signed_string(notification, message, problem))
		return false;
	if (len != kind->signature.length)
	{
		*problem = psprintf("the signature is not %d %s", kind->signature.length,
							kind->signature.output == SIGNATURE_HEX ? "hex digits" : "base64 characters");
		return false;
	}
	if (!signature_verify(key, kind->signature.output, message->data, message->len, signature, len))
	{
		*problem = pstrdup("the signature does not match");
		return false;
	}
	return true;
}

/*
 * A NotificationVerifier for a kind whose credential is a signature of its
 * signed string under the merchant's key.  A merchant without one is
 * marked; the default merchant, whose key is a setting, is an ERROR
 * (notification_signer): without it nothing can be verified.
 */
bool
notification_verify_signature(const NotificationKind *kind, const Merchant *merchant,
							  text *credential, Jsonb *body, char **problem)
{
	if ((merchant->server != InvalidOid || kind->key.setting == NULL) &&
		merchant_value(merchant, *kind->key.option) == NULL)
	{
		*problem = psprintf("merchant \"%s\" has no %s to verify with", merchant->name,
							kind->key.option_name);
		return false;
	}
	return notification_signature_holds(kind, notification_signer(kind, merchant, NULL, 0),
										VARDATA_ANY(credential), VARSIZE_ANY_EXHDR(credential),
										body, problem);
}

/* Find a kind's columns in a trigger's table, refusing a table that lacks one */
static void
notification_columns(const NotificationKind *kind, Relation rel, NotificationColumns *col)
{
	memset(col, 0, sizeof(*col));
	if (kind->credential_column != NULL)
		col->credential = arg_trigger_column(rel, kind->credential_column, TEXTOID, kind->trigger);
	col->body = arg_trigger_column(rel, "body", JSONBOID, kind->trigger);
	if (kind->site_column != NULL)
		col->site = arg_trigger_column(rel, kind->site_column, TEXTOID, kind->trigger);
	if (kind->merchant_column)
		col->merchant = arg_trigger_column(rel, "merchant", TEXTOID, kind->trigger);
	col->verified = arg_trigger_column(rel, "verified", BOOLOID, kind->trigger);
	col->applied = arg_trigger_column(rel, "applied", BOOLOID, kind->trigger);
	col->error = arg_trigger_column(rel, "error", TEXTOID, kind->trigger);
}

/* Read a stored row's body, credential and site */
static void
read_stored(HeapTuple tuple, TupleDesc desc, const NotificationColumns *col,
			StoredNotification *stored)
{
	bool		isnull;
	Datum		d;

	memset(stored, 0, sizeof(*stored));
	d = SPI_getbinval(tuple, desc, col->body, &isnull);
	if (!isnull)
		stored->body = DatumGetJsonbP(d);
	if (col->credential != 0)
	{
		d = SPI_getbinval(tuple, desc, col->credential, &isnull);
		if (!isnull)
			stored->credential = DatumGetTextPP(d);
	}
	if (col->site != 0)
	{
		d = SPI_getbinval(tuple, desc, col->site, &isnull);
		if (!isnull)
			stored->site = TextDatumGetCString(d);
	}
}

/*
 * Is a stored notification the word of the merchant it names?  *merchant
 * is that merchant; false with *problem when no merchant is named, or the
 * check fails.
 */
static bool
verify_stored(const NotificationKind *kind, const StoredNotification *stored,
			  const Merchant **merchant, char **problem)
{
	*merchant = NULL;
	if (stored->body == NULL)
	{
		*problem = pstrdup("the notification has no body");
		return false;
	}
	if (kind->credential_column != NULL && stored->credential == NULL)
	{
		*problem = psprintf("the notification has no %s", kind->credential_column);
		return false;
	}
	*merchant = kind->merchant(stored->body, stored->site, problem);
	if (*merchant == NULL)
		return false;
	return kind->verify(kind, *merchant, stored->credential, stored->body, problem);
}

/* Run a NotificationToApply's applier (a GuardedFn) */
static bool
run_applier(void *arg, char **problem)
{
	NotificationToApply *n = (NotificationToApply *) arg;

	n->outcome = n->apply(n->body, n->merchant, &n->applied);
	return true;
}

/*
 * Apply a merchant's verified notification in a subtransaction: whatever it
 * holds (an amount a table constraint refuses, say), the trigger stores it,
 * marked with the outcome, and the INSERT goes on.  An error of the moment
 * (a cancel, a deadlock, a lock timeout) fails the INSERT instead, so that
 * QIWI sends the notification again.  *applied says whether it changed the
 * tables; the result is why not, or NULL.
 */
static char *
apply_notification(NotificationApplier apply, Jsonb *body, const Merchant *merchant,
				   bool *applied)
{
	NotificationToApply n = {apply, body, merchant, false, NULL};
	char	   *problem = NULL;

	if (!qiwi_guarded(run_applier, &n, GUARD_ALL_BUT_CANCEL, &problem))
	{
		*applied = false;		/* what it did was rolled back */
		return psprintf("verified but not applied: %s", problem);
	}
	*applied = n.applied;
	return n.outcome;
}

/*
 * The row a notification trigger stores: a verified notification applied
 * (apply_notification), and the verdict written into the row's verified,
 * applied and error columns, and the merchant's name into its merchant
 * column if it has one.  problem: why an unverified one is not.
 */
static HeapTuple
notification_verdict(Relation rel, HeapTuple tuple, const NotificationColumns *col,
					 bool verified, char *problem, NotificationApplier apply, Jsonb *body,
					 const Merchant *merchant)
{
	int			columns[4] = {col->verified, col->applied, col->error, col->merchant};
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	bool		applied = false;

	if (verified)
		problem = apply_notification(apply, body, merchant, &applied);
	values[0] = BoolGetDatum(verified);
	values[1] = BoolGetDatum(applied);
	values[2] = problem ? CStringGetTextDatum(problem) : (Datum) 0;
	nulls[2] = problem == NULL;
	values[3] = verified ? CStringGetTextDatum(merchant->name) : (Datum) 0;
	nulls[3] = !verified;
	return heap_modify_tuple_by_cols(tuple, RelationGetDescr(rel), col->merchant ? 4 : 3,
									 columns, values, nulls);
}

/*
 * The body of an API's notification trigger (BEFORE INSERT, FOR EACH ROW):
 * the row verified with the key of the merchant it names, a verified one
 * applied, and the verdict written into it.  Argument 'mark' (default)
 * stores an unverifiable notification with the reason; 'reject' makes its
 * INSERT fail.
 */
Datum
notification_trigger(FunctionCallInfo fcinfo, const NotificationKind *kind)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	bool		reject = arg_notification_trigger_rejects(fcinfo, kind->trigger);
	Relation	rel = trigdata->tg_relation;
	NotificationColumns col;
	StoredNotification stored;
	const Merchant *merchant;
	char	   *problem = NULL;
	bool		verified;

	/* the apply worker fires no trigger: this is a row someone stored here */
	guard_refuse_reporting_copy(psprintf("apply a notification (%s)", kind->trigger));
	notification_columns(kind, rel, &col);
	read_stored(trigdata->tg_trigtuple, RelationGetDescr(rel), &col, &stored);
	verified = verify_stored(kind, &stored, &merchant, &problem);
	if (!verified && reject)
		ereport(ERROR,
				(errcode(ERRCODE_QIWI_BAD_SIGNATURE),
				 errmsg("%s: %s", kind->rejected, problem),
				 errhint("%s", kind->reject_hint)));
	return PointerGetDatum(notification_verdict(rel, trigdata->tg_trigtuple, &col, verified,
												problem, kind->apply, stored.body, merchant));
}
