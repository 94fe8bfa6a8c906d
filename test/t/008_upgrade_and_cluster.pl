# What needs a cluster of its own: 1.0, 1.1, 1.2 and 1.3 upgrade to 1.4 with their
# data kept and the schema of a fresh 1.4, their merchants' options renamed
# and working; the reconciler never runs a function a
# plain role planted in its path; a creation whose answer was lost is sent
# again, never CREATE_FAILED; a missing worker slot is said; a hot standby
# answers reading calls (Pull ones too) and moves no money.
use strict;
use warnings;

use JSON::PP;
use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = qiwi_node('cluster', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '1s'
});
sandbox('/sandbox/reset');
sub sql_in { my ($db, $query) = @_; return $node->safe_psql($db, $query); }

# ---------- 1.0, 1.1, 1.2 and 1.3 -> 1.4 ----------

# Everything that describes the extension's objects, one line each, sorted
my $schema_query = q{
WITH members AS (
	SELECT classid, objid FROM pg_depend
	 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qiwi_kassa')),
rels AS (SELECT objid AS oid FROM members WHERE classid = 'pg_class'::regclass)
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
	SELECT 'object ' || pg_describe_object(classid, objid, 0) FROM members
	UNION ALL
	SELECT 'column ' || a.attrelid::regclass || ' #' || row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum)
	       || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
	       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
	       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') || ' ' || a.attgenerated::text
	       || coalesce(' comment ' || col_description(a.attrelid, a.attnum), '')
	  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	 WHERE a.attrelid IN (SELECT oid FROM rels) AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
	  FROM pg_constraint WHERE conrelid IN (SELECT oid FROM rels)
	UNION ALL
	SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid IN (SELECT oid FROM rels)
	UNION ALL
	SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger
	 WHERE tgrelid IN (SELECT oid FROM rels) AND NOT tgisinternal
	UNION ALL
	SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' ' || c.relpersistence::text
	       || ' acl ' || coalesce(c.relacl::text, 'default') || coalesce(' comment ' || obj_description(c.oid, 'pg_class'), '')
	       || coalesce(' view ' || pg_get_viewdef(c.oid), '')
	  FROM pg_class c WHERE c.oid IN (SELECT oid FROM rels)
	UNION ALL
	SELECT 'function ' || p.oid::regprocedure || ' returns ' || pg_get_function_result(p.oid)
	       || ' args ' || pg_get_function_arguments(p.oid) || ' ' || p.provolatile::text || p.proparallel::text
	       || p.prosecdef || p.proisstrict || ' ' || p.prosrc || ' acl '
	       || (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(coalesce(p.proacl, acldefault('f', p.proowner))) x)
	  FROM pg_proc p WHERE p.oid IN (SELECT objid FROM members WHERE classid = 'pg_proc'::regclass)
	UNION ALL
	SELECT 'type ' || t.oid::regtype || ' ' || coalesce((SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
	                                          FROM pg_attribute WHERE attrelid = t.typrelid AND attnum > 0), '')
	  FROM pg_type t WHERE t.oid IN (SELECT objid FROM members WHERE classid = 'pg_type'::regclass)
	UNION ALL
	SELECT 'dumped with data ' || unnest(extconfig)::regclass FROM pg_extension WHERE extname = 'qiwi_kassa'
	UNION ALL
	SELECT 'extension comment ' || coalesce(obj_description(oid, 'pg_extension'), '') FROM pg_extension WHERE extname = 'qiwi_kassa'
) s(line)};

# The rows of every table, as 1.0 had them
my $data_query = q{
SELECT md5(string_agg(r, '|' ORDER BY r)) FROM (
	SELECT (bill_id, site_id, amount, currency, status, status_changed_at, created_at, expires_at, pay_url,
	        comment, customer, custom_fields, first_seen_at, checked_at, next_check_at, check_count,
	        failures, last_error)::text FROM qiwi_bills
	UNION ALL SELECT (r.bill_id, r.refund_id, r.amount, r.currency, r.status, r.created_at, r.first_seen_at,
	                  r.checked_at)::text FROM qiwi_refunds r
	UNION ALL SELECT (e.id, e.bill_id, e.old_status, e.new_status, e.source, e.changed_at)::text FROM qiwi_bill_events e
	UNION ALL SELECT (id, received_at, signature, body, verified, applied, error)::text FROM qiwi_notifications
	UNION ALL SELECT last_value::text FROM qiwi_bill_events_id_seq
	UNION ALL SELECT last_value::text FROM qiwi_notifications_id_seq) s(r)};

# The rows of the Payin tables, which 1.2 brought (1.4 added notified_at)
my $payin_data_query = q{
SELECT md5(string_agg(r, '|' ORDER BY r)) FROM (
	SELECT (to_jsonb(t) - 'notified_at' - 'scheduled_at')::text FROM qiwi_payin_invoices t
	UNION ALL SELECT t::text FROM qiwi_payin_payments t
	UNION ALL SELECT (to_jsonb(t) - '{next_check_at,check_count,failures,last_error,capture_key,scheduled_at}'::text[])::text
	            FROM qiwi_payin_captures t
	UNION ALL SELECT (to_jsonb(t) - '{next_check_at,check_count,failures,last_error,refund_key,scheduled_at}'::text[])::text
	            FROM qiwi_payin_refunds t
	UNION ALL SELECT t::text FROM qiwi_payin_events t
	UNION ALL SELECT (t.merchant, t.account, t.token, t.card, t.expires_at, t.bound_at, t.first_seen_at)::text
	            FROM qiwi_payin_tokens t
	UNION ALL SELECT (id, received_at, site_id, signature, body, merchant, verified, applied, error)::text
	            FROM qiwi_payin_notifications
	UNION ALL SELECT last_value::text FROM qiwi_payin_events_id_seq
	UNION ALL SELECT last_value::text FROM qiwi_payin_notifications_id_seq) s(r)};

# The Payin site of the merchants made under 1.2 and 1.3
sandbox('/sandbox/payin/sites', '{"siteId": "up-site", "apiKey": "up-payin-key"}');
# A mapping's or server's options, sorted: "name=value,..."
sub options_of
{
	my ($db, $catalog_query) = @_;
	return sql_in($db, qq{SELECT array_to_string(array(SELECT o FROM unnest(($catalog_query)) o ORDER BY o), ',')});
}

sql_in('postgres', 'CREATE DATABASE fresh');
sql_in('fresh', 'CREATE EXTENSION qiwi_kassa');
my $schema_fresh = sql_in('fresh', $schema_query);
ok(length($schema_fresh) > 5000, 'the schema description covers the objects');
my ($ok, $out, $err) = (undef, '', '');
for my $from ('1.0', '1.1', '1.2', '1.3')
{
	# 1.2 gave every function that talks to QIWI a merchant argument
	my ($status_fn, $verify_fn) = $from ge '1.2'
	  ? ('qiwi_bill_status(text, text)', 'qiwi_verify_signature(text, jsonb, text, text)')
	  : ('qiwi_bill_status(text)', 'qiwi_verify_signature(text, jsonb, text)');
	my $db = 'old' . ($from =~ s/\.//r);
	sql_in('postgres', "CREATE DATABASE $db");
	sql_in($db, qq{CREATE EXTENSION qiwi_kassa VERSION '$from'});
	# CREATE EXTENSION took its comment from today's control file; the
	# control files of 1.0 to 1.3 gave this one
	sql_in($db, q{COMMENT ON EXTENSION qiwi_kassa IS 'QIWI Bill Payments (Kassa) API in SQL: bills, refunds, statuses'});
	# a shop's role with EXECUTE on a function that moves money keeps it
	sql_in($db, q{DO $$ BEGIN CREATE ROLE regress_shop_app; EXCEPTION WHEN duplicate_object THEN NULL; END $$});
	sql_in($db, qq{GRANT EXECUTE ON FUNCTION $status_fn TO regress_shop_app WITH GRANT OPTION});
	# and a function public by default that the shop closed
	sql_in($db, qq{REVOKE EXECUTE ON FUNCTION $verify_fn FROM PUBLIC});
	# 1.3 gave qiwi_payin_create_invoice check_card: a grant on 1.2's signature is kept
	sql_in($db, q{GRANT EXECUTE ON FUNCTION qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, text) TO regress_shop_app WITH GRANT OPTION})
	  if $from eq '1.2';
	# 1.4 renamed qiwi_payin_payments(): a grant on the old name is kept on the new one
	sql_in($db, q{GRANT EXECUTE ON FUNCTION qiwi_payin_payments(text, text) TO regress_shop_app WITH GRANT OPTION})
	  if $from ge '1.2';
	# What the old version wrote, in every table: bills in every status,
	# refunds, events, notifications (this library refuses to write through
	# an old version's objects)
	sql_in($db, q{
INSERT INTO qiwi_bills (bill_id, site_id, amount, currency, status, status_changed_at, created_at,
                        expires_at, pay_url, comment, customer, custom_fields, checked_at, check_count,
                        failures, last_error)
SELECT 'up-' || s, '270305', 10 + i, 'RUB', s, now(), now(), now() + interval '1 day',
       'https://oplata.qiwi.com/form/?invoice_uid=' || i, 'comment ' || i, '{"email": "a@b.c"}',
       '{"cf1": "x"}', now(), i, i % 2, CASE WHEN s = 'CREATE_FAILED' THEN 'refused' END
  FROM unnest(ARRAY['WAITING', 'PAID', 'REJECTED', 'EXPIRED', 'CREATING', 'CREATE_FAILED']) WITH ORDINALITY u(s, i);
INSERT INTO qiwi_refunds (bill_id, refund_id, amount, currency, status, created_at, checked_at)
VALUES ('up-PAID', 'r1', 1, 'RUB', 'PARTIAL', now(), now()), ('up-PAID', 'r2', 11, 'RUB', 'FULL', now(), now());
INSERT INTO qiwi_bill_events (bill_id, old_status, new_status, source)
SELECT bill_id, NULL, status, 'call' FROM qiwi_bills;
INSERT INTO qiwi_notifications (signature, body)
SELECT qiwi_sign_notification(n), n FROM (SELECT jsonb_build_object('bill', jsonb_build_object(
	'siteId', '270305', 'billId', 'up-n', 'amount', jsonb_build_object('value', '5.00', 'currency', 'RUB'),
	'status', jsonb_build_object('value', 'PAID')), 'version', '1') AS n) s;
});
	# 1.2's Payin tables: an invoice paid in two steps, captured and partly
	# refunded, a token, an event and a stored notification
	sql_in($db, q{
INSERT INTO qiwi_payin_invoices (merchant, bill_id, invoice_uid, site_id, amount, currency, status, capture,
                                 flags, pay_url, created_at, expires_at, status_changed_at, checked_at)
VALUES ('default', 'up-p1', 'uid-1', 'sa3khn-00', 9.50, 'RUB', 'PAID', 'manual', '{}',
        'https://oplata.qiwi.com/form?invoiceUid=uid-1', now(), now() + interval '1 day', now(), now());
INSERT INTO qiwi_payin_payments (merchant, payment_id, bill_id, status, amount, currency, captured_amount,
                                 refunded_amount, method, masked_pan, created_at, status_changed_at,
                                 capture_deadline, checked_at)
VALUES ('default', 'pay-1', 'up-p1', 'COMPLETED', 9.50, 'RUB', 9.50, 1.00, 'CARD', '424242******4242',
        now(), now(), now() + interval '72 hours', now());
INSERT INTO qiwi_payin_captures (merchant, payment_id, capture_id, amount, currency, status, created_at, checked_at)
VALUES ('default', 'pay-1', 'cap-1', 9.50, 'RUB', 'COMPLETED', now(), now());
INSERT INTO qiwi_payin_refunds (merchant, payment_id, refund_id, amount, currency, status, reversal, created_at, checked_at)
VALUES ('default', 'pay-1', 'ref-1', 1.00, 'RUB', 'COMPLETED', false, now(), now());
INSERT INTO qiwi_payin_events (merchant, object, object_id, old_status, new_status, source)
VALUES ('default', 'payment', 'pay-1', NULL, 'COMPLETED', 'call');
INSERT INTO qiwi_payin_tokens (merchant, account, token, card, expires_at, bound_at)
VALUES ('default', 'buyer-1', 'tok-1', '424242******4242', now() + interval '1 year', now());
INSERT INTO qiwi_payin_notifications (site_id, signature, body)
VALUES ('sa3khn-00', 'ab', '{"type": "PAYMENT", "payment": {"paymentId": "pay-x"}, "version": "1"}');
}) if $from ge '1.2';
	# A merchant of both APIs with the options' names before 1.4, on its
	# server and its mappings, as the 1.2 and 1.3 libraries wrote them (this
	# library's validator refuses those names)
	sql_in($db, qq{
ALTER FOREIGN DATA WRAPPER qiwi NO VALIDATOR;
CREATE SERVER up_shop FOREIGN DATA WRAPPER qiwi
	OPTIONS (api_url '$sandbox_url', site_id '270305', public_key 'pk-up', payin_site_id 'up-site',
	         payin_api_url '$sandbox_url', capture_hours '48');
CREATE USER MAPPING FOR PUBLIC SERVER up_shop
	OPTIONS (secret_key '$sandbox_secret', payin_api_key 'up-payin-key', payin_notification_key 'up-notification-key');
CREATE USER MAPPING FOR regress_shop_app SERVER up_shop OPTIONS (secret_key 'role-mapping-key');
ALTER FOREIGN DATA WRAPPER qiwi VALIDATOR qiwi_fdw_validator;
}) if $from ge '1.2';
	if ($from eq '1.3')
	{
		# a key 1.3 took that 1.4 refuses (shorter than 8 bytes) stops the
		# upgrade, which says where and how to rename it, and shows no key
		sql_in($db, q{
ALTER FOREIGN DATA WRAPPER qiwi NO VALIDATOR;
CREATE SERVER up_short FOREIGN DATA WRAPPER qiwi OPTIONS (site_id 'up-short');
CREATE USER MAPPING FOR PUBLIC SERVER up_short OPTIONS (secret_key 'shrt5');
CREATE SERVER up_old FOREIGN DATA WRAPPER qiwi OPTIONS (site_id 'up-old');
CREATE USER MAPPING FOR PUBLIC SERVER up_old OPTIONS (secret_key 'old-name-only-key');
ALTER FOREIGN DATA WRAPPER qiwi VALIDATOR qiwi_fdw_validator;
});
		$node->psql($db, 'ALTER EXTENSION qiwi_kassa UPDATE', stderr => \$err);
		like($err, qr/ERROR:  could not rename the options of the user mapping for PUBLIC of server up_short: invalid value for option "bill_secret_key"\nDETAIL:  The key must be at least 8 bytes long.*\nHINT:  .*ALTER USER MAPPING FOR PUBLIC SERVER up_short OPTIONS \(DROP secret_key, ADD bill_secret_key '\.\.\.'\); then run ALTER EXTENSION qiwi_kassa UPDATE again\./,
			"$from: an old key the validator refuses stops the upgrade, naming the mapping and how to rename it");
		unlike($err, qr/shrt5|\Q$sandbox_secret\E|up-payin-key|role-mapping-key|old-name-only-key/, "$from: and the error shows no key");
		is(sql_in($db, q{SELECT extversion FROM pg_extension WHERE extname = 'qiwi_kassa'}), '1.3', "$from: nothing was upgraded");
		# the DBA renames it; the merchants read again at its commit keep
		# their keys under the old names hidden in the logs
		$node->psql($db, q{
ALTER USER MAPPING FOR PUBLIC SERVER up_short OPTIONS (DROP secret_key, ADD bill_secret_key 'long-enough-key');
DO $$BEGIN RAISE WARNING 'echo of %', 'old-name-only-key'; END$$;
}, stderr => \$err);
		like($err, qr/WARNING:  echo of \*{8}$/m, "$from: before the update, a key under its name before 1.4 is hidden all the same");
		unlike(slurp_file($node->logfile), qr/old-name-only-key/, "$from: in the log too");
	}
	my $data_before = sql_in($db, $data_query);
	my $payin_before = $from ge '1.2' ? sql_in($db, $payin_data_query) : undef;
	$node->psql($db, q{SELECT qiwi_bill_status('up-WAITING')}, stderr => \$err);
	like($err, qr/SQL objects of qiwi_kassa are version \Q$from\E, but its library is version 1\.4.*\n.*ALTER EXTENSION qiwi_kassa UPDATE/,
		"$from: before the update, a call says to run ALTER EXTENSION ... UPDATE");

	sql_in($db, 'ALTER EXTENSION qiwi_kassa UPDATE');
	is(sql_in($db, q{SELECT extversion FROM pg_extension WHERE extname = 'qiwi_kassa'}), '1.4', "$from: the upgrade reaches 1.4");
	is(sql_in($db, $data_query), $data_before, "$from: every row of every table survives the upgrade");
	is(sql_in($db, $payin_data_query), $payin_before, "$from: every row of the Payin tables survives the upgrade")
	  if $from ge '1.2';
	is(sql_in($db, q{SELECT count(*) FROM qiwi_bills WHERE qiwi_amount IS NULL AND qiwi_status IS NULL AND merchant = 'default' AND scheduled_at IS NULL}), '6',
		"$from: the new columns are empty for old bills, which are the default merchant's");
	is(sql_in($db, q{SELECT has_function_privilege('regress_shop_app', 'qiwi_bill_status(text, text)', 'EXECUTE WITH GRANT OPTION')}), 't',
		"$from: a role granted a function (with grant option) keeps it on its new signature");
	is(sql_in($db, q{SELECT has_function_privilege('regress_shop_app', 'qiwi_verify_signature(text, jsonb, text, text)', 'EXECUTE')}), 'f',
		"$from: a function the shop closed to PUBLIC stays closed");
	if ($from eq '1.2')
	{
		my $create_fn = 'qiwi_payin_create_invoice(text, numeric, text, timestamptz, text, text, text, text, text, jsonb, text[], text, boolean, boolean, text)';
		is(sql_in($db, qq{SELECT has_function_privilege('regress_shop_app', '$create_fn', 'EXECUTE WITH GRANT OPTION')}), 't',
			"$from: a grant (with grant option) on qiwi_payin_create_invoice is kept on its check_card signature");
		is(sql_in($db, qq{SELECT has_function_privilege('public', '$create_fn', 'EXECUTE')}), 'f',
			"$from: qiwi_payin_create_invoice stays closed to PUBLIC");
		sql_in($db, qq{REVOKE EXECUTE ON FUNCTION $create_fn FROM regress_shop_app CASCADE});
	}
	if ($from ge '1.2')
	{
		is(sql_in($db, q{SELECT has_function_privilege('regress_shop_app', 'qiwi_payin_invoice_payments(text, text)', 'EXECUTE WITH GRANT OPTION')
		                    AND NOT has_function_privilege('public', 'qiwi_payin_invoice_payments(text, text)', 'EXECUTE')}), 't',
			"$from: a grant on qiwi_payin_payments() is kept on its new name, qiwi_payin_invoice_payments(), which stays closed to PUBLIC");
		sql_in($db, q{REVOKE EXECUTE ON FUNCTION qiwi_payin_payments(text, text), qiwi_payin_invoice_payments(text, text) FROM regress_shop_app CASCADE});

		# the merchant's options have their new names and the same values, and it works
		is(options_of($db, q{SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'up_shop'}),
			"bill_api_url=$sandbox_url,bill_public_key=pk-up,bill_site_id=270305,payin_api_url=$sandbox_url,payin_capture_hours=48,payin_site_id=up-site",
			"$from: the upgrade renames a merchant's server options, values unchanged");
		is(options_of($db, q{SELECT umoptions FROM pg_user_mapping WHERE umuser = 0 AND umserver = (SELECT oid FROM pg_foreign_server WHERE srvname = 'up_shop')}),
			"bill_secret_key=$sandbox_secret,payin_api_key=up-payin-key,payin_notification_key=up-notification-key",
			"$from: and those of its user mapping FOR PUBLIC");
		is(options_of($db, q{SELECT umoptions FROM pg_user_mapping WHERE umuser = 'regress_shop_app'::regrole AND umserver = (SELECT oid FROM pg_foreign_server WHERE srvname = 'up_shop')}),
			'bill_secret_key=role-mapping-key', "$from: and of a mapping for one role");
		is(sql_in($db, qq{SELECT status FROM qiwi_create_bill('up-m-$db', 7, expires_at => now() + interval '1 day', merchant => 'up_shop')}),
			'WAITING', "$from: a Bill Payments call with the merchant works: its URL and key were kept");
		is(sql_in($db, qq{SELECT status FROM qiwi_payin_create_invoice('up-p-$db', 5.00, merchant => 'up_shop')}),
			'CREATED', "$from: so does a Payin call");
		like(sql_in($db, q{SELECT qiwi_payment_form_url('up-f', 1, merchant => 'up_shop')}), qr/publicKey=pk-up/,
			"$from: and its public key makes payment-form links");
		is(sql_in($db, q{SELECT count(*) FROM pg_foreign_server WHERE srvname = 'up_short'
			AND srvoptions = '{bill_site_id=up-short}' AND EXISTS (SELECT FROM pg_user_mapping WHERE umserver = (SELECT oid FROM pg_foreign_server WHERE srvname = 'up_short')
			AND umoptions = '{bill_secret_key=long-enough-key}')}), '1',
			"$from: the server whose mapping the DBA renamed is renamed too") if $from eq '1.3';
		sql_in($db, q{DROP USER MAPPING FOR regress_shop_app SERVER up_shop});
	}
	sql_in($db, q{REVOKE EXECUTE ON FUNCTION qiwi_bill_status(text, text) FROM regress_shop_app CASCADE});
	sql_in($db, q{GRANT EXECUTE ON FUNCTION qiwi_verify_signature(text, jsonb, text, text) TO PUBLIC});
	is(sql_in($db, $schema_query), $schema_fresh, "$from: the upgraded schema equals a fresh 1.4 install");
}
sql_in('old11', q{SELECT qiwi_create_bill('up-new', 3, expires_at => now() + interval '1 day')});
is(sql_in('old11', q{SELECT status FROM qiwi_bills WHERE bill_id = 'up-new'}), 'WAITING', 'the upgraded install works');
$node->psql('old10', q{INSERT INTO qiwi_bills (bill_id, amount, currency, status, checked_at) VALUES ('x', 1, 'RUB', 'MISMATCH', now())},
	stderr => \$err);
is($err, '', 'the upgraded table takes MISMATCH');

# ---------- operators planted before CREATE EXTENSION ----------

# CREATE EXTENSION runs with the target schema in its path: an operator
# planted there with a better match (numeric > integer) than pg_catalog's
# would be bound into the stored expressions, and run as the owner
sql_in('postgres', q{CREATE ROLE regress_planter; GRANT CREATE ON SCHEMA public TO regress_planter});
my $plant = q{
SET ROLE regress_planter;
CREATE FUNCTION public.planted_gt(numeric, integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF current_user <> 'regress_planter' THEN EXECUTE 'ALTER ROLE regress_planter SUPERUSER'; END IF;
	RETURN $1 OPERATOR(pg_catalog.>) $2::numeric;
END $$;
CREATE OPERATOR public.> (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.planted_gt);
RESET ROLE;
};
my $bound = q{SELECT count(*) FROM pg_depend
	WHERE refclassid = 'pg_operator'::regclass
	  AND refobjid IN (SELECT oid FROM pg_operator WHERE oprnamespace = 'public'::regnamespace)};
for my $case ([ 'planted_fresh', 'CREATE EXTENSION qiwi_kassa' ],
	[ 'planted_upgraded', q{CREATE EXTENSION qiwi_kassa VERSION '1.0'; ALTER EXTENSION qiwi_kassa UPDATE} ])
{
	my ($db, $install) = @$case;
	sql_in('postgres', "CREATE DATABASE $db");
	sql_in($db, q{GRANT CREATE ON SCHEMA public TO regress_planter;} . $plant);
	sql_in($db, $install);
	is(sql_in($db, $bound), '0', "$db: no stored expression of the extension uses the planted operator");
	sql_in($db, q{SELECT qiwi_create_bill('pl-' || current_database(), 5, expires_at => now() + interval '1 day');
		SELECT * FROM qiwi_money_per_day});
	is(sql_in('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_planter'}), 'f',
		"$db: writing a bill and reading a report as a superuser run none of it");
}
sql_in('postgres', q{DROP DATABASE planted_fresh; DROP DATABASE planted_upgraded;});
sql_in('postgres', q{REVOKE CREATE ON SCHEMA public FROM regress_planter; DROP ROLE regress_planter});

# ---------- the reconciler and a planted search_path ----------

sql_in('postgres', 'CREATE EXTENSION qiwi_kassa');
$node->poll_query_until('postgres', q{SELECT running FROM qiwi_reconciler_status}) or die 'no reconciler';
sql_in('postgres', q{SELECT qiwi_create_bill('sp-' || i, 10, expires_at => now() + interval '1 day') FROM generate_series(1, 3) i});
sql_in('postgres', q{SELECT qiwi_create_bill_after_commit('sp-later', 10, expires_at => now() + interval '1 day')});
sandbox('/sandbox/bills/sp-1/pay');
# a role with CREATE on public, and a database whose search_path puts public first
sql_in('postgres', q{
CREATE ROLE regress_mallory;
GRANT CREATE ON SCHEMA public TO regress_mallory;
ALTER DATABASE postgres SET search_path = public, pg_catalog;
SET ROLE regress_mallory;
CREATE TABLE public.hits (fn text, run_by name);
GRANT INSERT ON public.hits TO PUBLIC;
CREATE FUNCTION public.trap(fn text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.hits VALUES (fn, current_user);
	IF current_user <> 'regress_mallory' THEN EXECUTE 'ALTER ROLE regress_mallory SUPERUSER'; END IF;
END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
$$BEGIN PERFORM public.trap('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END$$;
CREATE FUNCTION public.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN PERFORM public.trap('='); RETURN pg_catalog.texteq($1, $2); END$$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_eq);
});
# the reconciler reads the database's settings when it starts
my $old_pid = sql_in('postgres', q{SET search_path = pg_catalog, public;
	SELECT pid FROM qiwi_reconciler_status; SELECT pg_terminate_backend(pid) FROM qiwi_reconciler_status});
($old_pid) = split /\n/, $old_pid;
# (polls name no text or timestamp operator: the planted ones would run)
ok($node->poll_query_until('postgres', qq{SELECT running AND pid <> $old_pid FROM qiwi_reconciler_status}),
	'a new reconciler starts with the planted path');
my $rounds = sql_in('postgres', q{SET search_path = pg_catalog, public; SELECT rounds FROM qiwi_reconciler_status});
sql_in('postgres', q{SET search_path = pg_catalog, public; SELECT qiwi_reconcile_now()});
ok($node->poll_query_until('postgres', qq{SELECT rounds > $rounds + 1 FROM qiwi_reconciler_status}),
	'the reconciler runs rounds');
is(sql_in('postgres', q{SET search_path = pg_catalog, public;
	SELECT string_agg(bill_id || ':' || status, ',' ORDER BY bill_id) FROM qiwi_bills WHERE bill_id LIKE 'sp-%'}),
	'sp-1:PAID,sp-2:WAITING,sp-3:WAITING,sp-later:WAITING', 'it checked, recorded and created bills');
is(sql_in('postgres', q{SET search_path = pg_catalog, public; SELECT count(*) FROM public.hits}), '0',
	'no planted function or operator ran in the reconciler');
is(sql_in('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_mallory'}), 'f', 'the planting role is no superuser');
sql_in('postgres', q{ALTER DATABASE postgres RESET search_path; DROP OWNED BY regress_mallory; DROP ROLE regress_mallory});

# ---------- a creation applied at QIWI whose answer was garbage ----------

sandbox('/sandbox/faults', encode_json({ bill => 'cf-1', applied => JSON::PP::true, status => 200, body => '<html>bad gateway</html>' }));
$rounds = sql_in('postgres', q{SELECT rounds FROM qiwi_reconciler_status});
sql_in('postgres', q{SELECT qiwi_create_bill_after_commit('cf-1', 25, expires_at => now() + interval '1 day')});
ok($node->poll_query_until('postgres', q{SELECT failures > 0 FROM qiwi_bills WHERE bill_id = 'cf-1'}),
	'the garbled answer to the creation is a failed check');
is(sql_in('postgres', q{SELECT status FROM qiwi_bills WHERE bill_id = 'cf-1'}), 'CREATING', 'not CREATE_FAILED: it will be sent again');
sandbox('/sandbox/bills/cf-1/pay');
sql_in('postgres', q{SELECT qiwi_reconcile_now()});
ok($node->poll_query_until('postgres', q{SELECT status = 'PAID' FROM qiwi_bills WHERE bill_id = 'cf-1'}),
	'the buyer pays, and the bill becomes PAID');
# the reconciler may send the creation again before the buyer pays (WAITING first) or after
like(sql_in('postgres', q{SELECT string_agg(coalesce(old_status, '-') || '>' || new_status, ',' ORDER BY id)
	FROM qiwi_bill_events WHERE bill_id = 'cf-1'}), qr/^->CREATING,CREATING>(WAITING,WAITING>)?PAID$/, 'with its events');

# ---------- DROP DATABASE with the default interval ----------

# DROP DATABASE waits only 5 s for other sessions; the reconciler sleeps
# qiwi.reconcile_interval (10 s by default) between rounds
sql_in('postgres', q{ALTER SYSTEM SET qiwi.reconcile_interval = '60s'});
sql_in('postgres', q{ALTER SYSTEM SET qiwi.database = 'dropme'});
sql_in('postgres', 'CREATE DATABASE dropme');
sql_in('dropme', 'CREATE EXTENSION qiwi_kassa');
sql_in('postgres', 'SELECT pg_reload_conf()');
ok($node->poll_query_until('postgres', q{SELECT true FROM pg_stat_activity
	WHERE backend_type = 'qiwi_kassa reconciler' AND datname = 'dropme'}), 'the reconciler serves the database');
($ok, $out, $err) = (undef, '', '');
$node->psql('postgres', 'DROP DATABASE dropme', stderr => \$err);
is($err, '', 'DROP DATABASE is not blocked by the reconciler between its rounds');
sql_in('postgres', q{ALTER SYSTEM RESET qiwi.database});
sql_in('postgres', q{ALTER SYSTEM RESET qiwi.reconcile_interval});
sql_in('postgres', 'SELECT pg_reload_conf()');
# its reconciler checks the open bills above every second: stopped, it sends
# nothing while the hot standby below is asked to send nothing
$node->stop;

# ---------- no free worker slot ----------

my $tight = qiwi_node('tight', q{
max_worker_processes = 1
max_logical_replication_workers = 0
qiwi.database = 'postgres'
});
$tight->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');
ok($tight->poll_query_until('postgres', q{SELECT last_error LIKE '%no background worker slot is free%' FROM qiwi_reconciler_status}),
	'qiwi_reconciler_status says no worker slot is free');
is($tight->safe_psql('postgres', q{SELECT running FROM qiwi_reconciler_status}), 'f', 'and that it does not run');
like(slurp_file($tight->logfile), qr/qiwi_kassa reconciler cannot start: no background worker slot is free/,
	'the log says so');
$tight->stop;

# ---------- a hot standby ----------

# the first cluster's reconciler would go on asking QIWI about its bills:
# stopped, so that the sandbox's count below is the standby's alone
$node->stop;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'qiwi_kassa'
qiwi.api_url = '$sandbox_url'
qiwi.secret_key = '$sandbox_secret'
qiwi.database = ''
});
$primary->start;
$primary->safe_psql('postgres', q{CREATE EXTENSION qiwi_kassa;
	SELECT qiwi_create_bill('hs-1', 40, expires_at => now() + interval '1 day')});
sandbox('/sandbox/bills/hs-1/pay');
$primary->safe_psql('postgres', q{SELECT qiwi_bill_status('hs-1')});
# a paid Pull bill of merchant hs_pull with a refund still processing
sandbox('/sandbox/pull/projects', '{"prv_id": "4801", "api_id": "8801", "api_password": "hs-pull-pass"}');
$primary->safe_psql('postgres', qq{
CREATE SERVER hs_pull FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '4801', pull_api_id '8801', pull_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER hs_pull OPTIONS (pull_api_password 'hs-pull-pass');
SELECT qiwi_pull_create_bill('hs-p1', '79161234567', 30.00, 'Standby', now() + interval '1 day', merchant => 'hs_pull');
});
sandbox('/sandbox/pull/projects/4801/bills/hs-p1/pay', '{}');
$primary->safe_psql('postgres', q{SELECT qiwi_pull_bill_status('hs-p1', 'hs_pull');
	SELECT qiwi_pull_refund('hs-p1', 'r1', 10.00, 'hs_pull')});
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

my $requests = sandbox_requests();
$standby->psql('postgres', q{SELECT qiwi_refund('hs-1', 'hs-r1', 5)}, stderr => \$err);
like($err, qr/cannot refund a bill on a hot standby/, 'a refund on a standby is refused');
$standby->psql('postgres', q{SELECT qiwi_cancel_bill('hs-1')}, stderr => \$err);
like($err, qr/cannot cancel a bill on a hot standby/, 'so is a cancel');
$standby->psql('postgres', q{SELECT qiwi_create_bill('hs-2', 5, expires_at => now() + interval '1 day')}, stderr => \$err);
like($err, qr/cannot create a bill on a hot standby/, 'and a creation');
is(sandbox_requests(), $requests, 'nothing was sent to QIWI');
$standby->psql('postgres', q{SELECT status FROM qiwi_bill_status('hs-1')}, stdout => \$out, stderr => \$err);
is($out, 'PAID', 'a status call on the standby answers');
like($err, qr/WARNING:.*was not recorded.*\n.*hot standby/, 'and says it could not record it');

# Pull: the reads reach the sandbox and answer, writing nothing; the calls
# that move money are refused before anything is sent
my $pull_before = pull_requests();
$standby->psql('postgres', q{SELECT qiwi_pull_refund('hs-p1', 'r2', 5.00, 'hs_pull')}, stderr => \$err);
like($err, qr/cannot refund a Pull bill on a hot standby/, 'a Pull refund on the standby is refused');
$standby->psql('postgres', q{SELECT qiwi_pull_cancel_bill('hs-p1', 'hs_pull')}, stderr => \$err);
like($err, qr/cannot cancel a Pull bill on a hot standby/, 'so is a Pull cancel');
$standby->psql('postgres', q{SELECT qiwi_pull_create_bill('hs-p2', '79161234567', 5.00, 'Standby', now() + interval '1 day', merchant => 'hs_pull')},
	stderr => \$err);
like($err, qr/cannot create a Pull bill on a hot standby/, 'and a Pull creation');
is(pull_requests(), $pull_before, 'none of them reached the sandbox');
sandbox('/sandbox/pull/projects/4801/bills/hs-p1/refunds/r1/complete', '{}');
$standby->psql('postgres', q{SELECT status FROM qiwi_pull_refund_status('hs-p1', 'r1', 'hs_pull')},
	stdout => \$out, stderr => \$err);
is($out, 'success', 'a Pull refund status call on the standby answers from the sandbox');
$standby->psql('postgres', q{SELECT status FROM qiwi_pull_bill_status('hs-p1', 'hs_pull')}, stdout => \$out);
is($out, 'paid', 'so does a Pull bill status call');
is(pull_requests(), $pull_before + 2, 'the two reads reached the sandbox, once each');
is($standby->safe_psql('postgres', q{SELECT status FROM qiwi_pull_refunds WHERE bill_id = 'hs-p1'}), 'processing',
	'the standby wrote nothing: its refund is still processing');
$standby->stop;
$primary->stop;

done_testing();
