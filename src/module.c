/*
 * module.c
 *		Start-up of the qiwi_kassa module: its configuration parameters.
 */
#include "qiwi_kassa.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

char	   *qiwi_api_url = NULL;
char	   *qiwi_secret_key = NULL;
char	   *qiwi_ca_file = NULL;
char	   *qiwi_public_key = NULL;
int			qiwi_timeout_ms = 10000;
int			qiwi_connect_timeout_ms = 3000;
int			qiwi_max_retries = 3;
char	   *qiwi_database = NULL;
int			qiwi_reconcile_interval_s = 10;
int			qiwi_reconcile_max_interval_s = 3600;
int			qiwi_reconcile_concurrency = 16;
int			qiwi_reconcile_batch_size = 1000;

void		_PG_init(void);

static emit_log_hook_type prev_emit_log_hook = NULL;

/* Replace every occurrence of the secret key in a log text */
static char *
redact(char *text)
{
	StringInfoData out;
	const char *p = text;
	const char *hit;
	size_t		key_len = strlen(qiwi_secret_key);

	initStringInfo(&out);
	while ((hit = strstr(p, qiwi_secret_key)) != NULL)
	{
		appendBinaryStringInfo(&out, p, hit - p);
		appendStringInfoString(&out, "********");
		p = hit + key_len;
	}
	appendStringInfoString(&out, p);
	return out.data;
}

/*
 * Keep the secret key out of every log line of every process, the
 * postmaster's "parameter changed to" on reload included (PostgreSQL prints
 * a changed parameter's value whatever its flags).
 */
static void
redact_secret_key(ErrorData *edata)
{
	if (qiwi_secret_key != NULL && qiwi_secret_key[0] != '\0')
	{
		if (edata->message && strstr(edata->message, qiwi_secret_key))
			edata->message = redact(edata->message);
		if (edata->detail && strstr(edata->detail, qiwi_secret_key))
			edata->detail = redact(edata->detail);
		if (edata->detail_log && strstr(edata->detail_log, qiwi_secret_key))
			edata->detail_log = redact(edata->detail_log);
		if (edata->context && strstr(edata->context, qiwi_secret_key))
			edata->context = redact(edata->context);
		if (edata->internalquery && strstr(edata->internalquery, qiwi_secret_key))
			edata->internalquery = redact(edata->internalquery);
		/* the statement is printed from elsewhere: hide it if it has the key */
		if (debug_query_string && strstr(debug_query_string, qiwi_secret_key))
			edata->hide_stmt = true;
	}

	/*
	 * A statement that sets the key (ALTER SYSTEM SET qiwi.secret_key = ...)
	 * carries a value that is not the key yet: hide its text, whether it is
	 * logged as the message (log_statement) or after it.
	 */
	if (debug_query_string && strstr(debug_query_string, "qiwi.secret_key"))
	{
		edata->hide_stmt = true;
		if (edata->message && strstr(edata->message, debug_query_string))
			edata->message = pstrdup("statement hidden by qiwi_kassa: it names qiwi.secret_key");
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

	/*
	 * Whoever can change the URL or the CA bundle can have the key sent to a
	 * server of their own, so those three are superuser-only to set.
	 */
	DefineCustomStringVariable("qiwi.api_url",
							   "Base URL of the QIWI API.",
							   "The Bill Payments endpoints are appended to it.",
							   &qiwi_api_url,
							   "https://api.qiwi.com",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("qiwi.secret_key",
							   "Secret key (SECRET_KEY) of the QIWI Bill Payments API.",
							   "Readable by superusers only; sent only as the Authorization header.",
							   &qiwi_secret_key,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("qiwi.ca_file",
							   "CA bundle used to verify the QIWI server's certificate.",
							   "Empty means the system's default trust store. Verification is always on.",
							   &qiwi_ca_file,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("qiwi.public_key",
							   "Public key (PUBLIC_KEY) of the QIWI payment form.",
							   "Used by qiwi_payment_form_url() when no key is passed.",
							   &qiwi_public_key,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.timeout",
							"Time limit of one QIWI request, connection included.",
							NULL,
							&qiwi_timeout_ms,
							10000, 100, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.connect_timeout",
							"Time limit for connecting to QIWI (TCP and TLS).",
							NULL,
							&qiwi_connect_timeout_ms,
							3000, 100, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.max_retries",
							"Retries of an idempotent QIWI call after a network failure, timeout, 429 or 5xx.",
							"Retries wait 100 ms, 200 ms, 400 ms ... (with jitter, at most 5 s) and stop before statement_timeout would.",
							&qiwi_max_retries,
							3, 0, 10,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("qiwi.database",
							   "Database whose qiwi_bills the reconciler keeps current.",
							   "Empty turns the reconciler off.",
							   &qiwi_database,
							   "postgres",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_interval",
							"First wait before a WAITING bill is checked again, and between rounds.",
							"Each further check of the same bill waits twice as long, up to qiwi.reconcile_max_interval.",
							&qiwi_reconcile_interval_s,
							10, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_max_interval",
							"Longest wait between two checks of a WAITING bill.",
							NULL,
							&qiwi_reconcile_max_interval_s,
							3600, 1, 86400 * 7,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_concurrency",
							"Requests the reconciler keeps in flight at once.",
							NULL,
							&qiwi_reconcile_concurrency,
							16, 1, 256,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("qiwi.reconcile_batch_size",
							"Most bills one reconciler round checks.",
							NULL,
							&qiwi_reconcile_batch_size,
							1000, 1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	notification_init();

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("qiwi");
#else
	EmitWarningsOnPlaceholders("qiwi");
#endif

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_secret_key;

	reconciler_register();
}
