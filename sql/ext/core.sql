-- qiwi_kassa, core: what every API's objects share (merchants, the
-- reconciler's state).  The Makefile builds qiwi_kassa--<default_version>.sql
-- from sql/ext/core.sql followed by one file per API (sql/ext/bill.sql, ...);
-- sql/qiwi_kassa--A--B.sql upgrade older installs to the same schema
-- (test/t/008_upgrade_and_cluster.pl compares them).
--
-- Expressions stored here (constraints, generated columns, views) use operators
-- whose argument types pg_catalog has exactly, or name pg_catalog's: CREATE
-- EXTENSION runs with the target schema in its path, where a role could have
-- planted a better-matching operator.

-- ---------- merchants ----------
-- A merchant is a server of this wrapper: its ids and endpoints are server
-- options, its keys the options of its user mapping FOR PUBLIC (which
-- pg_user_mappings shows only to superusers and the server's owner).
CREATE FUNCTION qiwi_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'qiwi_fdw_validator'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER qiwi VALIDATOR qiwi_fdw_validator;
COMMENT ON FUNCTION qiwi_fdw_validator(text[], oid) IS $$Validator of the wrapper qiwi: refuses unknown options (and the names options had before 1.4, saying the new one), keys anywhere but on a user mapping, and invalid values (without showing them)$$;
COMMENT ON FOREIGN DATA WRAPPER qiwi IS $$QIWI merchants: CREATE SERVER name FOREIGN DATA WRAPPER qiwi OPTIONS (for Bill Payments bill_site_id, bill_api_url, bill_public_key; for Payin payin_site_id, payin_api_url, payin_capture_hours; for Pull pull_prv_id, pull_api_id, pull_api_url; for Wallet wallet_number, wallet_api_url, wallet_token_issued); CREATE USER MAPPING FOR PUBLIC SERVER name OPTIONS (bill_secret_key; payin_api_key, payin_notification_key; pull_api_password, pull_notification_password; wallet_token, wallet_webhook_key). Each option's name says its API. A role uses a merchant with USAGE on its server$$;

-- ---------- the reconciler ----------

CREATE FUNCTION qiwi_reconciler_state(
	OUT running boolean,
	OUT pid integer,
	OUT database text,
	OUT started_at timestamptz,
	OUT rounds bigint,
	OUT last_round_start timestamptz,
	OUT last_round_duration interval,
	OUT last_round_checked bigint,
	OUT last_round_changed bigint,
	OUT last_round_failed bigint,
	OUT stopped_by_auth boolean,
	OUT last_error text,
	OUT last_error_at timestamptz)
AS 'MODULE_PATHNAME', 'qiwi_reconciler_state'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- The latest error of the reconciler's, kept after the rounds that clear last_error
CREATE FUNCTION qiwi_reconciler_seen_error(
	OUT last_seen_error text,
	OUT last_seen_error_at timestamptz)
AS 'MODULE_PATHNAME', 'qiwi_reconciler_seen_error'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- Every database's reconciler, cluster-wide (1.4)
CREATE FUNCTION qiwi_reconcilers(
	OUT database text,
	OUT state text,
	OUT pid integer,
	OUT waiting_since timestamptz,
	OUT started_at timestamptz,
	OUT rounds bigint,
	OUT last_round_start timestamptz,
	OUT last_round_duration interval,
	OUT last_round_checked bigint,
	OUT last_round_failed bigint,
	OUT last_error text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'qiwi_reconcilers'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
REVOKE ALL ON FUNCTION qiwi_reconcilers() FROM PUBLIC;

CREATE VIEW qiwi_reconciler_status AS
SELECT s.*, e.last_seen_error, e.last_seen_error_at,
       coalesce(r.state, 'not served') AS state, r.waiting_since
  FROM qiwi_reconciler_state() s CROSS JOIN qiwi_reconciler_seen_error() e
  LEFT JOIN qiwi_reconcilers() r ON r.database OPERATOR(pg_catalog.=) s.database;

-- Make every item the reconciler follows due (each API's: open bills, open
-- Payin invoices) and wake it when this commits
CREATE FUNCTION qiwi_reconcile_now()
RETURNS bigint
AS 'MODULE_PATHNAME', 'qiwi_reconcile_now'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION qiwi_reconcile_now() FROM PUBLIC;

-- The due watermark: qiwi_reconcile_now() raises it, and every followed
-- item scheduled before it (its scheduled_at) is due, so that making all
-- items due writes none of them
CREATE TABLE qiwi_reconcile_watermark (
	due_before timestamptz NOT NULL DEFAULT '-infinity',
	single boolean NOT NULL DEFAULT true CHECK (single),
	CONSTRAINT qiwi_reconcile_watermark_pkey PRIMARY KEY (single)
);
COMMENT ON TABLE qiwi_reconcile_watermark IS $$At most one row (none before the first qiwi_reconcile_now(), so that a reporting copy takes the primary's): the due watermark that qiwi_reconcile_now() raises; every item the reconciler follows whose scheduled_at is before it is due, whatever its next_check_at. Written by the extension only$$;
COMMENT ON COLUMN qiwi_reconcile_watermark.due_before IS $$When qiwi_reconcile_now() last made every followed item due$$;
COMMENT ON COLUMN qiwi_reconcile_watermark.single IS $$Always true: the table has one row at most$$;

COMMENT ON FUNCTION qiwi_reconciler_state() IS $$This database's reconciler's state (read it through the view qiwi_reconciler_status)$$;
COMMENT ON VIEW qiwi_reconciler_status IS $$This database's reconciler: is it running (pid, database) or waiting for its turn (state), its rounds, the last round's start, duration and items (bills, Payin invoices) checked, changed and failed, a 401 stop, and its last error; every database's: qiwi_reconcilers()$$;
COMMENT ON COLUMN qiwi_reconciler_status.running IS $$A reconciler process is running$$;
COMMENT ON COLUMN qiwi_reconciler_status.pid IS $$Its process id (see pg_stat_activity)$$;
COMMENT ON COLUMN qiwi_reconciler_status.database IS $$This database (each database that has the extension has its own reconciler)$$;
COMMENT ON COLUMN qiwi_reconciler_status.started_at IS $$When the running process started$$;
COMMENT ON COLUMN qiwi_reconciler_status.rounds IS $$Rounds completed since the server started$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_start IS $$When the last round started$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_duration IS $$How long the last round took$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_checked IS $$Items the last round asked QIWI about: bills and Payin invoices$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_changed IS $$Items (bills, Payin invoices) whose status the last round changed$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_round_failed IS $$Checks (of bills and Payin invoices) that failed in the last round$$;
COMMENT ON COLUMN qiwi_reconciler_status.stopped_by_auth IS $$QIWI answered 401 for a merchant's key: that merchant's items wait for a configuration reload or a change of its user mapping (last_error names it); other merchants go on$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_error IS $$The reconciler's error now: of the last round that checked items, or a condition that lasts (a refused key, no worker slot, no key); NULL once a round ends clean (not an item's: see qiwi_bills.last_error, qiwi_payin_invoices.last_error)$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_error_at IS $$When last_error happened$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_seen_error IS $$The reconciler's latest error, kept after clean rounds (the history of last_error)$$;
COMMENT ON COLUMN qiwi_reconciler_status.last_seen_error_at IS $$When last_seen_error happened$$;
COMMENT ON COLUMN qiwi_reconciler_status.waiting_since IS $$While waiting for a slot: since when$$;
COMMENT ON COLUMN qiwi_reconciler_status.state IS $$running, starting, waiting for a slot (more databases than qiwi.max_reconcilers: they take turns), stopped, or not served (qiwi.database filters this database out, or the launcher has not come to it yet)$$;
COMMENT ON FUNCTION qiwi_reconcilers() IS $$Every database's reconciler, from any database: one row per database where a reconciler found the extension, as the launcher knows them: its state (running, starting, waiting for a slot while qiwi.max_reconcilers run and the databases take turns, stopped), since when it waits, its process, rounds and last round, and its last error. Not PUBLIC (the duty monitor has it)$$;
COMMENT ON FUNCTION qiwi_reconciler_seen_error() IS $$This database's reconciler's latest error and its time, kept after clean rounds (read it through the view qiwi_reconciler_status)$$;
COMMENT ON FUNCTION qiwi_reconcile_now() IS $$Make every item the reconciler follows due now (WAITING and CREATING bills; CREATED Payin invoices and PAID ones with money held; Payin captures and refunds sending; Pull bills and refunds; Wallet transfers not final) by raising the due watermark, which writes none of them, and wake the reconciler when this transaction commits; returns how many items of all kinds it follows. Not PUBLIC$$;
