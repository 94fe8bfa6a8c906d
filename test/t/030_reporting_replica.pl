# A reporting copy: a second cluster subscribes, by logical replication,
# to the publication qiwi_create_publication() makes on the primary, and
# runs the reports there.  Bills created, paid and refunded, a Payin
# payment held, captured and refunded, a Pull bill paid and refunded and a
# Wallet transfer on the primary, some before the subscription (the
# initial copy), some after (streamed);
# every report view on the copy then equals the primary's.  The copy
# knows it is one, with no setting: every call that would send money or
# write the books is refused there (SQLSTATE 25006) before any request,
# a notification stored there is refused, a reading call answers without
# recording, and its reconciler, with items due and merchants to ask,
# does nothing until the subscription is dropped.
use strict;
use warnings;

use JSON::PP;
use QiwiTest;
use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# The primary runs no reconciler: every request the sandbox counts is this test's call
my $primary = qiwi_node('report_primary', q{
wal_level = logical
max_wal_senders = 4
max_replication_slots = 4
qiwi.database = ''
});
my $copy = qiwi_node('report_copy', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.wallet_sync_interval = '1s'
max_worker_processes = 16
});
sandbox('/sandbox/reset');
sandbox('/sandbox/payin/sites', '{"siteId": "rep-site", "apiKey": "rep-key-000", "notificationKey": "rep-n"}');
sandbox('/sandbox/pull/projects', '{"prv_id": "4301", "api_id": "8301", "api_password": "rep-pull-000"}');
sandbox('/sandbox/wallet/wallets', '{"number": "79230000001", "token": "rep-token-000", "balance": "500.00"}');
sandbox('/sandbox/wallet/wallets', '{"number": "79230000002", "token": "rep-token-b"}');

sub on_primary { return query_value($primary, @_); }
sub on_copy { return query_value($copy, @_); }

# Every API request the sandbox has served: Bill Payments, Payin, Pull, Wallet
sub requests
{
	my $wallet = decode_json(HTTP::Tiny->new->get("$sandbox_url/sandbox/wallet/stats")->{content});
	my $sum = sandbox_requests() + payin_requests() + pull_requests();
	$sum += $_ for grep { /^\d+$/ } values %$wallet;
	return $sum;
}

# The merchants, the same on both (a reporting copy is configured like its primary)
my $merchants = qq{
CREATE SERVER pa FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'rep-site', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pa OPTIONS (payin_api_key 'rep-key-000');
CREATE SERVER pl FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '4301', pull_api_id '8301', pull_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pl OPTIONS (pull_api_password 'rep-pull-000');
CREATE SERVER wa FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79230000001', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER wa OPTIONS (wallet_token 'rep-token-000');
};
$primary->safe_psql('postgres', "CREATE EXTENSION qiwi_kassa; $merchants");

# ---------- on the primary, before the subscription ----------
on_primary(q{SELECT qiwi_create_bill('rep-paid', 100.00); SELECT qiwi_create_bill('rep-waiting', 50.00)});
sandbox('/sandbox/bills/rep-paid/pay');
on_primary(q{SELECT qiwi_bill_status('rep-paid'); SELECT qiwi_refund('rep-paid', 'r1', 30.00)});
on_primary(q{SELECT qiwi_payin_create_invoice('rep-held', 9.00, capture => 'manual', merchant => 'pa');
             SELECT qiwi_payin_create_invoice('rep-open', 5.00, merchant => 'pa')});
sandbox('/sandbox/payin/sites/rep-site/bills/rep-held/pay',
	'{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}');
on_primary(q{SELECT qiwi_payin_invoice_payments('rep-held', 'pa')});
my $payment = on_primary(q{SELECT payment_id FROM qiwi_payin_payments WHERE bill_id = 'rep-held'});
ok($payment ne '', 'the Payin payment is recorded, held');
on_primary(qq{SELECT qiwi_payin_capture('$payment', 'c1', merchant => 'pa');
              SELECT qiwi_payin_refund('$payment', 'pr1', 2.00, merchant => 'pa')});
on_primary(q{SELECT qiwi_pull_create_bill('rep-pull', '79161234567', 8.00, 'c', now() + interval '1 day', merchant => 'pl')});
sandbox('/sandbox/pull/projects/4301/bills/rep-pull/pay', '{}');
on_primary(q{SELECT qiwi_pull_bill_status('rep-pull', 'pl'); SELECT qiwi_pull_refund('rep-pull', 'pr1', 3.00, 'pl')});
is(on_primary(q{SELECT status FROM qiwi_wallet_transfer('79230000002', 15.00, 'rep', merchant => 'wa')}),
	'sent', 'a Wallet transfer is sent');
# a notification with a bad signature: stored marked by the primary's trigger
on_primary(q{INSERT INTO qiwi_notifications (signature, body)
             VALUES ('00', '{"bill": {"billId": "rep-paid", "status": {"value": "PAID"}}}')});

# ---------- the publication ----------
like(on_primary(q{SELECT qiwi_create_publication()}),
	qr/^CREATE PUBLICATION qiwi_kassa_reports FOR TABLE public\.qiwi_bills, public\.qiwi_refunds, /,
	'qiwi_create_publication() creates the publication and says the statement');
is(on_primary(q{SELECT count(*) FROM pg_publication_tables p
                 WHERE p.pubname = 'qiwi_kassa_reports'
                   AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = format('%I.%I', p.schemaname, p.tablename)::regclass
                                                          AND i.indisprimary)}),
	'0', 'every published table has a primary key: updates replicate');
# the notifications are not published; a shop that wants them adds the table
on_primary(q{ALTER PUBLICATION qiwi_kassa_reports ADD TABLE qiwi_notifications});

# The report views: the extension's views but qiwi_duties (grants),
# qiwi_reconciler_status (this server's worker) and qiwi_wallet_tokens
# (this server's foreign servers)
my @views = split /\n/, on_primary(q{
SELECT c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_class'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qiwi_kassa') AND c.relkind = 'v'
   AND c.relname NOT IN ('qiwi_duties', 'qiwi_reconciler_status', 'qiwi_wallet_tokens')
 ORDER BY 1});
cmp_ok(scalar @views, '>=', 9, 'the report views: ' . join(', ', @views));
my $view_list = join(', ', map { "'$_'::regclass" } @views);
my ($tables_read, $unpublished) = split /\|/, on_primary(qq{
WITH RECURSIVE reads(rel) AS (
	SELECT unnest(ARRAY[$view_list])::oid
	UNION
	SELECT d.refobjid FROM reads JOIN pg_rewrite w ON w.ev_class = reads.rel
	  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
	                  AND d.refclassid = 'pg_class'::regclass)
SELECT count(*), coalesce(string_agg(c.relname, ',') FILTER (WHERE NOT EXISTS (
	       SELECT FROM pg_publication_tables p WHERE p.pubname = 'qiwi_kassa_reports' AND p.tablename = c.relname)), '')
  FROM reads JOIN pg_class c ON c.oid = reads.rel WHERE c.relkind = 'r'});
cmp_ok($tables_read, '>=', 10, "the report views read $tables_read tables");
is($unpublished, '', 'the publication holds every one of them');

# ---------- the copy subscribes ----------
(my $connstr = $primary->connstr('postgres')) =~ s/'/''/g;
$copy->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');
$copy->safe_psql('postgres', qq{CREATE SUBSCRIPTION reports CONNECTION '$connstr' PUBLICATION qiwi_kassa_reports});
$copy->safe_psql('postgres', $merchants);
ok($copy->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')}),
	'the initial copy of every table is done');

# ---------- on the primary, after it: streamed ----------
on_primary(q{SELECT qiwi_create_bill('rep-late', 40.00)});
sandbox('/sandbox/bills/rep-late/pay');
on_primary(q{SELECT qiwi_bill_status('rep-late'); SELECT qiwi_refund('rep-late', 'r2', 40.00)});
$primary->wait_for_catchup('reports');
is(on_copy(q{SELECT status FROM qiwi_bills WHERE bill_id = 'rep-late'}), 'PAID', 'a bill paid later reached the copy');

# ---------- every report equals the primary's ----------
for my $view (@views)
{
	# not the columns that count time from now(), nor the health view's worker columns
	my $columns = on_primary(qq{
SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
 WHERE a.attrelid = '$view'::regclass AND a.attnum > 0 AND a.atttypid <> 'interval'::regtype
   AND NOT ('$view' = 'qiwi_reconciler_health' AND a.attname IN
            (SELECT attname FROM pg_attribute WHERE attrelid = 'qiwi_reconciler_status'::regclass))});
	my $rows = qq{SELECT count(*) || E'\\n' || coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')
	                FROM (SELECT $columns FROM $view) r};
	is(on_copy($rows), on_primary($rows), "$view on the copy equals the primary's");
}
like(on_copy(q{SELECT string_agg(api || ':' || status || ':' || received, ',' ORDER BY api, status) FROM qiwi_money_by_status}),
	qr/bill:PAID:140\.00,bill:REFUNDED:-70\.00,bill:WAITING:0\.00,payin:CAPTURED:9\.00,payin:INVOICE_CREATED:0\.00,payin:REFUNDED:-2\.00,pull:PAID:8\.00,pull:REFUND(ED:-3\.00|ING:0\.00)$/,
	'the copy\'s money report holds the money of both halves');
is(on_copy(q{SELECT verified || ':' || (error IS NOT NULL) FROM qiwi_notifications}), 'false:true',
	'the notification arrived as the primary stored it: the apply worker fired no trigger');

# ---------- the copy's reconciler does nothing, with work there ----------
# (each comes due by its own schedule, seconds after it was recorded)
wait_true($copy, q{SELECT (SELECT count(*) FROM qiwi_bills WHERE status = 'WAITING' AND next_check_at <= now())
                        + (SELECT count(*) FROM qiwi_payin_invoices WHERE status = 'CREATED' AND next_check_at <= now())
                        + (SELECT count(*) FROM qiwi_wallet_transfers WHERE status = 'sent' AND next_check_at <= now()) = 3},
	'a bill, an invoice and a transfer are due on the copy, with merchants to ask');
my $before = requests();
my $since = server_now($copy);
wait_true($copy, qq{SELECT last_error LIKE '%reporting copy%' AND last_error_at > '$since' FROM qiwi_reconciler_status},
	'the copy\'s reconciler looked since, and says in its status that it is a reporting copy');
my $said = () = slurp_file($copy->logfile) =~ /reconciler does nothing in database "postgres": it is a reporting copy/g;
is($said, 1, 'and in the log, once');

# ---------- calls that send money or write the books are refused ----------
my $calls_since = server_now($copy);
# A refusal: SQLSTATE 25006 and what the call would have done
sub refused
{
	my ($sql, $what) = @_;
	my ($ret, $out, $err) = $copy->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	like($err, qr/ERROR:  25006: cannot \Q$what\E in a reporting copy of qiwi_kassa\n.*DETAIL:  Database "postgres" subscribes to the tables of qiwi_kassa \(subscription "reports"\)/,
		"refused on the copy, naming the subscription: $what");
}
refused(q{SELECT qiwi_create_bill('copy-1', 5.00)}, 'create a bill');
refused(q{SELECT qiwi_refund('rep-paid', 'copy-r', 1.00)}, 'refund a bill');
refused(q{SELECT qiwi_cancel_bill('rep-waiting')}, 'cancel a bill');
refused(q{SELECT qiwi_create_bill_after_commit('copy-2', 5.00)}, 'record a bill to create');
refused(qq{SELECT qiwi_payin_capture('$payment', 'copy-c', merchant => 'pa')}, 'capture a Payin payment');
refused(qq{SELECT qiwi_payin_refund('$payment', 'copy-r', 1.00, merchant => 'pa')}, 'refund a Payin payment');
refused(q{SELECT qiwi_payin_create_invoice('copy-3', 5.00, merchant => 'pa')}, 'create a Payin invoice');
refused(q{SELECT qiwi_pull_create_bill('copy-4', '79161234567', 1.00, 'c', now() + interval '1 day', merchant => 'pl')},
	'create a Pull bill');
refused(q{SELECT qiwi_pull_refund('rep-pull', 'copyr', 1.00, 'pl')}, 'refund a Pull bill');
refused(q{SELECT qiwi_wallet_transfer('79230000002', 1.00, merchant => 'wa')}, 'transfer money from a wallet');
refused(q{SELECT qiwi_wallet_transfer_after_commit('79230000002', 1.00, merchant => 'wa')},
	'queue a transfer from a wallet');
refused(q{SELECT qiwi_wallet_webhook_register('https://copy.example/hook', merchant => 'wa')},
	"register a wallet's webhook");
refused(q{SELECT qiwi_reconcile_now()}, 'use qiwi_reconcile_now');
refused(q{INSERT INTO qiwi_notifications (signature, body) VALUES ('00', '{}')},
	'apply a notification (qiwi_notification_verify())');
is(on_copy(q{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'copy-%'}), '0', 'nothing was recorded');
wait_true($copy, qq{SELECT last_error_at > '$calls_since' FROM qiwi_reconciler_status}, 'the reconciler looked again since');
is(requests(), $before, 'nothing was sent to QIWI: not by the calls, not by the reconciler');

# ---------- a reading call answers, and records nothing ----------
my ($ret, $out, $err) = $copy->psql('postgres', q{SELECT status FROM qiwi_bill_status('rep-late')});
is($out, 'PAID', 'a reading call answers on the copy');
like($err, qr/WARNING:  the status of bill "rep-late" was not recorded: this database is a reporting copy/,
	'with a warning that it was not recorded');
$primary->wait_for_catchup('reports');
is(on_copy(q{SELECT checked_at FROM qiwi_bills WHERE bill_id = 'rep-late'}),
	on_primary(q{SELECT checked_at FROM qiwi_bills WHERE bill_id = 'rep-late'}), 'the row is the primary\'s');

# ---------- once no longer a copy, its reconciler acts on the same rows ----------
$copy->safe_psql('postgres', 'DROP SUBSCRIPTION reports');
wait_true($copy, q{SELECT check_count > 0 FROM qiwi_bills WHERE bill_id = 'rep-waiting'},
	'with the subscription dropped, the reconciler checks the due bill it left alone');
cmp_ok(requests(), '>', $before + 1, 'the sandbox saw its requests');
wait_true($copy, q{SELECT last_error IS NULL OR last_error NOT LIKE '%reporting copy%' FROM qiwi_reconciler_status},
	'its status no longer says reporting copy');

done_testing();
