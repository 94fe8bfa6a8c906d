-- qiwi_kassa, duties: what each kind of role needs, granted in one call
-- (1.4).  Follows every API's file, since it names their objects.

-- Every privilege a duty grants, one row each.  The list names objects;
-- each is resolved among the extension's own members (a function by name
-- resolves to all its overloads), so a planted object of the same name in
-- another schema is never granted.  A name that resolves to nothing gives
-- a row with object NULL, which qiwi_grant() refuses.
CREATE VIEW qiwi_duties AS
SELECT d.duty, d.object_type, d.name,
       (pg_catalog.pg_identify_object(o.classid, o.objid, 0)).identity AS object,
       d.privilege, d.columns
  FROM (VALUES
	-- read: the books, tables and reports; no call to QIWI, and not the
	-- buyers' saved payment means (qiwi_payin_tokens, qiwi_payin_card_checks)
	('read', 'TABLE', 'qiwi_bills', 'SELECT', NULL::text[]),
	('read', 'TABLE', 'qiwi_refunds', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_bill_events', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_notifications', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_invoices', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_payments', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_captures', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_refunds', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_events', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_notifications', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_pull_bills', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_pull_refunds', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_pull_events', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_pull_notifications', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_payments', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_transfers', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_transfer_events', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_transfers_unrecorded', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_webhooks', 'SELECT', NULL),

	('read', 'TABLE', 'qiwi_wallet_sync', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_sync_status', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_wallet_tokens', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_reconciler_status', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_reconciler_health', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_reconcile_watermark', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_money_per_day', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_money_by_status', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_open_bills', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_bills_changed_today', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_refunds_per_bill', 'SELECT', NULL),
	('read', 'TABLE', 'qiwi_payin_holds', 'SELECT', NULL),
	-- pay: money in (bills, invoices) and QIWI's word on what pay made
	('pay', 'FUNCTION', 'qiwi_create_bill', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_create_bill_after_commit', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_bill_status', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_create_invoice', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_invoice', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_payments', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_invoice_payments', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_payment', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_card_check', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_payin_delete_token', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_pull_create_bill', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_pull_bill_status', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_history', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_transaction', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_totals', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_balances', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook_register', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook_delete', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook_test', 'EXECUTE', NULL),
	('pay', 'FUNCTION', 'qiwi_wallet_webhook_fetch_key', 'EXECUTE', NULL),
	-- refund: money given back, bills cancelled, held money captured, and
	-- QIWI's word on what refund made
	('refund', 'FUNCTION', 'qiwi_refund', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_refund_status', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_cancel_bill', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_refund', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_refund_status', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_refunds', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_capture', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_payin_capture_status', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_pull_cancel_bill', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_pull_refund', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_pull_refund_status', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_wallet_transfer', 'EXECUTE', NULL),
	('refund', 'FUNCTION', 'qiwi_wallet_transfer_after_commit', 'EXECUTE', NULL),
	-- monitor: what monitoring/postgres_exporter_queries.yaml reads, and
	-- of the tables only the columns those reports need (no buyer's
	-- details, links, comments or notification bodies)
	('monitor', 'TABLE', 'qiwi_reconciler_status', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_reconciler_health', 'SELECT', NULL),
	('monitor', 'FUNCTION', 'qiwi_reconcilers', 'EXECUTE', NULL),
	('monitor', 'TABLE', 'qiwi_reconcile_watermark', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_money_per_day', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_money_by_status', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_open_bills', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_payin_holds', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_wallet_sync_status', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_wallet_sync', 'SELECT', NULL),
	('monitor', 'TABLE', 'qiwi_bills', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'amount', 'currency', 'status', 'status_changed_at', 'created_at',
	       'expires_at', 'first_seen_at', 'next_check_at', 'failures', 'last_error', 'scheduled_at']),
	('monitor', 'TABLE', 'qiwi_refunds', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'amount', 'currency', 'created_at', 'first_seen_at']),
	('monitor', 'TABLE', 'qiwi_payin_invoices', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'amount', 'currency', 'status', 'created_at', 'expires_at',
	       'first_seen_at', 'next_check_at', 'failures', 'last_error', 'notified_at', 'scheduled_at']),
	('monitor', 'TABLE', 'qiwi_payin_payments', 'SELECT',
	 ARRAY['merchant', 'payment_id', 'bill_id', 'amount', 'currency', 'status', 'captured_amount',
	       'refunded_amount', 'status_changed_at', 'capture_deadline']),
	('monitor', 'TABLE', 'qiwi_payin_refunds', 'SELECT',
	 ARRAY['merchant', 'payment_id', 'amount', 'currency', 'status', 'reversal']),
	('monitor', 'TABLE', 'qiwi_pull_bills', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'amount', 'currency', 'status', 'status_changed_at', 'first_seen_at',
	       'next_check_at', 'failures', 'last_error', 'scheduled_at']),
	('monitor', 'TABLE', 'qiwi_pull_refunds', 'SELECT',
	 ARRAY['merchant', 'bill_id', 'refund_id', 'amount', 'currency', 'status', 'first_seen_at',
	       'next_check_at', 'failures', 'last_error', 'scheduled_at']),
	('monitor', 'TABLE', 'qiwi_wallet_payments', 'SELECT',
	 ARRAY['merchant', 'txn_id', 'type', 'date', 'status', 'amount', 'currency']),
	('monitor', 'TABLE', 'qiwi_notifications', 'SELECT', ARRAY['received_at', 'verified']),
	('monitor', 'TABLE', 'qiwi_payin_notifications', 'SELECT', ARRAY['received_at', 'verified']),
	('monitor', 'TABLE', 'qiwi_pull_notifications', 'SELECT', ARRAY['received_at', 'verified']),
	-- notify: the web tier stores QIWI's notifications; the triggers decide
	('notify', 'TABLE', 'qiwi_notifications', 'INSERT', NULL),
	('notify', 'SEQUENCE', 'qiwi_notifications_id_seq', 'USAGE', NULL),
	('notify', 'TABLE', 'qiwi_payin_notifications', 'INSERT', NULL),
	('notify', 'SEQUENCE', 'qiwi_payin_notifications_id_seq', 'USAGE', NULL),
	('notify', 'TABLE', 'qiwi_pull_notifications', 'INSERT', NULL),
	('notify', 'SEQUENCE', 'qiwi_pull_notifications_id_seq', 'USAGE', NULL),
	('notify', 'TABLE', 'qiwi_wallet_webhooks', 'INSERT', NULL),
	('notify', 'SEQUENCE', 'qiwi_wallet_webhooks_id_seq', 'USAGE', NULL)
	) d(duty, object_type, name, privilege, columns)
  LEFT JOIN LATERAL (
	SELECT m.classid, m.objid
	  FROM pg_catalog.pg_depend m
	  JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) m.refobjid
	  LEFT JOIN pg_catalog.pg_proc p
	         ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
	        AND p.oid OPERATOR(pg_catalog.=) m.objid
	  LEFT JOIN pg_catalog.pg_class c
	         ON m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
	        AND c.oid OPERATOR(pg_catalog.=) m.objid
	 WHERE e.extname OPERATOR(pg_catalog.=) 'qiwi_kassa'::pg_catalog.name
	   AND m.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
	   AND m.deptype OPERATOR(pg_catalog.=) 'e'::"char"
	   AND CASE d.object_type
	       WHEN 'FUNCTION' THEN p.proname::pg_catalog.text OPERATOR(pg_catalog.=) d.name
	       WHEN 'TABLE' THEN c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'v']::"char"[])
	                         AND c.relname::pg_catalog.text OPERATOR(pg_catalog.=) d.name
	       WHEN 'SEQUENCE' THEN c.relkind OPERATOR(pg_catalog.=) 'S'::"char"
	                            AND c.relname::pg_catalog.text OPERATOR(pg_catalog.=) d.name
	       END) o ON true;

-- Grant role what duty needs (see qiwi_duties); as the extension's owner
-- or a superuser, since it runs with the caller's rights
CREATE FUNCTION qiwi_grant(role regrole, duty text)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	duties text;
	owner oid;
	known text;
	grantee text;
	p record;
	granted integer := 0;
BEGIN
	-- the extension's own view, whatever the caller's search_path
	SELECT pg_catalog.format('%I.qiwi_duties', n.nspname), e.extowner INTO duties, owner
	  FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
	 WHERE e.extname = 'qiwi_kassa';
	IF NOT pg_catalog.pg_has_role(current_user, owner, 'USAGE') THEN
		RAISE EXCEPTION 'permission denied to grant the duty % of qiwi_kassa to %', duty, role
		      USING ERRCODE = '42501',
		            DETAIL = pg_catalog.format('Role %I is neither a superuser nor has the rights of the extension''s owner %s.',
		                                       current_user, owner::regrole),
		            HINT = 'Run qiwi_grant() as the owner of qiwi_kassa or as a superuser.';
	END IF;
	EXECUTE pg_catalog.format('SELECT pg_catalog.string_agg(DISTINCT d.duty, '', '' ORDER BY d.duty) FROM %s d', duties)
	   INTO known;
	IF duty IS NULL OR NOT duty = ANY (pg_catalog.string_to_array(known, ', ')) THEN
		RAISE EXCEPTION 'duty % is not a duty of qiwi_kassa', coalesce(pg_catalog.quote_literal(duty), 'NULL')
		      USING ERRCODE = '22023', HINT = pg_catalog.format('duty must be one of: %s.', known);
	END IF;
	SELECT r.rolname INTO grantee FROM pg_catalog.pg_roles r WHERE r.oid = role;
	IF grantee IS NULL THEN
		RAISE EXCEPTION 'role must name an existing role (it is %)', coalesce(role::text, 'NULL')
		      USING ERRCODE = '22023';
	END IF;
	FOR p IN EXECUTE pg_catalog.format('SELECT d.* FROM %s d WHERE d.duty = $1 ORDER BY d.object_type, d.name', duties)
	         USING duty LOOP
		IF p.object IS NULL THEN
			RAISE EXCEPTION 'duty % names the % %, which this installation of qiwi_kassa lacks',
			      duty, pg_catalog.lower(p.object_type), p.name
			      USING ERRCODE = '55000', HINT = 'Update the extension: ALTER EXTENSION qiwi_kassa UPDATE.';
		END IF;
		EXECUTE pg_catalog.format('GRANT %s%s ON %s %s TO %I', p.privilege,
		        (SELECT ' (' || pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') || ')'
		           FROM pg_catalog.unnest(p.columns) c),
		        p.object_type, p.object, grantee);
		granted := granted + 1;
	END LOOP;
	RETURN granted;
END
$fn$;

-- It grants as the owner: only the owner runs it (and checks so itself).
REVOKE ALL ON FUNCTION qiwi_grant(regrole, text) FROM PUBLIC;

COMMENT ON VIEW qiwi_duties IS $$What qiwi_grant(role, duty) grants, one privilege a row: read (SELECT on the books and reports, no call to QIWI), pay (EXECUTE on the calls that take money in and ask QIWI about it), refund (EXECUTE on refunds, cancellations, captures and their status calls), monitor (what monitoring/postgres_exporter_queries.yaml reads: the reports and only the columns they need), notify (INSERT into the notification tables). Not PUBLIC$$;
COMMENT ON COLUMN qiwi_duties.duty IS $$The duty: read, pay, refund, monitor or notify$$;
COMMENT ON COLUMN qiwi_duties.object_type IS $$FUNCTION, TABLE (a table or a view) or SEQUENCE$$;
COMMENT ON COLUMN qiwi_duties.name IS $$The object's name; a function's name stands for all its overloads$$;
COMMENT ON COLUMN qiwi_duties.object IS $$The extension's object, schema-qualified (a function with its argument types); NULL when this installation lacks it$$;
COMMENT ON COLUMN qiwi_duties.privilege IS $$The privilege granted: SELECT, INSERT, EXECUTE or USAGE$$;
COMMENT ON COLUMN qiwi_duties.columns IS $$The columns SELECT is granted on, NULL for the whole table or view$$;
COMMENT ON FUNCTION qiwi_grant(regrole, text) IS $$Grant the role what the duty needs, as listed in qiwi_duties: 'read', 'pay', 'refund', 'monitor' or 'notify'; returns how many privileges (a function's overloads each count). Idempotent; duties add up. Runs with the caller's rights: only the extension's owner or a superuser can grant. USAGE on a merchant's server is granted apart (GRANT USAGE ON FOREIGN SERVER). Not PUBLIC$$;
