# Merchants: two QIWI accounts with different keys, each behind a sandbox
# of its own, served from one database.  Calls, the reconciler and
# notifications each use the right key; a plain role reads neither key by
# any SQL route; a key QIWI refuses stops only its merchant.
use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = $ENV{QIWI_SRC} or die "QIWI_SRC is not set";
my $http = HTTP::Tiny->new;

# Start a process on a free port and wait until it answers at $path
sub start_server
{
	my ($command, $port, $path) = @_;
	my $h = IPC::Run::start($command, '>', \my $out, '2>', \my $err);
	for (1 .. 100)
	{
		return $h if $http->get("http://127.0.0.1:$port$path")->{status} != 599;
		select(undef, undef, undef, 0.1);
	}
	die "@$command did not start: $err";
}

# The second merchant's QIWI: another key, another siteId
my $port2 = PostgreSQL::Test::Cluster::get_free_port();
my $url2 = "http://127.0.0.1:$port2";
my $secret2 = 'shop2-key-' . join('', map { ('a' .. 'z')[ rand 26 ] } 1 .. 24);
my $sandbox2 = start_server(
	[ 'python3', "$src/test/qiwi_sandbox.py", '--port', $port2, '--secret', $secret2,
	  '--site-id', '777001' ], $port2, '/sandbox/stats');
# stopped by its process id, also when the test dies
END { local $?; $sandbox2->kill_kill if $sandbox2; }
sub sandbox2 { my ($path) = @_; my $r = $http->post("$url2$path"); die "$path: $r->{content}" unless $r->{success}; }
sub sandbox2_requests { return $http->get("$url2/sandbox/stats")->{content} =~ /"requests":(\d+)/ ? $1 : die; }
sandbox('/sandbox/reset');

my $node = qiwi_node('merchants', q{
qiwi.database = 'postgres'
qiwi.site_id = '270305'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '1s'
log_min_messages = debug1
log_statement = 'all'
});
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER shop2 FOREIGN DATA WRAPPER qiwi OPTIONS (bill_api_url '$url2', bill_site_id '777001');
CREATE USER MAPPING FOR PUBLIC SERVER shop2 OPTIONS (bill_secret_key '$secret2');
CREATE ROLE regress_clerk LOGIN;
GRANT EXECUTE ON FUNCTION qiwi_bill_status(text, text) TO regress_clerk;
});

# ---------- calls: each merchant's key goes to its own QIWI ----------

my $before2 = sandbox2_requests();
is(sql(q{SELECT status FROM qiwi_create_bill('m-1', 10, expires_at => now() + interval '1 day')}),
	'WAITING', 'a call without merchant uses the default merchant');
is(sql(q{SELECT status FROM qiwi_create_bill('m-1', 20, expires_at => now() + interval '1 day', merchant => 'shop2')}),
	'WAITING', 'the same bill id at the second merchant, for other money');
is(sandbox2_requests(), $before2 + 1, 'only the second call reached the second QIWI');
is(sql(q{SELECT string_agg(merchant || ' ' || amount || ' ' || site_id, ', ' ORDER BY merchant) FROM qiwi_bills WHERE bill_id = 'm-1'}),
	'default 10.00 270305, shop2 20.00 777001', 'qiwi_bills holds one bill per merchant');
my $r = $http->get("$url2/partner/bill/v1/bills/m-1", { headers => { Authorization => "Bearer $secret2", Accept => 'application/json' } });
like($r->{content}, qr/"value": ?"20\.00"/, 'the second QIWI has its bill, created with its key');

# ---------- keys: no SQL route for a plain role ----------

my ($rc, $out, $err);
my $clerk = sub {
	my ($query) = @_;
	($rc, $out, $err) = (0, '', '');
	$rc = $node->psql('postgres', "SET ROLE regress_clerk; $query", stdout => \$out, stderr => \$err);
	return $out;
};
like(sql(q{SELECT umoptions::text FROM pg_user_mappings WHERE srvname = 'shop2'}), qr/\Q$secret2\E/,
	'a superuser sees the key in pg_user_mappings (the check below can fail)');
is($clerk->(q{SELECT coalesce(umoptions::text, 'hidden') FROM pg_user_mappings WHERE srvname = 'shop2'}), 'hidden',
	'pg_user_mappings hides the key from a plain role');
$clerk->(q{SELECT umoptions FROM pg_user_mapping});
like($err, qr/permission denied for table pg_user_mapping/, 'pg_user_mapping is closed to a plain role');
$clerk->(q{SELECT srvoptions FROM pg_foreign_server});
unlike($out . $err, qr/\Q$secret2\E/, 'no server option holds the key');
$clerk->(q{SHOW qiwi.secret_key});
like($err, qr/permission denied|must be superuser/, 'nor the default key through SHOW');
$clerk->(q{SELECT status FROM qiwi_bill_status('m-1', merchant => 'shop2')});
like($err, qr/permission denied for merchant "shop2"/, 'without USAGE on its server a role cannot use a merchant');
sql(q{GRANT USAGE ON FOREIGN SERVER shop2 TO regress_clerk});
is($clerk->(q{SELECT status FROM qiwi_bill_status('m-1', merchant => 'shop2')}), 'WAITING',
	'with USAGE it can, with the key it cannot see');
is($clerk->(q{SELECT coalesce(umoptions::text, 'hidden') FROM pg_user_mappings WHERE srvname = 'shop2'}), 'hidden',
	'USAGE does not show the key either');
$clerk->(q{SELECT status FROM qiwi_bill_status('m-1', merchant => 'nosuch')});
like($err, qr/merchant "nosuch" does not exist/, 'an unknown merchant is an error naming it');

# ---------- a server that is no superuser's is no merchant ----------

# a role allowed to make servers of the wrapper claims shop2's siteId and
# the default merchant's, with a URL and key of its own
$node->safe_psql('postgres', q{
CREATE ROLE regress_tenant LOGIN;
GRANT USAGE ON FOREIGN DATA WRAPPER qiwi TO regress_tenant;
SET ROLE regress_tenant;
CREATE SERVER tenant1 FOREIGN DATA WRAPPER qiwi OPTIONS (bill_api_url 'https://127.0.0.1:9', bill_site_id '777001');
CREATE SERVER tenant2 FOREIGN DATA WRAPPER qiwi OPTIONS (bill_api_url 'https://127.0.0.1:9', bill_site_id '270305');
CREATE USER MAPPING FOR PUBLIC SERVER tenant1 OPTIONS (bill_secret_key 'tenant-key');
});
($rc, $out, $err) = (0, '', '');
$node->psql('postgres', q{SELECT qiwi_bill_status('m-1', merchant => 'tenant1')}, stderr => \$err);
like($err, qr/server "tenant1" is no merchant: its owner is not a superuser/, 'a server of a plain role is no merchant');
$node->psql('postgres', q{CREATE SERVER insecure FOREIGN DATA WRAPPER qiwi OPTIONS (bill_api_url 'http://api.qiwi.com')}, stderr => \$err);
like($err, qr/invalid value for option "bill_api_url"/, 'a key would travel in clear over http to another machine: refused');
# a key given with its option name escaped is still no log line
$node->safe_psql('postgres', q{CREATE SERVER shop3 FOREIGN DATA WRAPPER qiwi OPTIONS (bill_site_id '888001');
CREATE USER MAPPING FOR PUBLIC SERVER shop3 OPTIONS (U&"bill_s\0065cret_key" 'escaped-spelling-key')});

# ---------- notifications: verified with the key of their siteId's merchant ----------

my $port_r = PostgreSQL::Test::Cluster::get_free_port();
my $receiver = start_server(
	[ 'python3', "$src/test/notification_receiver.py", '--port', $port_r,
	  '--dbname', $node->connstr('postgres') ], $port_r, '/');
END { local $?; $receiver->kill_kill if $receiver; }
my $notify = qq{{"url": "http://127.0.0.1:$port_r/qiwi-notify", "retry_ms": 200}};
sandbox('/sandbox/notifications', $notify);
$r = $http->post("$url2/sandbox/notifications", { content => $notify });
die $r->{content} unless $r->{success};

sql(q{SELECT qiwi_create_bill('n-1', 5, expires_at => now() + interval '1 day')});
sql(q{SELECT qiwi_create_bill('n-1', 6, expires_at => now() + interval '1 day', merchant => 'shop2')});
sandbox('/sandbox/bills/n-1/pay');
sandbox2('/sandbox/bills/n-1/pay');
wait_for(q{SELECT count(*) = 2 FROM qiwi_notifications WHERE bill_id = 'n-1'}, 'both QIWIs notified');
is(sql(q{SELECT string_agg(verified || ' ' || applied || ' ' || coalesce(error, '-'), ', ' ORDER BY body->'bill'->>'siteId') FROM qiwi_notifications WHERE bill_id = 'n-1'}),
	'true true -, true true -', 'each notification is verified with its merchant\'s key and applied');
is(sql(q{SELECT string_agg(merchant || ' ' || status, ', ' ORDER BY merchant) FROM qiwi_bills WHERE bill_id = 'n-1'}),
	'default PAID, shop2 PAID', 'each to its own merchant\'s bill');
# signed with the other merchant's key, or for a site no merchant has
sql(qq{INSERT INTO qiwi_notifications (signature, body)
SELECT qiwi_sign_notification(n, 'wrong-key'), n FROM (SELECT jsonb_build_object('bill', jsonb_build_object(
	'siteId', '777001', 'billId', 'n-2', 'amount', jsonb_build_object('value', '7.00', 'currency', 'RUB'),
	'status', jsonb_build_object('value', 'PAID')), 'version', '1') AS n) s;
INSERT INTO qiwi_notifications (signature, body)
SELECT qiwi_sign_notification(n, 'any-key'), n FROM (SELECT jsonb_build_object('bill', jsonb_build_object(
	'siteId', '999999', 'billId', 'n-3', 'amount', jsonb_build_object('value', '7.00', 'currency', 'RUB'),
	'status', jsonb_build_object('value', 'PAID')), 'version', '1') AS n) s;});
is(sql(q{SELECT verified || ' ' || error FROM qiwi_notifications WHERE bill_id = 'n-2'}),
	'false the signature does not match', 'a notification for shop2 not signed with its key is not verified');
is(sql(q{SELECT verified || ' ' || error FROM qiwi_notifications WHERE bill_id = 'n-3'}),
	'false bill_site_id "999999" belongs to no merchant (the default merchant\'s is "270305")',
	'a notification for an unknown site is stored, not verified, with the reason');

# ---------- the reconciler: each merchant with its key; a refused key stops only its merchant ----------

sql(q{SELECT qiwi_create_bill('r-1', 1, expires_at => now() + interval '1 day')});
sql(q{SELECT qiwi_create_bill('r-1', 2, expires_at => now() + interval '1 day', merchant => 'shop2')});
sandbox('/sandbox/bills/r-1/pay');
sandbox2('/sandbox/bills/r-1/reject');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT string_agg(merchant || ' ' || status, ', ' ORDER BY merchant) = 'default PAID, shop2 REJECTED' FROM qiwi_bills WHERE bill_id = 'r-1'},
	'the reconciler follows both merchants\' bills, each at its own QIWI');

sql(qq{ALTER USER MAPPING FOR PUBLIC SERVER shop2 OPTIONS (SET bill_secret_key 'revoked-key')});
sql(q{SELECT qiwi_create_bill_after_commit('r-2', 3, expires_at => now() + interval '1 day')});
sql(q{SELECT qiwi_create_bill_after_commit('r-2', 4, expires_at => now() + interval '1 day', merchant => 'shop2')});
wait_for(q{SELECT stopped_by_auth AND last_error LIKE '%merchant "shop2"%' FROM qiwi_reconciler_status},
	'QIWI refusing shop2\'s key stops the reconciler for shop2');
wait_for(q{SELECT status = 'WAITING' FROM qiwi_bills WHERE bill_id = 'r-2' AND merchant = 'default'},
	'the default merchant goes on: its bill is created');
sandbox('/sandbox/bills/r-2/pay');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT status = 'PAID' FROM qiwi_bills WHERE bill_id = 'r-2' AND merchant = 'default'},
	'and followed to PAID');
is(sql(q{SELECT status FROM qiwi_bills WHERE bill_id = 'r-2' AND merchant = 'shop2'}), 'CREATING',
	'shop2\'s bill waits, not failed');
# a round with a default bill due would claim shop2's CREATING bill too, were it not stopped
my $refused_requests = sandbox2_requests();
my $rounds = sql(q{SELECT rounds FROM qiwi_reconciler_status});
sql(q{SELECT qiwi_create_bill('r-3', 1, expires_at => now() + interval '1 day')});
sql(q{SELECT qiwi_reconcile_now()});
wait_for("SELECT rounds > $rounds FROM qiwi_reconciler_status", 'a round passes');
is(sandbox2_requests(), $refused_requests, 'no request goes to shop2 while its key is refused');

sql(qq{ALTER USER MAPPING FOR PUBLIC SERVER shop2 OPTIONS (SET bill_secret_key '$secret2')});
wait_for(q{SELECT status = 'WAITING' FROM qiwi_bills WHERE bill_id = 'r-2' AND merchant = 'shop2'},
	'a new user mapping resumes shop2: its bill is created');
wait_for(q{SELECT NOT stopped_by_auth FROM qiwi_reconciler_status}, 'and the stop is cleared');

# ---------- no key in the server log ----------
$node->stop;
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$secret2\E/, 'the second merchant\'s key is in no log line (log_statement = all)');
unlike($log, qr/escaped-spelling-key|tenant-key/, 'nor a key whose option name is escaped, nor a tenant\'s');
like($log, qr/statement hidden by qiwi_kassa/, 'statements naming a key are hidden');

done_testing();
