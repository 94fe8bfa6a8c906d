/*
 * module.c
 *		Start-up of the qiwi_kassa module: its configuration parameters, the
 *		secret key they hold and the log hook that keeps it out of the logs.
 */
#include "core/core.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

/* Longest qiwi.secret_key_file accepted; QIWI's keys are a few hundred bytes */
#define SECRET_FILE_MAX_BYTES	8192

char	   *qiwi_secret_key = NULL;

/*
 * qiwi_secret_key above is the key in effect.  The value of the GUC
 * qiwi.secret_key is kept apart, so that the key read from
 * qiwi.secret_key_file never becomes a value SHOW could print.
 */
static char *secret_key_setting = NULL;
static char *secret_key_file = NULL;
static char *file_key = NULL;	/* the GUC's "extra": owned by guc.c */
static bool key_shadowed = false;

void		_PG_init(void);

static emit_log_hook_type prev_emit_log_hook = NULL;

/* Make the file's key, if any, the key in effect; else qiwi.secret_key's value */
static void
choose_secret_key(char *setting, char *from_file)
{
	bool		shadowed = from_file != NULL && setting != NULL && setting[0] != '\0';

	qiwi_secret_key = from_file != NULL ? from_file : setting;

	/* said once, by the postmaster, when it starts to be the case */
	if (shadowed && !key_shadowed && !IsUnderPostmaster)
		ereport(LOG,
				(errmsg("qiwi.secret_key is ignored: the key read from qiwi.secret_key_file \"%s\" is used",
						secret_key_file ? secret_key_file : "")));
	key_shadowed = shadowed;
}

/*
 * Refuse qiwi.secret_key per database, per role or per function: such
 * values live in catalogs (pg_db_role_setting, pg_proc) that every role can
 * read.  ALTER DATABASE/ROLE SET and CREATE FUNCTION ... SET validate with
 * PGC_S_TEST; a value stored before this check existed arrives at session
 * start with the database or role source, and is not applied.  A key too
 * short to be hidden in the logs is refused wherever it is set.
 */
static bool
check_secret_key(char **newval, void **extra, GucSource source)
{
	switch (source)
	{
		case PGC_S_TEST:
			GUC_check_errcode(ERRCODE_CANT_CHANGE_RUNTIME_PARAM);
			GUC_check_errmsg("qiwi.secret_key cannot be set per database, per role or per function");
			GUC_check_errdetail("Such a setting is stored in a catalog that every role can read.");
			GUC_check_errhint("Put the key in the file named by qiwi.secret_key_file.");
			return false;
		case PGC_S_GLOBAL:
		case PGC_S_DATABASE:
		case PGC_S_USER:
		case PGC_S_DATABASE_USER:
			GUC_check_errcode(ERRCODE_CANT_CHANGE_RUNTIME_PARAM);
			GUC_check_errmsg("qiwi.secret_key set per database or per role is ignored");
			GUC_check_errdetail("It is stored in pg_db_role_setting, which every role can read: consider that key disclosed.");
			GUC_check_errhint("A superuser removes it with ALTER DATABASE ... RESET qiwi.secret_key or ALTER ROLE ... RESET qiwi.secret_key, and puts the key in the file named by qiwi.secret_key_file.");
			return false;
		default:
			break;
	}
	if (*newval != NULL && (*newval)[0] != '\0' && strlen(*newval) < QIWI_KEY_MIN_LENGTH)
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("qiwi.secret_key must be at least %d bytes long", QIWI_KEY_MIN_LENGTH);
		GUC_check_errdetail("The logs hide a key wherever its text appears: a shorter key would hide ordinary words, and show itself by what is missing.");
		return false;
	}
	return true;
}

/* Keep the GUC's value apart from the key in effect */
static void
assign_secret_key(const char *newval, void *extra)
{
	choose_secret_key((char *) newval, file_key);
}

/*
 * The key held in a file: NULL, with the reason set for the GUC error, if
 * the file cannot be read, others may read it (the rule PostgreSQL applies to
 * ssl_key_file), or it holds no single-line key.  The result is malloc'd, as
 * guc.c frees a check hook's extra.
 */
static char *
read_secret_key_file(const char *path)
{
	char		buf[SECRET_FILE_MAX_BYTES + 1];
	size_t		len = 0;
	struct stat st;
	char	   *key = NULL;
	int			fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		GUC_check_errdetail("Could not open file \"%s\": %m.", path);
		return NULL;
	}
	if (fstat(fd, &st) != 0)
	{
		GUC_check_errdetail("Could not stat file \"%s\": %m.", path);
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode))
	{
		GUC_check_errdetail("\"%s\" is not a regular file.", path);
		close(fd);
		return NULL;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0)
	{
		GUC_check_errdetail("File \"%s\" must be owned by the database user or root.", path);
		close(fd);
		return NULL;
	}
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))))
	{
		GUC_check_errdetail("File \"%s\" has group or world access.", path);
		GUC_check_errhint("It must have permissions u=rw (0600) or less if owned by the database user, or u=rw,g=r (0640) or less if owned by root.");
		close(fd);
		return NULL;
	}
	while (len < sizeof(buf))
	{
		ssize_t		n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			GUC_check_errdetail("Could not read file \"%s\": %m.", path);
			close(fd);
			explicit_bzero(buf, sizeof(buf));
			return NULL;
		}
		if (n == 0)
			break;
		len += n;
	}
	close(fd);

	if (len > SECRET_FILE_MAX_BYTES)
		GUC_check_errdetail("File \"%s\" is larger than %d bytes; it must hold the key alone.",
							path, SECRET_FILE_MAX_BYTES);
	else
	{
		/* one trailing newline, as an editor leaves it */
		if (len > 0 && buf[len - 1] == '\n')
			len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
		buf[len] = '\0';
		if (len == 0)
			GUC_check_errdetail("File \"%s\" is empty.", path);
		else if (len < QIWI_KEY_MIN_LENGTH)
			GUC_check_errdetail("File \"%s\" holds a key shorter than %d bytes, too short to be hidden in the logs.",
								path, QIWI_KEY_MIN_LENGTH);
		else if (strlen(buf) != len || strpbrk(buf, "\r\n") != NULL)
			GUC_check_errdetail("File \"%s\" must hold the key on one line.", path);
		else if ((key = malloc(len + 1)) == NULL)
			GUC_check_errdetail("Out of memory.");
		else
			memcpy(key, buf, len + 1);
	}
	explicit_bzero(buf, sizeof(buf));
	return key;
}

/* Read the key of qiwi.secret_key_file (in every process, at start and on reload) */
static bool
check_secret_key_file(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	*extra = read_secret_key_file(*newval);
	return *extra != NULL;
}

/* Make the file's key the key in effect */
static void
assign_secret_key_file(const char *newval, void *extra)
{
	file_key = (char *) extra;
	choose_secret_key(secret_key_setting, file_key);
}

/*
 * Every secret the extension holds (the settings' key and the keys of the
 * merchants this process has read), longest first, so that a key that
 * contains another is hidden whole; how many.  *list is palloc'd.
 */
static int
known_secrets(const char ***list)
{
	const char **merchant_keys;
	int			nmerchant = merchant_secrets(&merchant_keys);
	const char **all = palloc(sizeof(char *) * (nmerchant + 2));
	int			n = 0;

	if (file_key != NULL && file_key[0] != '\0')
		all[n++] = file_key;
	if (secret_key_setting != NULL && secret_key_setting[0] != '\0' &&
		(file_key == NULL || strcmp(secret_key_setting, file_key) != 0))
		all[n++] = secret_key_setting;
	for (int i = 0; i < nmerchant; i++)
		if (merchant_keys[i][0] != '\0')
			all[n++] = merchant_keys[i];
	/* insertion sort: a handful of keys */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && strlen(all[j]) > strlen(all[j - 1]); j--)
		{
			const char *longer = all[j];

			all[j] = all[j - 1];
			all[j - 1] = longer;
		}
	*list = all;
	return n;
}

/* Whether a text contains any secret the extension holds */
static bool
mentions_secret(const char *text)
{
	const char **merchant_keys;
	int			nmerchant = merchant_secrets(&merchant_keys);

	/* called for every log line: no allocation */
	if (file_key != NULL && file_key[0] != '\0' && strstr(text, file_key) != NULL)
		return true;
	if (secret_key_setting != NULL && secret_key_setting[0] != '\0' &&
		strstr(text, secret_key_setting) != NULL)
		return true;
	for (int i = 0; i < nmerchant; i++)
		if (merchant_keys[i][0] != '\0' && strstr(text, merchant_keys[i]) != NULL)
			return true;
	return false;
}

/* A copy of text in which every secret the extension holds reads ******** */
char *
qiwi_redact_secrets(const char *text)
{
	const char **secrets;
	int			n = known_secrets(&secrets);
	char	   *result = pstrdup(text);

	for (int i = 0; i < n; i++)
	{
		StringInfoData out;
		const char *p = result;
		const char *hit;
		size_t		len = strlen(secrets[i]);

		initStringInfo(&out);
		while ((hit = strstr(p, secrets[i])) != NULL)
		{
			appendBinaryStringInfo(&out, p, hit - p);
			appendStringInfoString(&out, "********");
			p = hit + len;
		}
		appendStringInfoString(&out, p);
		pfree(result);
		result = out.data;
	}
	pfree(secrets);
	return result;
}

/*
 * Keep the secrets out of every log line of every process, the
 * postmaster's "parameter changed to" on reload included (PostgreSQL prints
 * a changed parameter's value whatever its flags).  The client receives the
 * same redacted report.
 */
static void
redact_secret_key(ErrorData *edata)
{
	if (edata->message && mentions_secret(edata->message))
		edata->message = qiwi_redact_secrets(edata->message);
	if (edata->detail && mentions_secret(edata->detail))
		edata->detail = qiwi_redact_secrets(edata->detail);
	if (edata->detail_log && mentions_secret(edata->detail_log))
		edata->detail_log = qiwi_redact_secrets(edata->detail_log);
	if (edata->hint && mentions_secret(edata->hint))
		edata->hint = qiwi_redact_secrets(edata->hint);
	if (edata->context && mentions_secret(edata->context))
		edata->context = qiwi_redact_secrets(edata->context);
	if (edata->internalquery && mentions_secret(edata->internalquery))
		edata->internalquery = qiwi_redact_secrets(edata->internalquery);
	/* a statement run by a function (EXECUTE in plpgsql) shows in these */
	if (edata->internalquery && statement_gives_key_text(edata->internalquery, false))
		edata->internalquery = pstrdup("statement hidden by qiwi_kassa: it gives a key");
	if (edata->context && context_gives_key(edata->context))
		edata->context = pstrdup("context hidden by qiwi_kassa: it quotes a statement that gives a key");

	/*
	 * A statement that gives a key (ALTER SYSTEM SET qiwi.secret_key = ...,
	 * CREATE USER MAPPING ... OPTIONS (bill_secret_key ...)) carries a value that
	 * is no held secret yet, and one that holds a known key cannot show in
	 * the STATEMENT line, which is not redacted: hide its text, whether it
	 * is logged as the message (log_statement, with its parameters as
	 * DETAIL), quoted by a syntax error, or printed after the message.
	 * log_statement's line follows a successful parse of the same text.
	 */
	if (debug_query_string &&
		(mentions_secret(debug_query_string) ||
		 statement_gives_key_text(debug_query_string,
								  edata->elevel == LOG && edata->message_id != NULL &&
								  strcmp(edata->message_id, "statement: %s") == 0)))
	{
		edata->hide_stmt = true;
		if (edata->message && strstr(edata->message, debug_query_string))
		{
			edata->message = pstrdup("statement hidden by qiwi_kassa: it gives or holds a key");
			edata->detail = NULL;
		}
		else if (edata->sqlerrcode == ERRCODE_SYNTAX_ERROR)
		{
			edata->message = pstrdup("syntax error in a statement hidden by qiwi_kassa: it may give a key");
			edata->cursorpos = 0;
		}
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Define the qiwi.* parameters; refuse to run unless preloaded */
void
_PG_init(void)
{
	/*
	 * Until the library defines qiwi.secret_key, a value set in
	 * postgresql.conf or by ALTER DATABASE/ROLE is a placeholder that any
	 * role can SHOW.  Only preloading defines it before any session starts.
	 */
	if (!process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("qiwi_kassa must be loaded via shared_preload_libraries"),
				 errdetail("Otherwise qiwi.secret_key is readable by every role until the library is loaded."),
				 errhint("Add qiwi_kassa to shared_preload_libraries in postgresql.conf and restart the server.")));

	/* each concern defines its own settings */
	DefineCustomStringVariable("qiwi.secret_key",
							   "Secret key of the default merchant, for the QIWI APIs whose key option takes it from this setting (docs/reference.md).",
							   "Readable by superusers only; sent only as the Authorization header.",
							   &secret_key_setting,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_secret_key, assign_secret_key, NULL);

	DefineCustomStringVariable("qiwi.secret_key_file",
							   "File holding qiwi.secret_key: the secret key of the default merchant.",
							   "Read at start and on reload; it must be readable by the server's user only. When set, it wins over qiwi.secret_key.",
							   &secret_key_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   check_secret_key_file, assign_secret_key_file, NULL);

	exchange_init();
	ratelimit_init();
	qiwi_apis_init();
	reconciler_init();
	guard_init();

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("qiwi");
#else
	EmitWarningsOnPlaceholders("qiwi");
#endif

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_secret_key;
	redact_init();
}
