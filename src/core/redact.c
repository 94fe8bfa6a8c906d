/*
 * redact.c
 *		Which statements give a key, decided from what they are: the raw
 *		parse tree of a statement says whether it gives a key option of a
 *		merchant a value (CREATE/ALTER USER MAPPING, SERVER, FOREIGN DATA
 *		WRAPPER, FOREIGN TABLE), or qiwi.secret_key (SET, ALTER SYSTEM,
 *		DATABASE or ROLE ... SET, a function's SET clause, set_config,
 *		UPDATE pg_settings).  The log hook hides those statements, and only
 *		those: words in comments or strings hide nothing.
 *
 * An ERROR raised inside emit_log_hook resets ErrorContext under the report
 * being emitted, so the hook never parses a text that might not parse.  A
 * text is classified when PostgreSQL has just parsed it: after its parse
 * analysis (post_parse_analyze_hook, where a parse error is caught), and at
 * the "statement: " line of log_statement, which follows a successful parse
 * of the same text in the same state.  The verdict is kept per text.  A
 * text never classified (a syntax error, an error before analysis) never
 * ran; it is judged by the names a key is given by.
 */
#include "core/core.h"

#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/* How many texts keep their verdict (a statement and those its functions run) */
#define VERDICTS_KEPT 8

/* The verdict on one text */
typedef struct Verdict
{
	char	   *text;			/* malloc'd: read by the log hook anywhere */
	size_t		len;
	bool		standard_strings;	/* standard_conforming_strings it was parsed with */
	bool		gives_key;
} Verdict;

static Verdict verdicts[VERDICTS_KEPT];
static int	next_verdict = 0;

static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;

static bool statement_gives_key(Node *stmt);

/* Whether text contains needle (lower case) in any case */
static bool
contains_caseless(const char *text, const char *needle)
{
	size_t		len = strlen(needle);

	for (; *text != '\0'; text++)
		if (pg_strncasecmp(text, needle, len) == 0)
			return true;
	return false;
}

/*
 * For text the parser cannot see into (one that does not parse, the body
 * of a DO block or a function): whether it names a way to give a key.  A
 * key is given by naming qiwi.secret_key or a key option (possibly spelt
 * with a U& escape), by set_config or by pg_settings.
 */
static bool
names_key(const char *text)
{
	const char *option;

	if (contains_caseless(text, "secret_key") || contains_caseless(text, "set_config") ||
		contains_caseless(text, "pg_settings") || contains_caseless(text, "u&"))
		return true;
	for (int n = 0; (option = merchant_key_option_name(n)) != NULL; n++)
		if (contains_caseless(text, option))
			return true;
	return false;
}

/*
 * Whether the stack is within 8 kB of max_stack_depth: the walk stops
 * there rather than raise an error.  Analysis, which needs more stack for
 * the same tree, would fail on such a statement anyway.
 */
static pg_noinline bool
stack_nearly_full(void)
{
	volatile char margin[8192];

	margin[sizeof(margin) - 1] = 0;
	return stack_is_too_deep();
}

/* Whether a setting's name is qiwi.secret_key (names are caseless) */
static bool
is_key_setting(const char *name)
{
	return name != NULL && pg_strcasecmp(name, "qiwi.secret_key") == 0;
}

/* Whether a SET gives qiwi.secret_key a value */
static bool
set_gives_key(VariableSetStmt *set)
{
	return set != NULL && set->kind == VAR_SET_VALUE && set->args != NIL &&
		is_key_setting(set->name);
}

/* Whether generic options give a key option a value (DROP gives none) */
static bool
options_give_key(List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (IsA(def, DefElem) && def->arg != NULL && merchant_is_key_option(def->defname))
			return true;
	}
	return false;
}

/*
 * Whether a function's options or a DO block's arguments set the key (SET
 * clause) or hold code that names a key (AS: code the parser does not see
 * into)
 */
static bool
routine_gives_key(List *options)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (!IsA(def, DefElem) || def->arg == NULL)
			continue;
		if (strcmp(def->defname, "set") == 0 && IsA(def->arg, VariableSetStmt) &&
			set_gives_key((VariableSetStmt *) def->arg))
			return true;
		if (strcmp(def->defname, "as") == 0)
		{
			if (IsA(def->arg, String) && names_key(strVal(def->arg)))
				return true;
			if (IsA(def->arg, List))
			{
				ListCell   *part;

				foreach(part, (List *) def->arg)
					if (IsA(lfirst(part), String) && names_key(strVal(lfirst(part))))
						return true;
			}
		}
	}
	return false;
}

/*
 * A walker over a raw DML tree: true at a call of set_config whose
 * setting is qiwi.secret_key or computed, at an UPDATE of pg_settings
 * (which calls set_config), or where the tree is too deep to walk.
 */
static bool
expression_gives_key(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (stack_nearly_full())
		return true;
	if (IsA(node, FuncCall))
	{
		FuncCall   *call = (FuncCall *) node;
		Node	   *name = call->args != NIL ? (Node *) linitial(call->args) : NULL;

		if (strcmp(strVal(llast(call->funcname)), "set_config") == 0 &&
			(name == NULL || !IsA(name, A_Const) ||
			 (!((A_Const *) name)->isnull && IsA(&((A_Const *) name)->val, String) &&
			  is_key_setting(strVal(&((A_Const *) name)->val)))))
			return true;
	}
	if (IsA(node, UpdateStmt) &&
		strcmp(((UpdateStmt *) node)->relation->relname, "pg_settings") == 0)
		return true;
	return raw_expression_tree_walker(node, expression_gives_key, context);
}

/* Whether ALTER TABLE commands (ALTER FOREIGN TABLE ... OPTIONS) give a key option a value */
static bool
alter_table_gives_key(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		if ((cmd->subtype == AT_GenericOptions || cmd->subtype == AT_AlterColumnGenericOptions) &&
			cmd->def != NULL && IsA(cmd->def, List) && options_give_key((List *) cmd->def))
			return true;
	}
	return false;
}

/* Whether any statement of a list gives a key */
static bool
any_gives_key(List *stmts)
{
	ListCell   *lc;

	foreach(lc, stmts)
		if (statement_gives_key((Node *) lfirst(lc)))
			return true;
	return false;
}

/* Whether a raw statement gives a key */
static bool
statement_gives_key(Node *stmt)
{
	if (stmt == NULL)
		return false;
	switch (nodeTag(stmt))
	{
		case T_CreateUserMappingStmt:
			return options_give_key(((CreateUserMappingStmt *) stmt)->options);
		case T_AlterUserMappingStmt:
			return options_give_key(((AlterUserMappingStmt *) stmt)->options);
		case T_CreateForeignServerStmt:
			return options_give_key(((CreateForeignServerStmt *) stmt)->options);
		case T_AlterForeignServerStmt:
			return options_give_key(((AlterForeignServerStmt *) stmt)->options);
		case T_CreateFdwStmt:
			return options_give_key(((CreateFdwStmt *) stmt)->options);
		case T_AlterFdwStmt:
			return options_give_key(((AlterFdwStmt *) stmt)->options);
		case T_CreateForeignTableStmt:
			return options_give_key(((CreateForeignTableStmt *) stmt)->options);
		case T_ImportForeignSchemaStmt:
			return options_give_key(((ImportForeignSchemaStmt *) stmt)->options);
		case T_AlterTableStmt:
			return alter_table_gives_key((AlterTableStmt *) stmt);
		case T_VariableSetStmt:
			return set_gives_key((VariableSetStmt *) stmt);
		case T_AlterSystemStmt:
			return set_gives_key(((AlterSystemStmt *) stmt)->setstmt);
		case T_AlterDatabaseSetStmt:
			return set_gives_key(((AlterDatabaseSetStmt *) stmt)->setstmt);
		case T_AlterRoleSetStmt:
			return set_gives_key(((AlterRoleSetStmt *) stmt)->setstmt);
		case T_CreateFunctionStmt:
			return routine_gives_key(((CreateFunctionStmt *) stmt)->options) ||
				statement_gives_key(((CreateFunctionStmt *) stmt)->sql_body);
		case T_AlterFunctionStmt:
			return routine_gives_key(((AlterFunctionStmt *) stmt)->actions);
		case T_DoStmt:
			return routine_gives_key(((DoStmt *) stmt)->args);
		case T_ReturnStmt:
			return expression_gives_key(((ReturnStmt *) stmt)->returnval, NULL);
		case T_CallStmt:
			return expression_gives_key((Node *) ((CallStmt *) stmt)->funccall, NULL);
		case T_ExplainStmt:
			return statement_gives_key(((ExplainStmt *) stmt)->query);
		case T_PrepareStmt:
			return statement_gives_key(((PrepareStmt *) stmt)->query);
		case T_CreateTableAsStmt:
			return statement_gives_key(((CreateTableAsStmt *) stmt)->query);
		case T_DeclareCursorStmt:
			return statement_gives_key(((DeclareCursorStmt *) stmt)->query);
		case T_CopyStmt:
			return statement_gives_key(((CopyStmt *) stmt)->query);
		case T_ViewStmt:
			return statement_gives_key(((ViewStmt *) stmt)->query);
		case T_RuleStmt:
			return any_gives_key(((RuleStmt *) stmt)->actions);
		case T_List:
			return any_gives_key((List *) stmt);
		case T_SelectStmt:
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
			return expression_gives_key(stmt, NULL);
		default:
			return false;
	}
}

/*
 * Parse text and say whether it gives a key.  The parse says nothing to
 * the client or the log (PostgreSQL's own parse said it).  An error is
 * caught when catch_errors (the text is then judged by names_key), else
 * raised.
 */
static bool
classify(const char *text, bool catch_errors)
{
	MemoryContext parse_context = AllocSetContextCreate(CurrentMemoryContext,
														"qiwi_kassa statement",
														ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(parse_context);
	int			saved_log = log_min_messages;
	int			saved_client = client_min_messages;
	bool		saved_warning = escape_string_warning;
	volatile bool gives_key = false;

	log_min_messages = ERROR;
	client_min_messages = ERROR;
	escape_string_warning = false;
	PG_TRY();
	{
		ListCell   *lc;

		foreach(lc, raw_parser(text, RAW_PARSE_DEFAULT))
			gives_key = gives_key || statement_gives_key(((RawStmt *) lfirst(lc))->stmt);
	}
	PG_CATCH();
	{
		ErrorData  *error;

		log_min_messages = saved_log;
		client_min_messages = saved_client;
		escape_string_warning = saved_warning;
		MemoryContextSwitchTo(old);
		if (!catch_errors)
			PG_RE_THROW();
		error = CopyErrorData();
		if (error->sqlerrcode == ERRCODE_OUT_OF_MEMORY || error->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		FreeErrorData(error);
		gives_key = names_key(text);
	}
	PG_END_TRY();
	log_min_messages = saved_log;
	client_min_messages = saved_client;
	escape_string_warning = saved_warning;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(parse_context);
	return gives_key;
}

/* The verdict kept on a text, or NULL */
static const Verdict *
kept_verdict(const char *text)
{
	size_t		len = strlen(text);

	for (int i = 0; i < VERDICTS_KEPT; i++)
		if (verdicts[i].text != NULL && verdicts[i].len == len &&
			verdicts[i].standard_strings == standard_conforming_strings &&
			memcmp(verdicts[i].text, text, len) == 0)
			return &verdicts[i];
	return NULL;
}

/* Keep the verdict on a text, in place of the oldest */
static void
keep_verdict(const char *text, bool gives_key)
{
	Verdict    *v = &verdicts[next_verdict];
	size_t		len = strlen(text);
	char	   *copy = malloc(len + 1);

	if (copy == NULL)
		return;
	memcpy(copy, text, len + 1);
	free(v->text);
	v->text = copy;
	v->len = len;
	v->standard_strings = standard_conforming_strings;
	v->gives_key = gives_key;
	next_verdict = (next_verdict + 1) % VERDICTS_KEPT;
}

/*
 * Whether a statement's text gives a key, for the log hook: its kept
 * verdict; else, if PostgreSQL has just parsed it in this state
 * (just_parsed), its parse; else (it never got to run) names_key.
 */
bool
statement_gives_key_text(const char *text, bool just_parsed)
{
	const Verdict *v;
	bool		gives_key;

	/* a text that names no way to give a key gives none: no parse needed */
	if (!names_key(text))
		return false;
	v = kept_verdict(text);
	if (v != NULL)
		return v->gives_key;
	if (!just_parsed)
		return true;
	gives_key = classify(text, false);
	keep_verdict(text, gives_key);
	return gives_key;
}

/*
 * Whether an error's context quotes a statement that gives a key: one
 * kept as such, or one never classified that names a key.
 */
bool
context_gives_key(const char *context)
{
	bool		quotes_classified = false;

	for (int i = 0; i < VERDICTS_KEPT; i++)
		if (verdicts[i].text != NULL && strstr(context, verdicts[i].text) != NULL)
		{
			if (verdicts[i].gives_key)
				return true;
			quotes_classified = true;
		}
	return !quotes_classified && names_key(context);
}

/*
 * Classify, before it runs, every text PostgreSQL analyses that names a way
 * to give a key (names_key); the others, nearly all, cost no second parse
 */
static void
classify_analysed(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);
	if (pstate->p_sourcetext != NULL && names_key(pstate->p_sourcetext) &&
		kept_verdict(pstate->p_sourcetext) == NULL)
		keep_verdict(pstate->p_sourcetext, classify(pstate->p_sourcetext, true));
}

/* Classify statements as they are analysed */
void
redact_init(void)
{
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = classify_analysed;
}
