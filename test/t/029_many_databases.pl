# Many databases: the launcher keeps a reconciler for each database that
# has the extension (three of them, and one more created while it runs),
# none for one without it; each database's bills paid at QIWI become PAID
# by themselves; DROP DATABASE of a served database returns while its
# round is in flight; qiwi_reconcilers() shows them all from any database;
# with qiwi.max_reconcilers = 1 the databases take turns (said in the log
# and shown as "waiting for a slot") and every one is still served;
# qiwi.database naming one database filters the others out.
use strict;
use warnings;

use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);

my $node = qiwi_node('many_databases', q{
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.max_reconcilers = 4
max_worker_processes = 16
log_min_messages = debug1
});
sandbox('/sandbox/reset');
sandbox('/sandbox/latency', '{"ms": 0}');

# A query's single value in a database; a test that a query comes to return t there
sub sql_in { my ($db, $q) = @_; return $node->safe_psql($db, $q); }
sub wait_in
{
	my ($db, $q, $what) = @_;
	ok($node->poll_query_until($db, $q), $what);
}

is(sql_in('postgres', 'SHOW qiwi.database'), '*', 'by default every database is served');
for my $db (qw(shop_a shop_b shop_c plain))
{
	sql_in('postgres', "CREATE DATABASE $db");
	sql_in($db, 'CREATE EXTENSION qiwi_kassa') unless $db eq 'plain';
}

# one reconciler per database that has the extension, seen from any database
wait_in('shop_a', q{SELECT string_agg(database || ':' || state, ',' ORDER BY database) = 'shop_a:running,shop_b:running,shop_c:running' FROM qiwi_reconcilers()},
	'qiwi_reconcilers() shows a running reconciler for each of the three databases');
ok($node->wait_for_log(qr/qiwi_kassa reconciler found no extension qiwi_kassa in database "plain"/),
	'a reconciler looked into the database without the extension');
is(sql_in('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE datname IN ('plain', 'postgres') AND backend_type = 'qiwi_kassa reconciler'}),
	'0', 'and none stays in a database without it');
is(sql_in('shop_b', q{SELECT database || ':' || state || ':' || running FROM qiwi_reconciler_status}),
	'shop_b:running:true', 'qiwi_reconciler_status shows the current database');

# Bills of each database, one paid at QIWI each, become PAID by themselves
my $n = 0;
sub pay_one_in
{
	my (@dbs) = @_;
	$n++;
	for my $db (@dbs)
	{
		sql_in($db, qq{SELECT qiwi_create_bill('$db-$n-' || i, 10, expires_at => now() + interval '1 day') FROM generate_series(1, 2) i});
		sandbox("/sandbox/bills/$db-$n-1/pay");
	}
	for my $db (@dbs)
	{
		wait_in($db, qq{SELECT string_agg(status, ',' ORDER BY bill_id) = 'PAID,WAITING' FROM qiwi_bills WHERE bill_id LIKE '$db-$n-%'},
			"$db: its paid bill (round $n) became PAID, the other stays WAITING");
	}
}
pay_one_in(qw(shop_a shop_b shop_c));

# A database created while the launcher runs, then given the extension
sql_in('postgres', 'CREATE DATABASE shop_d');
sql_in('shop_d', 'CREATE EXTENSION qiwi_kassa');
wait_in('shop_d', q{SELECT state = 'running' FROM qiwi_reconciler_status}, 'shop_d, created and given the extension, gets its reconciler');
pay_one_in('shop_d');

# DROP DATABASE of a served database while its round waits for a slow QIWI
sql_in('shop_b', q{SELECT qiwi_create_bill('shop_b-slow', 10, expires_at => now() + interval '1 day')});
sandbox('/sandbox/latency', '{"ms": 4000}');
sql_in('shop_b', 'SELECT qiwi_reconcile_now()');
wait_in('postgres', q{SELECT true FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler' AND datname = 'shop_b' AND state = 'active' AND query LIKE 'qiwi_kassa: checking%'},
	'a slow round is in flight in shop_b');
my $t0 = [gettimeofday];
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE shop_b',
	timeout => $PostgreSQL::Test::Utils::timeout_default);
is($ret, 0, 'DROP DATABASE of a served database returns, done') or diag($err);
diag(sprintf('DROP DATABASE took %.0f ms during a round', tv_interval($t0) * 1000));
sandbox('/sandbox/latency', '{"ms": 0}');
wait_in('shop_a', q{SELECT string_agg(database, ',' ORDER BY database) = 'shop_a,shop_c,shop_d' FROM qiwi_reconcilers()},
	'the dropped database leaves qiwi_reconcilers()');

# A budget of one reconciler: the three databases take turns, none starves
sql_in('postgres', 'ALTER SYSTEM SET qiwi.max_reconcilers = 1');
sql_in('postgres', 'SELECT pg_reload_conf()');
ok($node->wait_for_log(qr/qiwi_kassa reconcilers take turns: \d+ databases wait while \d+ run \(qiwi.max_reconcilers = 1\)/),
	'the launcher says the databases take turns');
wait_in('shop_a', q{SELECT count(*) FILTER (WHERE state = 'waiting for a slot') >= 1 AND count(*) FILTER (WHERE state = 'running') <= 1 FROM qiwi_reconcilers()},
	'qiwi_reconcilers() shows databases waiting for a slot');
my %rounds = map { $_ => sql_in('shop_a', qq{SELECT rounds FROM qiwi_reconcilers() WHERE database = '$_'}) } qw(shop_a shop_c shop_d);
pay_one_in(qw(shop_a shop_c shop_d));
for my $db (qw(shop_a shop_c shop_d))
{
	cmp_ok(sql_in('shop_a', qq{SELECT rounds FROM qiwi_reconcilers() WHERE database = '$db'}), '>', $rounds{$db},
		"$db had rounds of its own with a budget of one");
}

# qiwi.database naming one database: only it is served
sql_in('postgres', q{ALTER SYSTEM SET qiwi.database = 'shop_a'});
sql_in('postgres', q{ALTER SYSTEM RESET qiwi.max_reconcilers});
sql_in('postgres', 'SELECT pg_reload_conf()');
wait_in('shop_a', q{SELECT string_agg(database, ',') = 'shop_a' FROM qiwi_reconcilers()},
	'qiwi.database = shop_a: only shop_a keeps a reconciler');
($ret, $out, $err) = $node->psql('shop_c', q{SELECT qiwi_reconcile_now()});
like($err, qr/qiwi_reconcile_now cannot be used in database "shop_c": the reconciler serves database "shop_a"/,
	'a database filtered out refuses what only a reconciler completes');
is(sql_in('shop_c', q{SELECT state || ':' || running FROM qiwi_reconciler_status}), 'not served:false',
	'and shows it is not served');
pay_one_in('shop_a');

$node->stop;
done_testing();
