# The reconciler's requester (the process that sends a round's requests):
# killed in the middle of a round, the reconciler goes on and the bills it
# never answered stay due, checked in a later round (sent by the reconciler
# itself; the round after starts a new requester), none recorded wrongly;
# it is kept from round to round and ends with the reconciler; with no
# worker slot for it, the reconciler sends the rounds itself.
use strict;
use warnings;

use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Bills per round: enough for the requester to be used
my $bills = 400;

my $node = qiwi_node('requester', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1h'
qiwi.reconcile_max_interval = '2h'
qiwi.reconcile_concurrency = 4
});
sandbox('/sandbox/reset');

sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');
wait_for(q{SELECT running FROM qiwi_reconciler_status}, 'the reconciler runs');
sql(qq{SELECT count(qiwi_create_bill('rq-' || i, 1, expires_at => now() + interval '1 day')) FROM generate_series(1, $bills) i});
# a first round over them, so that none is claimed behind the test's back
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT count(*) = 0 FROM qiwi_bills WHERE check_count = 0}, 'a first round checks every bill');
wait_for(q{SELECT state = 'idle' FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler'},
	'and ends');
sql(q{UPDATE qiwi_bills SET next_check_at = 'infinity', check_count = 0});
my $requester = sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa requester'
	AND application_name = 'qiwi_kassa requester'});
like($requester, qr/^\d+$/, 'a requester stays in pg_stat_activity after the round');

# ---------- the requester killed in the middle of a round ----------

# 400 bills, 4 at a time, each answered after 500 ms: a round of 50 s.  The
# first 100 answers are recorded together after ~12 s; the requester is
# killed then, with ~37 s of requests still to go (a margin that holds on
# a loaded machine, where 15 s did not).
my $reconciler = sql(q{SELECT pid FROM qiwi_reconciler_status});
# (the first round may publish its counts a moment after it reports idle:
# the round awaited below is the one that starts after this point)
my $since = server_now($node);
sandbox('/sandbox/latency', '{"ms": 500}');
sql(q{UPDATE qiwi_bills SET next_check_at = now() WHERE bill_id LIKE 'rq-%'});
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT count(*) >= 100 FROM qiwi_bills WHERE bill_id LIKE 'rq-%' AND check_count > 0},
	'the round records its first answers');
is(sql(q{SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa requester'}),
	$requester, 'the same requester sends this round');
is(sql(qq{SELECT pg_terminate_backend($requester)}), 't', 'pg_terminate_backend kills it');
wait_round_after($node, $since, 'the round ends');
# The next round checks the bills the cut round left: it may start as soon
# as the cut round ends, else the reload wakes it (qiwi_reconcile_now would
# make every bill due).  Awaited: every bill checked, and a round published
# that claimed fewer than all (the cut round claimed all 400).
sql(q{SELECT pg_reload_conf()});
wait_for(q{SELECT count(*) = 0 FROM qiwi_bills WHERE bill_id LIKE 'rq-%' AND check_count = 0},
	'a later round checks the bills left');
wait_for(qq{SELECT last_round_start > '$since' AND last_round_checked < $bills FROM qiwi_reconciler_status},
	'and publishes its counts');
sandbox('/sandbox/latency', '{"ms": 0}');
is(sql(q{SELECT pid FROM qiwi_reconciler_status}), $reconciler, 'the reconciler goes on (same PID)');
# (the reconciler sees the requester's queue detached before the process
# leaves pg_stat_activity)
wait_for(qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $requester}, 'the requester is gone');
# what the cut round recorded was recorded before the later round started
my ($later_start, $later) = split /\|/, sql(q{SELECT last_round_start, last_round_checked FROM qiwi_reconciler_status});
my $checked = sql(qq{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'rq-%' AND checked_at < '$later_start'});
ok($checked >= 100 && $checked < $bills, "the round was cut short: $checked of $bills recorded");
is($later, $bills - $checked, 'the later round claimed only those left');
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'rq-%' AND check_count = 1 AND failures = 0
	      AND last_error IS NULL AND next_check_at > now()}),
	$bills, 'each bill checked once over both rounds, none failed: those cut short were left due, with no failure');
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'rq-%' AND status <> 'WAITING'}), '0',
	'every bill is still WAITING');
is(sql(q{SELECT count(*) FROM qiwi_bill_events WHERE bill_id LIKE 'rq-%' AND source <> 'call'}), '0',
	'and has no event but its creation');
is(sql(q{SELECT last_round_failed FROM qiwi_reconciler_status}), '0', 'the rounds count no failure');
is(sql(q{SELECT pid FROM qiwi_reconciler_status}), $reconciler, 'by the same reconciler');
is(sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa requester'}), '0',
	'which sent that round itself: a requester that keeps dying never stops the checks');
# the round after that goes through a new requester
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT count(*) = 0 FROM qiwi_bills WHERE bill_id LIKE 'rq-%' AND check_count < 2},
	'the next round checks every bill again');
my $second = sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa requester'});
ok($second =~ /^\d+$/ && $second != $requester, 'through a new requester');

# The requester ends with its reconciler
sql(qq{SELECT pg_terminate_backend($reconciler)});
wait_for(qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE pid IN ($reconciler, $second)},
	'a terminated reconciler takes its requester with it');
wait_for(qq{SELECT running AND pid <> $reconciler FROM qiwi_reconciler_status}, 'and the launcher starts another');
unlike(slurp_file($node->logfile), qr/terminated by signal|server process .* was terminated/,
	'no process crashed');
$node->stop;

# ---------- no worker slot for the requester ----------

# Two worker processes: the launcher and the reconciler (no logical
# replication launcher), none left for a requester
sandbox('/sandbox/reset');
my $tight = qiwi_node('tight', q{
max_worker_processes = 2
max_logical_replication_workers = 0
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1h'
qiwi.reconcile_max_interval = '2h'
qiwi.reconcile_concurrency = 4
});
$tight->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');
ok($tight->poll_query_until('postgres', q{SELECT running FROM qiwi_reconciler_status}), 'the reconciler runs in two worker slots');
$tight->safe_psql('postgres', qq{SELECT count(qiwi_create_bill('ns-' || i, 1, expires_at => now() + interval '1 day')) FROM generate_series(1, $bills) i});
$tight->safe_psql('postgres', q{UPDATE qiwi_bills SET next_check_at = now(), check_count = 0});
sandbox("/sandbox/bills/ns-$_/pay") for (1 .. 10);
sandbox("/sandbox/bills/ns-$_/reject") for (11 .. 15);
$tight->safe_psql('postgres', q{SELECT qiwi_reconcile_now()});
ok($tight->poll_query_until('postgres', q{SELECT count(*) FILTER (WHERE status = 'WAITING' AND check_count = 0) = 0
	AND count(*) FILTER (WHERE status <> 'WAITING') = 15 FROM qiwi_bills}),
	'with no slot for a requester, the round is sent all the same');
is($tight->safe_psql('postgres', q{SELECT string_agg(status || ':' || n, ',' ORDER BY status) FROM
	(SELECT status, count(*) AS n FROM qiwi_bills WHERE failures = 0 AND (status <> 'WAITING' OR check_count = 1)
	 GROUP BY status) s}),
	'PAID:10,REJECTED:5,WAITING:' . ($bills - 15), 'every bill recorded once, with the status QIWI gave');
is($tight->safe_psql('postgres', q{SELECT last_round_checked || ' ' || last_round_failed FROM qiwi_reconciler_status}),
	"$bills 0", 'in one round with no failure');
is($tight->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa requester'}),
	'0', 'no requester runs');
$tight->stop;

done_testing();
