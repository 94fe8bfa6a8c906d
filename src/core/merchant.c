/*
 * merchant.c
 *		Merchants: named QIWI accounts, each with its endpoints and keys.
 *
 * A merchant is a foreign server of the wrapper "qiwi" (its endpoints and
 * ids as server options) with a user mapping FOR PUBLIC (its keys), as
 * postgres_fdw keeps remote credentials: pg_user_mappings shows a key only
 * to superusers and the server's owner.  A mapping for one role is not
 * used, since PostgreSQL shows that role its own mapping's options.  The
 * merchant "default" is qiwi.* settings, so a single-shop installation
 * needs no server.  Each API defines the options it reads; this file knows
 * none of them.  Merchants are cached per backend and rebuilt when the
 * catalogs change.
 */
#include "core/core.h"

#include "access/genam.h"
#include "access/xact.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "common/hashfn.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(qiwi_fdw_validator);

static void ensure_merchants(void);

/* The options the APIs define (in TopMemoryContext), as many as they need */
static MerchantOptionDef *option_defs = NULL;
static int	noptions = 0;

/* The servers of the wrapper qiwi, as last read from the catalogs */
static MemoryContext cache_context = NULL;
static Merchant *servers = NULL;
static int	nservers = 0;
static bool cache_valid = false;
static bool callbacks_registered = false;

/* The default merchant: its values are read from the settings when asked */
static Merchant default_merchant = {.name = MERCHANT_DEFAULT, .server = InvalidOid};

/*
 * The keys for the log redaction (malloc'd): only committed ones.  A key
 * this transaction wrote waits in pending until the transaction commits.
 */
static char **secrets = NULL;
static int	nsecrets = 0;
static char **pending = NULL;
static int	npending = 0;

/* Per cached server: its mapping FOR PUBLIC is this transaction's, uncommitted */
static bool *uncommitted = NULL;

/*
 * Make an option known to the validator and to merchants (from an API's
 * _PG_init, before any merchant is read: each has a value per option)
 */
int
merchant_define_option(const MerchantOptionDef *def)
{
	if (cache_context != NULL)
		elog(ERROR, "merchant option \"%s\" defined after merchants were read", def->name);
	if (option_defs == NULL)
		option_defs = MemoryContextAlloc(TopMemoryContext, sizeof(MerchantOptionDef));
	else
		option_defs = repalloc(option_defs, sizeof(MerchantOptionDef) * (noptions + 1));
	option_defs[noptions] = *def;
	return noptions++;
}

/* Forget the cached merchants (a syscache callback) */
static void
invalidate_merchants(Datum arg, int cacheid, uint32 hashvalue)
{
	cache_valid = false;
}

/* Wipe and free a list of keys */
static void
forget_keys(char ***list, int *n)
{
	for (int i = 0; i < *n; i++)
	{
		explicit_bzero((*list)[i], strlen((*list)[i]));
		free((*list)[i]);
	}
	free(*list);
	*list = NULL;
	*n = 0;
}

/* Add a copy of a key to a list unless it is there (malloc: the log hook reads it anywhere) */
static void
add_key(char ***list, int *n, const char *value)
{
	char	  **longer;
	char	   *copy;

	for (int i = 0; i < *n; i++)
		if (strcmp((*list)[i], value) == 0)
			return;
	if ((longer = realloc(*list, sizeof(char *) * (*n + 1))) == NULL)
		return;
	*list = longer;
	if ((copy = strdup(value)) != NULL)
		(*list)[(*n)++] = copy;
}

/*
 * Make the keys of the servers just read the redaction list: those
 * committed at once, those this transaction wrote once it commits.  While
 * it has written some, the keys known before stay too (its update hides a
 * committed key that is still in effect for the others).  A key shorter
 * than QIWI_KEY_MIN_LENGTH (stored before the minimum existed) is no secret
 * to redact: it would hide ordinary words.
 */
static void
remember_secrets(void)
{
	char	  **kept = NULL;
	int			nkept = 0;
	bool		any_uncommitted = false;

	for (int s = 0; s < nservers; s++)
		any_uncommitted |= uncommitted[s];
	if (any_uncommitted)
	{
		kept = secrets;
		nkept = nsecrets;
		secrets = NULL;
		nsecrets = 0;
	}
	forget_keys(&secrets, &nsecrets);
	forget_keys(&pending, &npending);
	for (int i = 0; i < nkept; i++)
		add_key(&secrets, &nsecrets, kept[i]);
	forget_keys(&kept, &nkept);
	for (int s = 0; s < nservers; s++)
		for (int o = 0; o < noptions; o++)
		{
			const char *value = servers[s].values[o];

			if (option_defs[o].place != MERCHANT_ON_USER_MAPPING || value == NULL ||
				strlen(value) < QIWI_KEY_MIN_LENGTH)
				continue;
			if (uncommitted[s])
				add_key(&pending, &npending, value);
			else
				add_key(&secrets, &nsecrets, value);
		}
}

/*
 * At commit, the keys this transaction wrote become secrets: they are read
 * from the catalogs just before (a key given by a statement that is rolled
 * back never becomes one); at abort they are forgotten.
 */
static void
merchants_at_transaction_end(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (!cache_valid && TransactionIdIsValid(GetTopTransactionIdIfAny()))
				ensure_merchants();
			break;
		case XACT_EVENT_COMMIT:
			for (int i = 0; i < npending; i++)
				add_key(&secrets, &nsecrets, pending[i]);
			forget_keys(&pending, &npending);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			forget_keys(&pending, &npending);
			break;
		default:
			break;
	}
}

/* Follow the catalogs of merchants: their changes, and the end of transactions */
static void
watch_merchants(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterSyscacheCallback(FOREIGNDATAWRAPPEROID, invalidate_merchants, (Datum) 0);
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, invalidate_merchants, (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, invalidate_merchants, (Datum) 0);
	RegisterXactCallback(merchants_at_transaction_end, NULL);
	callbacks_registered = true;
}

/* The number of a defined option, or -1 */
static int
option_number(const char *name)
{
	for (int o = 0; o < noptions; o++)
		if (strcmp(option_defs[o].name, name) == 0)
			return o;
	return -1;
}

/* The number of the option formerly named name, or -1 */
static int
former_option_number(const char *name)
{
	for (int o = 0; o < noptions; o++)
		if (option_defs[o].former_name != NULL && strcmp(option_defs[o].former_name, name) == 0)
			return o;
	return -1;
}

/*
 * Copy the options of one place (server or mapping) into a merchant.  Until
 * ALTER EXTENSION UPDATE renames them, the catalogs of an older version hold
 * options under their former names: they are read too (their keys must be
 * hidden in the logs), the new name winning when both are there.
 */
static void
take_options(Merchant *m, List *options, MerchantOptionPlace place)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		int			o = option_number(def->defname);
		bool		former = false;

		if (o < 0)
		{
			o = former_option_number(def->defname);
			former = true;
		}
		/* the validator admitted only known options; a library downgrade may not */
		if (o < 0 || option_defs[o].place != place)
			continue;
		if (m->values[o] != NULL)
		{
			if (former)
				continue;
			explicit_bzero(m->values[o], strlen(m->values[o]));
		}
		m->values[o] = MemoryContextStrdup(cache_context, defGetString(def));
	}
}

/* Read the servers of the wrapper qiwi and their mappings FOR PUBLIC */
static void
load_merchants(void)
{
	ForeignDataWrapper *fdw;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	int			allocated = 8;

	watch_merchants();
	if (cache_context == NULL)
		cache_context = AllocSetContextCreate(CacheMemoryContext, "qiwi_kassa merchants",
											  ALLOCSET_SMALL_SIZES);
	else
	{
		/* the keys in the old cache are wiped before the memory is reused */
		for (int s = 0; s < nservers; s++)
			for (int o = 0; o < noptions; o++)
				if (servers[s].values[o] != NULL)
					explicit_bzero(servers[s].values[o], strlen(servers[s].values[o]));
		MemoryContextReset(cache_context);
	}
	servers = NULL;
	uncommitted = NULL;
	nservers = 0;
	/* valid from here: an invalidation while reading makes it read again */
	cache_valid = true;

	fdw = GetForeignDataWrapperByName("qiwi", true);
	if (fdw == NULL)
	{
		remember_secrets();
		return;
	}
	servers = MemoryContextAllocZero(cache_context, sizeof(Merchant) * allocated);
	uncommitted = MemoryContextAllocZero(cache_context, sizeof(bool) * allocated);
	rel = table_open(ForeignServerRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_foreign_server form = (Form_pg_foreign_server) GETSTRUCT(tuple);
		ForeignServer *server;
		HeapTuple	mapping;
		Merchant   *m;

		if (form->srvfdw != fdw->fdwid)
			continue;
		/* "default" names the settings' merchant; such a server is never used */
		if (strcmp(NameStr(form->srvname), MERCHANT_DEFAULT) == 0)
			continue;
		/*
		 * Only a superuser's server is a merchant: a server's owner decides
		 * where its bills are asked about, which siteId it claims and so
		 * whose notifications it verifies, and the reconciler acts on that
		 * for everyone.
		 */
		if (!superuser_arg(form->srvowner))
			continue;
		if (nservers == allocated)
		{
			allocated *= 2;
			servers = repalloc(servers, sizeof(Merchant) * allocated);
			uncommitted = repalloc(uncommitted, sizeof(bool) * allocated);
		}
		uncommitted[nservers] = false;
		m = &servers[nservers++];
		memset(m, 0, sizeof(Merchant));
		m->values = MemoryContextAllocZero(cache_context, sizeof(char *) * noptions);
		server = GetForeignServer(form->oid);
		m->name = MemoryContextStrdup(cache_context, server->servername);
		m->server = server->serverid;
		take_options(m, server->options, MERCHANT_ON_SERVER);

		mapping = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
								  ObjectIdGetDatum(server->serverid));
		if (HeapTupleIsValid(mapping))
		{
			bool		isnull;
			Datum		d = SysCacheGetAttr(USERMAPPINGUSERSERVER, mapping,
											Anum_pg_user_mapping_umoptions, &isnull);

			if (!isnull)
				take_options(m, untransformRelOptions(d), MERCHANT_ON_USER_MAPPING);
			uncommitted[nservers - 1] =
				TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(mapping->t_data));
			ReleaseSysCache(mapping);
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	remember_secrets();
}

/* The cached servers, read again if the catalogs changed */
static void
ensure_merchants(void)
{
	AcceptInvalidationMessages();
	while (!cache_valid)
		load_merchants();
}

/* A copy of a merchant in the current memory context */
static const Merchant *
merchant_copy(const Merchant *m)
{
	Merchant   *copy = palloc0(sizeof(Merchant));

	copy->name = pstrdup(m->name);
	copy->server = m->server;
	copy->values = palloc0(sizeof(char *) * noptions);
	for (int o = 0; o < noptions; o++)
		copy->values[o] = m->values[o] ? pstrdup(m->values[o]) : NULL;
	return copy;
}

/* The cached server named name, or NULL */
static const Merchant *
find_server(const char *name)
{
	for (int s = 0; s < nservers; s++)
		if (strcmp(servers[s].name, name) == 0)
			return &servers[s];
	return NULL;
}

/*
 * The merchant a SQL call names (NULL: "default"), for the current role:
 * it must exist and the role must have USAGE on its server.  The result
 * lives in the current memory context.
 */
const Merchant *
merchant_for_call(const char *name)
{
	const Merchant *m;
	AclResult	acl;

	if (name == NULL || strcmp(name, MERCHANT_DEFAULT) == 0)
		return &default_merchant;
	ensure_merchants();
	m = find_server(name);
	if (m == NULL)
	{
		ForeignServer *server = GetForeignServerByName(name, true);

		if (server != NULL && strcmp(name, MERCHANT_DEFAULT) != 0 &&
			server->fdwid == GetForeignDataWrapperByName("qiwi", false)->fdwid)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("server \"%s\" is no merchant: its owner is not a superuser", name),
					 errdetail("A merchant's server decides where its key is sent and whose notifications it verifies."),
					 errhint("A superuser takes it over with ALTER SERVER %s OWNER TO a superuser.",
							 quote_identifier(name))));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("merchant \"%s\" does not exist", name),
				 errdetail("A merchant is a server of the foreign-data wrapper qiwi; \"default\" is the qiwi.* settings."),
				 errhint("CREATE SERVER %s FOREIGN DATA WRAPPER qiwi OPTIONS (...) and CREATE USER MAPPING FOR PUBLIC SERVER %s OPTIONS (...).",
						 quote_identifier(name), quote_identifier(name))));
	}
#if PG_VERSION_NUM >= 160000
	acl = object_aclcheck(ForeignServerRelationId, m->server, GetUserId(), ACL_USAGE);
#else
	acl = pg_foreign_server_aclcheck(m->server, GetUserId(), ACL_USAGE);
#endif
	if (acl != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for merchant \"%s\"", name),
				 errhint("The owner of server %s can GRANT USAGE ON FOREIGN SERVER %s to this role.",
						 quote_identifier(name), quote_identifier(name))));
	return merchant_copy(m);
}

/*
 * The merchant of a stored item, for the reconciler and the trigger (which
 * act for the extension's owner): NULL if no such server exists any more.
 */
const Merchant *
merchant_by_name(const char *name)
{
	const Merchant *m;

	if (strcmp(name, MERCHANT_DEFAULT) == 0)
		return &default_merchant;
	ensure_merchants();
	m = find_server(name);
	return m ? merchant_copy(m) : NULL;
}

/*
 * The merchant whose option has value (a notification's siteId): NULL
 * with *problem if none or several do.  No server having it, the default
 * merchant answers when its own setting is value or unset.
 */
const Merchant *
merchant_by_option(int option, const char *value, char **problem)
{
	const Merchant *found = NULL;
	const char *setting = merchant_value(&default_merchant, option);

	ensure_merchants();
	for (int s = 0; s < nservers; s++)
	{
		if (servers[s].values[option] == NULL || strcmp(servers[s].values[option], value) != 0)
			continue;
		if (found != NULL)
		{
			*problem = psprintf("%s \"%s\" belongs to two merchants, \"%s\" and \"%s\"",
								option_defs[option].name, value, found->name, servers[s].name);
			return NULL;
		}
		found = &servers[s];
	}
	if (found != NULL)
	{
		if (setting != NULL && strcmp(setting, value) == 0)
		{
			*problem = psprintf("%s \"%s\" belongs to two merchants, \"%s\" and \"%s\"",
								option_defs[option].name, value, MERCHANT_DEFAULT, found->name);
			return NULL;
		}
		return merchant_copy(found);
	}
	if (setting == NULL || strcmp(setting, value) == 0)
		return &default_merchant;
	*problem = psprintf("%s \"%s\" belongs to no merchant (the default merchant's is \"%s\")",
						option_defs[option].name, value, setting);
	return NULL;
}

/* The value of an option for a merchant, or NULL when unset or empty */
const char *
merchant_value(const Merchant *m, int option)
{
	const char *value;

	if (m->server == InvalidOid)
		value = option_defs[option].setting ? *option_defs[option].setting : NULL;
	else
		value = m->values[option];
	return (value == NULL || value[0] == '\0') ? NULL : value;
}

/* The names of the merchants lacking one of the options in required, or (usable) having all */
static List *
merchants_by_options(const int *required, int nrequired, bool usable)
{
	List	   *names = NIL;

	ensure_merchants();
	for (int s = -1; s < nservers; s++)
	{
		const Merchant *m = s < 0 ? &default_merchant : &servers[s];
		bool		lacks = false;

		for (int r = 0; r < nrequired && !lacks; r++)
			lacks = merchant_value(m, required[r]) == NULL;
		if (lacks != usable)
			names = lappend(names, pstrdup(m->name));
	}
	return names;
}

/*
 * The names of the merchants lacking one of the options in required (the
 * reconciler leaves their items alone); in a transaction.
 */
List *
merchant_unusable(const int *required, int nrequired)
{
	return merchants_by_options(required, nrequired, false);
}

/* The names of the merchants having every option in required (a sync's); in a transaction */
List *
merchant_usable(const int *required, int nrequired)
{
	return merchants_by_options(required, nrequired, true);
}

/*
 * What the default merchant lacks of the options in required, for a
 * message ("qiwi.secret_key is not set"), or NULL if it lacks none
 */
char *
merchant_default_lacks(const int *required, int nrequired)
{
	for (int r = 0; r < nrequired; r++)
	{
		const MerchantOptionDef *def = &option_defs[required[r]];

		if (merchant_value(&default_merchant, required[r]) != NULL)
			continue;
		if (def->setting == NULL)
			return psprintf("the default merchant has no %s: only a server of the wrapper qiwi has one",
							def->name);
		return psprintf("%s is not set", def->setting_name);
	}
	return NULL;
}

/* How many merchants there are, the default one included */
int
merchant_count(void)
{
	ensure_merchants();
	return nservers + 1;
}

/* A hash of every option value of a merchant: it changes when they do */
uint32
merchant_fingerprint(const Merchant *m)
{
	uint32		hash = 0;

	for (int o = 0; o < noptions; o++)
	{
		const char *value = merchant_value(m, o);

		hash = hash_combine(hash, value ? hash_bytes((const unsigned char *) value, strlen(value)) : 0);
	}
	return hash;
}

/* The keys of the servers this process has read, for the log redaction */
int
merchant_secrets(const char ***list)
{
	*list = (const char **) secrets;
	return nsecrets;
}

/*
 * Is this a URL an API can be reached at with a key (an option's check)?
 * https, or http to this machine only, so that a key never travels in clear.
 */
bool
merchant_check_url(const char *value, char **why)
{
	if (http_url_is_valid(value) && http_url_is_secure(value))
		return true;
	*why = pstrdup("The URL must be https (or http to this machine: 127.0.0.1, ::1, localhost), so that the key never travels in clear.");
	return false;
}

/* Is this a key a header can carry (an option's check)? */
bool
merchant_check_key(const char *value, char **why)
{
	for (const char *c = value; *c != '\0'; c++)
		if ((unsigned char) *c < 0x20 || *c == 0x7f)
		{
			*why = pstrdup("The key has a control character.");
			return false;
		}
	if (value[0] != '\0' && strlen(value) <= 8192)
		return true;
	*why = pstrdup("The key must be non-empty and at most 8192 bytes.");
	return false;
}

/*
 * Is this a secret key a header can carry, long enough to be hidden in the
 * logs (a key option's check)?  The logs hide a key wherever its text
 * appears: a key of a few letters would hide them in ordinary words.
 */
bool
merchant_check_secret(const char *value, char **why)
{
	if (!merchant_check_key(value, why))
		return false;
	if (strlen(value) >= QIWI_KEY_MIN_LENGTH)
		return true;
	*why = psprintf("The key must be at least %d bytes long: a shorter one could not be hidden in the logs without hiding ordinary words too.",
					QIWI_KEY_MIN_LENGTH);
	return false;
}

/*
 * Whether name, in any case, is an option that holds a secret key, under
 * its name or its former one (the validator refuses a former name, but the
 * statement that gave it a key is logged with the error)
 */
bool
merchant_is_key_option(const char *name)
{
	for (int o = 0; o < noptions; o++)
		if (option_defs[o].place == MERCHANT_ON_USER_MAPPING &&
			(pg_strcasecmp(option_defs[o].name, name) == 0 ||
			 (option_defs[o].former_name != NULL &&
			  pg_strcasecmp(option_defs[o].former_name, name) == 0)))
			return true;
	return false;
}

/*
 * The n-th name (names and former names) of the options that hold a secret
 * key, or NULL past the last
 */
const char *
merchant_key_option_name(int n)
{
	for (int o = 0; o < noptions; o++)
	{
		if (option_defs[o].place != MERCHANT_ON_USER_MAPPING)
			continue;
		if (n-- == 0)
			return option_defs[o].name;
		if (option_defs[o].former_name != NULL && n-- == 0)
			return option_defs[o].former_name;
	}
	return NULL;
}

/* The definition of an option (a merchant_define_option number) */
const MerchantOptionDef *
merchant_option_def(int option)
{
	Assert(option >= 0 && option < noptions);
	return &option_defs[option];
}

/* The option whose default merchant's value is qiwi.secret_key's, or NULL if no API defines one */
const char *
merchant_secret_key_option(void)
{
	for (int i = 0; i < noptions; i++)
		if (option_defs[i].setting == &qiwi_secret_key)
			return option_defs[i].name;
	return NULL;
}

/* The options valid in a place, for a hint: "bill_api_url, bill_site_id" */
static char *
options_in(MerchantOptionPlace place)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int o = 0; o < noptions; o++)
		if (option_defs[o].place == place)
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", option_defs[o].name);
	return buf.data;
}

/*
 * Refuse an option under its name before 1.4, saying the new one and how to
 * rename it (never with its value: it may be a key)
 */
static void
refuse_former_name(const char *name)
{
	int			o = former_option_number(name);

	if (o < 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
			 errmsg("option \"%s\" is now \"%s\"", name, option_defs[o].name),
			 errdetail("Since qiwi_kassa 1.4 the name of each option of a merchant says its API."),
			 option_defs[o].place == MERCHANT_ON_SERVER ?
			 errhint("Write %s in CREATE SERVER; rename it on an existing server with ALTER SERVER name OPTIONS (DROP %s, ADD %s '...').",
					 option_defs[o].name, name, option_defs[o].name) :
			 errhint("Write %s in CREATE USER MAPPING; rename it on an existing mapping with ALTER USER MAPPING FOR PUBLIC SERVER name OPTIONS (DROP %s, ADD %s '...').",
					 option_defs[o].name, name, option_defs[o].name)));
}

/*
 * The wrapper qiwi's validator: only known options (not their names before
 * 1.4), each in its place (keys on user mappings, where other roles cannot
 * read them), each value valid.  No message shows a value: it may be a key.
 */
Datum
qiwi_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		int			o = option_number(def->defname);
		MerchantOptionPlace place;
		char	   *why = NULL;

		if (catalog == ForeignServerRelationId)
			place = MERCHANT_ON_SERVER;
		else if (catalog == UserMappingRelationId)
			place = MERCHANT_ON_USER_MAPPING;
		else
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 errdetail("The wrapper qiwi takes options on servers and user mappings only.")));
		if (o < 0)
			refuse_former_name(def->defname);
		if (o < 0 || option_defs[o].place != place)
		{
			bool		elsewhere = o >= 0;

			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 elsewhere ?
					 errdetail(place == MERCHANT_ON_SERVER ?
							   "\"%s\" is a key: it belongs on the user mapping FOR PUBLIC, which other roles cannot read." :
							   "\"%s\" belongs on the server.", def->defname) : 0,
					 errhint("Valid options in this context are: %s.", options_in(place))));
		}
		/* its key becomes a secret when it is committed, read from the catalog */
		if (place == MERCHANT_ON_USER_MAPPING)
			watch_merchants();
		if (option_defs[o].check != NULL && !option_defs[o].check(defGetString(def), &why))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"%s\"", def->defname),
					 errdetail("%s", why)));
	}
	PG_RETURN_VOID();
}
