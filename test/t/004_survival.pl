# The reconciler survives QIWI being unreachable for a while, a database
# restart in the middle of a round, and thousands of malformed answers;
# afterwards every bill that is final at the sandbox is final in qiwi_bills,
# and none has a status the sandbox never gave.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use HTTP::Tiny;
use QiwiTest;
use Test::More;

my $node = qiwi_node('survival', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.reconcile_concurrency = 16
qiwi.reconcile_batch_size = 5000
qiwi.timeout = '2s'
qiwi.connect_timeout = '500ms'
});
sandbox('/sandbox/reset');
my $http_delete_faults = sub { HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults") };
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# 300 WAITING bills, left out of the schedule until a test makes them due
my $bills = 300;
sql(qq{SELECT count(qiwi_create_bill('sv-' || i, 1, expires_at => now() + interval '1 day'))
         FROM generate_series(1, $bills) i});
sql(q{UPDATE qiwi_bills SET next_check_at = 'infinity' WHERE bill_id LIKE 'sv-%'});

# 1. QIWI unreachable: the URL points where nobody listens for a while
my $unused = PostgreSQL::Test::Cluster::get_free_port();
sql(qq{ALTER SYSTEM SET qiwi.api_url = 'http://127.0.0.1:$unused'});
sql('SELECT pg_reload_conf()');
wait_for(qq{SELECT current_setting('qiwi.api_url') = 'http://127.0.0.1:$unused'}, 'the reload reached the server');
for my $i (1 .. 100) { sandbox("/sandbox/bills/sv-$i/pay"); }
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT count(*) >= 100 FROM qiwi_bills WHERE bill_id LIKE 'sv-%' AND failures > 0},
	'while QIWI is unreachable the checks fail and back off');
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'sv-%' AND status <> 'WAITING'}), '0',
	'and no bill changes');
# awaited: two more rounds, each started after the last and all of its
# checks failed, while QIWI stays unreachable
my $pid = sql(q{SELECT pid FROM qiwi_reconciler_status});
for my $n (1 .. 2)
{
	wait_round_after($node, server_now($node), "round $n more with QIWI unreachable");
	is(sql(q{SELECT last_round_checked > 0 AND last_round_failed = last_round_checked FROM qiwi_reconciler_status}),
		't', "each of its checks failed");
}
is(sql(q{SELECT running::text || ' ' || pid FROM qiwi_reconciler_status}), "true $pid",
	'the reconciler keeps running, in the same process');
sql(q{ALTER SYSTEM RESET qiwi.api_url});
sql('SELECT pg_reload_conf()');
wait_for(q{SELECT count(*) = 100 FROM qiwi_bills WHERE bill_id LIKE 'sv-%' AND status = 'PAID'},
	'once QIWI is back, the paid bills become PAID');

# 2. A database restart in the middle of a round
for my $i (101 .. 200) { sandbox("/sandbox/bills/sv-$i/reject"); }
sandbox('/sandbox/latency', '{"ms": 1500}');
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT true FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler'
	         AND state = 'active' AND query LIKE 'qiwi_kassa: checking%'}, 'a round is in flight');
$node->restart('fast');
sandbox('/sandbox/latency', '{"ms": 0}');
wait_for(q{SELECT running FROM qiwi_reconciler_status}, 'after the restart the reconciler is back');
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT count(*) = 100 FROM qiwi_bills WHERE bill_id LIKE 'sv-%' AND status = 'REJECTED'},
	'and the bills rejected meanwhile become REJECTED');

# 3. Thousands of malformed answers in one round, then good ones
sql(q{UPDATE qiwi_bills SET next_check_at = 'infinity' WHERE status = 'WAITING'});
# (made not due in the same transaction: a round between the commit and the
# UPDATE would take some of the faults below)
sql(q{BEGIN;
      SELECT count(qiwi_create_bill('sm-' || i, 1, expires_at => now() + interval '1 day'))
        FROM generate_series(1, 2000) i;
      UPDATE qiwi_bills SET next_check_at = 'infinity' WHERE bill_id LIKE 'sm-%';
      COMMIT;});
for my $i (1 .. 50) { sandbox("/sandbox/bills/sm-$i/expire"); }
sandbox('/sandbox/faults', '{"status": 200, "times": 2000, "body": "{\"billId\": 42, \"amount\": \"lots\"}"}');
my $rounds = sql(q{SELECT rounds FROM qiwi_reconciler_status});
sql(q{UPDATE qiwi_bills SET next_check_at = now() WHERE bill_id LIKE 'sm-%'});
wait_for(qq{SELECT rounds > $rounds AND last_round_checked = 2000 FROM qiwi_reconciler_status},
	'a round checks all 2,000');
is(sql(q{SELECT last_round_failed FROM qiwi_reconciler_status}), '2000', 'every answer of it is malformed');
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'sm-%' AND status <> 'WAITING'}), '0',
	'malformed answers change no bill');
like(sql(q{SELECT last_error FROM qiwi_bills WHERE bill_id = 'sm-2000'}), qr/malformed/,
	'they are recorded as failures');
$http_delete_faults->();
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT count(*) = 50 FROM qiwi_bills WHERE bill_id LIKE 'sm-%' AND status = 'EXPIRED'},
	'once QIWI answers properly, the expired bills become EXPIRED');
for my $i (201 .. 250) { sandbox("/sandbox/bills/sv-$i/expire"); }
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT count(*) = 50 FROM qiwi_bills WHERE bill_id LIKE 'sv-%' AND status = 'EXPIRED'},
	'and so do the others');

# Every bill as the sandbox has it; none with a status it never gave
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'sv-%' AND status <>
	      CASE WHEN substr(bill_id, 4)::int <= 100 THEN 'PAID'
	           WHEN substr(bill_id, 4)::int <= 200 THEN 'REJECTED'
	           WHEN substr(bill_id, 4)::int <= 250 THEN 'EXPIRED' ELSE 'WAITING' END}),
	'0', 'every bill has exactly the status the sandbox gave it');
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'sm-%' AND status <>
	      CASE WHEN substr(bill_id, 4)::int <= 50 THEN 'EXPIRED' ELSE 'WAITING' END}),
	'0', 'the 2,000 too');
is(sql(q{SELECT count(*) FROM qiwi_bill_events WHERE old_status IS NOT NULL
	      AND old_status NOT IN ('WAITING', 'CREATING')}), '0', 'and no status ever moved backwards');
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no process crashed');

$node->stop;
done_testing();
