/*
 * merchant_key.c
 *		A key QIWI hands out over its API (a Wallet hook's key, say), kept as
 *		an option of the merchant's user mapping: written the way ALTER USER
 *		MAPPING writes it, with the same rights, and without any statement
 *		text that would hold the key.  The mapping's option check (the
 *		core's secret check) and the hiding of keys apply as to any key.
 */
#include "core/core.h"

#include "commands/defrem.h"
#include "access/xact.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/syscache.h"

/*
 * The user mapping that holds the merchant's keys for this user (its own,
 * else PUBLIC's), as ALTER USER MAPPING names it; an ERROR unless the user
 * may alter it as ALTER USER MAPPING requires (its own: USAGE on the
 * server, which merchant_for_call checked; PUBLIC's: the server's owner).
 * Call it before asking QIWI for the key, so that a refusal sends nothing.
 */
struct RoleSpec *
merchant_key_mapping(const Merchant *merchant, int option)
{
	RoleSpec   *role = makeNode(RoleSpec);
	bool		own = SearchSysCacheExists2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(GetUserId()),
											ObjectIdGetDatum(merchant->server));

	role->roletype = own ? ROLESPEC_CSTRING : ROLESPEC_PUBLIC;
	role->rolename = own ? GetUserNameFromId(GetUserId(), false) : NULL;
	role->location = -1;
	if (!own && !pg_foreign_server_ownercheck(merchant->server, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only the owner of server \"%s\" may store its %s", merchant->name,
						merchant_option_def(option)->name),
				 errdetail("The key goes into the user mapping FOR PUBLIC, as ALTER USER MAPPING would write it.")));
	return role;
}

/* Keep value as the key option of mapping (merchant_key_mapping's), added or replaced */
void
merchant_store_key(const Merchant *merchant, struct RoleSpec *mapping, int option, const char *value)
{
	const char *name = merchant_option_def(option)->name;
	UserMapping *current = GetUserMapping(GetUserId(), merchant->server);
	AlterUserMappingStmt stmt = {.type = T_AlterUserMappingStmt, .user = mapping};
	ListCell   *lc;
	bool		present = false;

	foreach(lc, current->options)
		present |= strcmp(((DefElem *) lfirst(lc))->defname, name) == 0;
	stmt.servername = GetForeignServer(merchant->server)->servername;
	stmt.options = list_make1(makeDefElemExtended(NULL, pstrdup(name), (Node *) makeString(pstrdup(value)),
												  present ? DEFELEM_SET : DEFELEM_ADD, -1));
	AlterUserMapping(&stmt);
	CommandCounterIncrement();
}
