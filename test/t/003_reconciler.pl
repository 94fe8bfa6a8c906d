# The reconciler: bills that change at QIWI reach qiwi_bills with no SQL
# call; events and NOTIFY once per change; no transaction open during HTTP;
# a stale answer never regresses a row; 401 stops it until a reload; faults
# delay only the affected bills; it restarts after pg_terminate_backend;
# SIGHUP changes its interval; DROP EXTENSION and DROP DATABASE are never
# blocked by a round in flight.
use strict;
use warnings;

use IPC::Run;
use QiwiTest;
use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);


my $node = qiwi_node('reconciler', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.reconcile_concurrency = 4
});
sandbox('/sandbox/reset');
my $http_stats = sub { HTTP::Tiny->new->get("$sandbox_url/sandbox/stats")->{content} };

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# The reconciler waits for the extension, then runs
ok($node->poll_query_until('postgres', q{SELECT true FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler'}),
	'the launcher starts a reconciler');
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');
wait_for(q{SELECT running AND pid IS NOT NULL FROM qiwi_reconciler_status}, 'qiwi_reconciler_status shows it running');
like(slurp_file($node->logfile), qr/waiting for CREATE EXTENSION qiwi_kassa in database "postgres"/,
	'before CREATE EXTENSION it said once that it waits');

# Bills paid, rejected and expired at QIWI reach the table with no SQL call
sql(q{SELECT qiwi_create_bill('rec-' || i, 10 + i, expires_at => now() + interval '1 day') FROM generate_series(1, 4) i});
my ($listen_out, $listen_err) = ('', '');
# (the listener stays until the three changes are committed, then takes
# its notifications; its DO block runs only once LISTEN is done)
my $listener = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres') . ' application_name=qiwi_test_listener',
	  '-c', 'LISTEN qiwi_bill_status',
	  '-c', wait_in_sql(q{SELECT count(*) = 3 FROM qiwi_bills WHERE bill_id IN ('rec-1', 'rec-2', 'rec-3') AND status <> 'WAITING'}),
	  '-c', 'SELECT 1' ],
	'>', \$listen_out, '2>', \$listen_err);
wait_for(q{SELECT true FROM pg_stat_activity WHERE application_name = 'qiwi_test_listener' AND query LIKE 'DO %'},
	'a session LISTENs');
sandbox('/sandbox/bills/rec-1/pay');
sandbox('/sandbox/bills/rec-2/reject');
sandbox('/sandbox/bills/rec-3/expire');
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT count(*) = 3 FROM qiwi_bills WHERE bill_id IN ('rec-1', 'rec-2', 'rec-3') AND status <> 'WAITING'},
	'paid, rejected and expired bills become final by themselves');
is(sql(q{SELECT string_agg(bill_id || ':' || status, ',' ORDER BY bill_id) FROM qiwi_bills WHERE bill_id LIKE 'rec-%'}),
	'rec-1:PAID,rec-2:REJECTED,rec-3:EXPIRED,rec-4:WAITING', 'each with the status QIWI gave');
is(sql(q{SELECT string_agg(bill_id || ':' || coalesce(old_status, '-') || '>' || new_status || ':' || source, ',' ORDER BY bill_id, id)
	     FROM qiwi_bill_events WHERE bill_id IN ('rec-1', 'rec-2', 'rec-3')}),
	'rec-1:->WAITING:call,rec-1:WAITING>PAID:reconciler,rec-2:->WAITING:call,rec-2:WAITING>REJECTED:reconciler,rec-3:->WAITING:call,rec-3:WAITING>EXPIRED:reconciler',
	'one event per change, with its source');
$listener->finish;
is($listen_err, '', 'the listener waited for them without error');
my @reconciled = grep { /"source":"reconciler"/ } map { s/\\"/"/gr } ($listen_out =~ /with payload "(.*?)" received/g);
is(scalar(@reconciled), 3, 'three NOTIFYs from the reconciler, one per change')
  or diag($listen_out . $listen_err);
like(join(' ', @reconciled), qr/\{"bill_id":"rec-1","status":"PAID","source":"reconciler","merchant":"default"\}/,
	'NOTIFY carries bill, status and merchant as JSON');
my $rec4 = sql(q{SELECT check_count >= 1 AND next_check_at > checked_at FROM qiwi_bills WHERE bill_id = 'rec-4'});
is($rec4, 't', 'a bill still WAITING is scheduled again');

# No transaction is open while requests are in flight
sandbox('/sandbox/latency', '{"ms": 2000}');
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT true FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler' AND state = 'active' AND query LIKE 'qiwi_kassa: checking%'},
	'a round is in flight');
is(sql(q{SELECT xact_start IS NULL AND backend_xid IS NULL AND backend_xmin IS NULL
	     FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler'}),
	't', 'with no transaction, xid or snapshot held');
like(sql(q{SELECT query FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler'}),
	qr/checking \d+ bills with QIWI/, 'pg_stat_activity says what it does');
sandbox('/sandbox/latency', '{"ms": 0}');

# A stale WAITING answer never regresses a bill that became PAID meanwhile
sql(q{SELECT qiwi_create_bill('rec-stale', 5, expires_at => now() + interval '1 day')});
sandbox('/sandbox/bills/rec-stale/pay');
wait_for(q{SELECT state = 'idle' FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler'},
	'the reconciler is between rounds');
sandbox('/sandbox/latency', '{"ms": 1500}');
sandbox('/sandbox/faults', '{"status": 200, "times": 1, "body": "{\"siteId\":\"270305\",\"billId\":\"rec-stale\",\"amount\":{\"currency\":\"RUB\",\"value\":\"5.00\"},\"status\":{\"value\":\"WAITING\"}}"}');
sql(q{UPDATE qiwi_bills SET next_check_at = now() WHERE bill_id = 'rec-stale'});
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT true FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler' AND state = 'active' AND query LIKE 'qiwi_kassa: checking%'},
	'the reconciler asks about it (and will hear WAITING)');
is(sql(q{SELECT status FROM qiwi_bill_status('rec-stale')}), 'PAID', 'meanwhile a call hears PAID');
sandbox('/sandbox/latency', '{"ms": 0}');
# (the reconciler reports idle once its answers are committed)
wait_for(q{SELECT state = 'idle' FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler'},
	'the round with the stale answer ends');
is(sql(q{SELECT status FROM qiwi_bills WHERE bill_id = 'rec-stale'}), 'PAID', 'the stale answer did not undo PAID');
is(sql(q{SELECT count(*) FROM qiwi_bill_events WHERE bill_id = 'rec-stale' AND new_status = 'PAID'}), '1',
	'one event for the change, from the call');

# Faults delay only the affected bills: a 503, a malformed answer, a dropped
# connection and an answer slower than qiwi.timeout, among eight bills
sql(q{ALTER SYSTEM SET qiwi.timeout = '1s'});
sql('SELECT pg_reload_conf()');
wait_for(q{SELECT current_setting('qiwi.timeout') = '1s'}, 'the reload reached the server');
sql(q{SELECT qiwi_create_bill('rec-f' || i, 1, expires_at => now() + interval '1 day') FROM generate_series(1, 8) i});
sql(q{UPDATE qiwi_bills SET next_check_at = 'infinity' WHERE status = 'WAITING' AND bill_id NOT LIKE 'rec-f%'});
sandbox('/sandbox/faults', '{"status": 503, "times": 1}');
sandbox('/sandbox/faults', '{"status": 200, "times": 1, "body": "{not json"}');
sandbox('/sandbox/faults', '{"drop": "before", "times": 1}');
sandbox('/sandbox/faults', '{"delay_ms": 2500, "times": 1}');
sql(q{UPDATE qiwi_bills SET next_check_at = now() - interval '1 minute', check_count = 0 WHERE bill_id LIKE 'rec-f%'});
wait_for(q{SELECT count(*) = 8 FROM qiwi_bills WHERE bill_id LIKE 'rec-f%' AND (check_count > 0 OR failures > 0)},
	'all eight are checked');
# read at once: under load, the next round may recheck the failed bills
# (their backoff is 2 s) and clear what the failed one wrote
my ($failed, $fine, $errors, $round_error) = split /\|/, sql(q{SELECT
	count(*) FILTER (WHERE failures = 1 AND last_error IS NOT NULL AND next_check_at > now()),
	count(*) FILTER (WHERE failures = 0 AND check_count = 1 AND last_error IS NULL),
	string_agg(last_error, ' / ' ORDER BY last_error),
	(SELECT last_error FROM qiwi_reconciler_status)
	FROM qiwi_bills WHERE bill_id LIKE 'rec-f%'});
# libcurl may resend a request whose kept-alive connection was dropped
ok($failed >= 3 && $failed <= 4, "the faulty answers delay three or four bills ($failed)");
is($failed + $fine, 8, 'every other bill is checked as usual');
like($errors,
	qr/QIWI failed to process it.*QIWI did not answer in time|QIWI did not answer in time.*QIWI failed/s,
	'each failure says what went wrong');
like($round_error, qr/checks failed in the last round/,
	'the round\'s failures are the reconciler\'s last_error');
# the faults are used up: the next round that checks them ends clean
my $failed_round = sql(q{SELECT rounds FROM qiwi_reconciler_status});
wait_for(qq{SELECT rounds > $failed_round AND last_round_checked > 0 AND last_round_failed = 0 FROM qiwi_reconciler_status},
	'a round ends clean');
is(sql(q{SELECT last_error IS NULL AND last_error_at IS NULL FROM qiwi_reconciler_status}), 't',
	'a clean round clears last_error: it says what the last round says');
like(sql(q{SELECT last_seen_error || ' at ' || (last_seen_error_at IS NOT NULL) FROM qiwi_reconciler_status}),
	qr/checks failed in the last round at true$/, 'last_seen_error keeps the latest error, with its time');
sql(q{ALTER SYSTEM RESET qiwi.timeout});
sql('SELECT pg_reload_conf()');

# Calls and reconciler rounds on the same bills at once never regress a row
sql(q{UPDATE qiwi_bills SET next_check_at = 'infinity' WHERE status = 'WAITING'});
sql(q{SELECT qiwi_create_bill('rec-h' || i, 1, expires_at => now() + interval '1 day') FROM generate_series(1, 60) i});
my ($hout, $herr) = ('', '');
my $hammer = IPC::Run::start(
	[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c',
	  q{DO $$ BEGIN FOR round IN 1..5 LOOP
	      PERFORM qiwi_bill_status('rec-h' || i) FROM generate_series(1, 60) i;
	    END LOOP; END $$} ],
	'>', \$hout, '2>', \$herr);
for my $i (1 .. 60)
{
	sandbox("/sandbox/bills/rec-h$i/" . ($i % 3 == 0 ? 'reject' : 'pay')) if $i % 4 != 0;
	sql(q{SELECT qiwi_reconcile_now()}) if $i % 10 == 0;
}
$hammer->finish;
is($herr, '', 'the calls ran without error');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT count(*) = 45 FROM qiwi_bills WHERE bill_id LIKE 'rec-h%' AND status <> 'WAITING'},
	'every bill paid or rejected at QIWI is final in qiwi_bills');
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'rec-h%'
	      AND status <> CASE WHEN substr(bill_id, 6)::int % 4 = 0 THEN 'WAITING'
	                         WHEN substr(bill_id, 6)::int % 3 = 0 THEN 'REJECTED' ELSE 'PAID' END}),
	'0', 'each with the status QIWI gave, none with one it never gave');
is(sql(q{SELECT count(*) FROM qiwi_bill_events WHERE bill_id LIKE 'rec-h%' AND old_status IS DISTINCT FROM NULL
	      AND old_status <> 'WAITING'}),
	'0', 'no event ever moves a bill out of a final status');
is(sql(q{SELECT max(n) FROM (SELECT count(*) AS n FROM qiwi_bill_events WHERE bill_id LIKE 'rec-h%' GROUP BY bill_id) e}),
	'2', 'at most two events per bill: first seen, then its one change');

# A wrong key: requests stop until the configuration is reloaded.  A Payin
# merchant with a key of its own keeps the rounds going meanwhile: they
# show that the reconciler looked at the due bills and left them.
sandbox('/sandbox/payin/sites', '{"siteId": "rec-probe", "apiKey": "probe-key", "notificationKey": "n-probe"}');
sql(qq{CREATE SERVER probe FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'rec-probe', payin_api_url '$sandbox_url');
       CREATE USER MAPPING FOR PUBLIC SERVER probe OPTIONS (payin_api_key 'probe-key');
       SELECT qiwi_payin_create_invoice('probe', 1.00, merchant => 'probe')});
sql(q{ALTER SYSTEM SET qiwi.secret_key = 'wrong-key'});
sql('SELECT pg_reload_conf()');
wait_for(q{SELECT current_setting('qiwi.secret_key') = 'wrong-key'}, 'the wrong key reached the server');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT stopped_by_auth FROM qiwi_reconciler_status}, 'a 401 stops the reconciler');
my $before = sandbox_requests();
my $payin_before = payin_requests();
sql(q{UPDATE qiwi_bills SET next_check_at = now() WHERE status = 'WAITING'});
# awaited: a round that started once the bills were due (it checks the
# Payin invoice, due again within qiwi.reconcile_max_interval)
wait_round_after($node, server_now($node), 'a round starts while the bills are due');
cmp_ok(payin_requests(), '>', $payin_before, 'it asks QIWI about the other merchant\'s invoice');
is(sandbox_requests(), $before, 'no request is sent for the stopped merchant');
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE status = 'WAITING' AND next_check_at > now()}), '0',
	'its bills are left due, not claimed');
sandbox('/sandbox/payin/sites/rec-probe/bills/probe/expire');
wait_for(q{SELECT status = 'EXPIRED' FROM qiwi_payin_invoices WHERE bill_id = 'probe'},
	'the other merchant\'s invoice is followed to its end');
sql(q{DROP SERVER probe CASCADE});
my $said = () = slurp_file($node->logfile) =~ /QIWI refused the secret key of merchant "default"; the qiwi_kassa reconciler leaves its items/g;
is($said, 1, 'it says so once in the log');
unlike(slurp_file($node->logfile), qr/\Q$sandbox_secret\E|wrong-key/,
	'no key is in the log, not even in the reload message or our own ALTER SYSTEM');
sql(q{ALTER SYSTEM RESET qiwi.secret_key});
sql('SELECT pg_reload_conf()');
wait_for(q{SELECT NOT stopped_by_auth FROM qiwi_reconciler_status}, 'a reload with the right key resumes it');
sandbox('/sandbox/bills/rec-4/pay');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT status = 'PAID' FROM qiwi_bills WHERE bill_id = 'rec-4'}, 'and it checks bills again');

# A 403 (a key without the permission a call needs) is a refused key too,
# in either API: the merchant stops, its item records no failed check, and
# a change of the merchant's options resumes it
sandbox('/sandbox/payin/sites', '{"siteId": "rec-forbid", "apiKey": "forbid-key", "notificationKey": "n-forbid"}');
sql(qq{CREATE SERVER forbid FOREIGN DATA WRAPPER qiwi OPTIONS (bill_site_id '270305', bill_api_url '$sandbox_url',
                                                               payin_site_id 'rec-forbid', payin_api_url '$sandbox_url');
       CREATE USER MAPPING FOR PUBLIC SERVER forbid OPTIONS (bill_secret_key '$sandbox_secret', payin_api_key 'forbid-key');
       SELECT qiwi_create_bill('forbid-b', 5, expires_at => now() + interval '1 day', merchant => 'forbid')});
sandbox('/sandbox/faults', '{"bill": "forbid-b", "status": 403, "times": 1, "body": "{\\"errorCode\\": \\"auth.forbidden\\", \\"description\\": \\"Forbidden\\"}"}');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT stopped_by_auth FROM qiwi_reconciler_status}, 'a 403 to a bill\'s check stops the reconciler as a 401 does');
is(sql(q{SELECT failures = 0 AND last_error IS NULL FROM qiwi_bills WHERE bill_id = 'forbid-b'}), 't',
	'the bill records no failed check: the merchant stopped, not the bill');
sql(q{ALTER SERVER forbid OPTIONS (ADD payin_capture_hours '24')});
wait_for(q{SELECT NOT stopped_by_auth FROM qiwi_reconciler_status}, 'a change of its options resumes the merchant');
sandbox('/sandbox/bills/forbid-b/pay');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT status = 'PAID' FROM qiwi_bills WHERE bill_id = 'forbid-b'}, 'and its bill is checked again');
sql(q{SELECT qiwi_payin_create_invoice('forbid-i', 1.00, merchant => 'forbid')});
sandbox('/sandbox/faults', '{"api": "payin", "site": "rec-forbid", "status": 403, "times": 1, "body": "{\\"errorCode\\": \\"auth.forbidden\\", \\"description\\": \\"Forbidden\\"}"}');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT stopped_by_auth FROM qiwi_reconciler_status}, 'a 403 to a Payin invoice\'s check stops it too');
is(sql(q{SELECT failures = 0 AND last_error IS NULL FROM qiwi_payin_invoices WHERE bill_id = 'forbid-i'}), 't',
	'the invoice records no failed check');
sql(q{ALTER SERVER forbid OPTIONS (SET payin_capture_hours '48')});
wait_for(q{SELECT NOT stopped_by_auth FROM qiwi_reconciler_status}, 'a change of its options resumes it');
sandbox('/sandbox/payin/sites/rec-forbid/bills/forbid-i/expire');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT status = 'EXPIRED' FROM qiwi_payin_invoices WHERE bill_id = 'forbid-i'}, 'and its invoice is checked again');
my $forbidden = () = slurp_file($node->logfile) =~ /QIWI refused the secret key of merchant "forbid"; the qiwi_kassa reconciler leaves its items/g;
is($forbidden, 2, 'each stop is said once in the log');
sql(q{DROP SERVER forbid CASCADE});

# SIGHUP changes the interval
sql(q{ALTER SYSTEM SET qiwi.reconcile_interval = '7s'});
sql(q{ALTER SYSTEM SET qiwi.reconcile_max_interval = '1h'});
sql('SELECT pg_reload_conf()');
wait_for(q{SELECT current_setting('qiwi.reconcile_interval') = '7s'}, 'the new interval reached the server');
sql(q{UPDATE qiwi_bills SET check_count = 0 WHERE bill_id = 'rec-f1'});
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT check_count = 1 FROM qiwi_bills WHERE bill_id = 'rec-f1'}, 'a bill is checked after the reload');
is(sql(q{SELECT extract(epoch FROM next_check_at - checked_at)::int BETWEEN 13 AND 15 FROM qiwi_bills WHERE bill_id = 'rec-f1'}),
	't', 'its next check is 2 x 7 s later');
sql(q{ALTER SYSTEM SET qiwi.reconcile_interval = '1s'});
sql('SELECT pg_reload_conf()');

# After-commit creation: a rolled-back order leaves no bill at QIWI; a
# committed one is created by the reconciler, exactly once
sub sandbox_bills { return $1 if ($http_stats->() =~ /"bills":(\d+)/); die; }
my $bills_before = sandbox_bills();
sql(q{BEGIN; SELECT qiwi_create_bill_after_commit('ac-1', 15); ROLLBACK;});
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE bill_id = 'ac-1'}), '0', 'a rolled-back bill is not in qiwi_bills');
is(sql(q{BEGIN; SELECT status FROM qiwi_create_bill_after_commit('ac-2', 15, comment => 'after commit',
	                                                             email => 'b@example.com'); COMMIT;}),
	'CREATING', 'the bill is recorded as CREATING');
# (the round that creates ac-2 started after the rollback: it would have
# created ac-1 too, had the rollback left anything to create)
wait_for(q{SELECT status = 'WAITING' AND pay_url IS NOT NULL FROM qiwi_bills WHERE bill_id = 'ac-2'},
	'after commit the reconciler creates it at QIWI');
is(sandbox_bills(), $bills_before + 1, 'exactly one bill at QIWI: the rolled-back one is not there');
is(HTTP::Tiny->new->get("$sandbox_url/partner/bill/v1/bills/ac-1",
	{ headers => { Authorization => "Bearer $sandbox_secret", Accept => 'application/json' } })->{status},
	404, 'QIWI knows no bill ac-1');
is(sql(q{SELECT string_agg(coalesce(old_status, '-') || '>' || new_status || ':' || source, ',' ORDER BY id)
	       FROM qiwi_bill_events WHERE bill_id = 'ac-2'}),
	'->CREATING:call,CREATING>WAITING:reconciler', 'with an event for each step');
is(sql(q{SELECT comment || ' ' || (customer->>'email') FROM qiwi_bills WHERE bill_id = 'ac-2'}),
	'after commit b@example.com', 'as it was asked for');
# (a currency QIWI does not take is refused before anything is recorded: QIWI refuses this one)
sandbox('/sandbox/faults', '{"bill": "ac-3", "status": 400, "times": 1, "body": "{\\"errorCode\\": \\"validation.error\\", \\"description\\": \\"Validation error\\"}"}');
sql(q{SELECT qiwi_create_bill_after_commit('ac-3', 1)});
wait_for(q{SELECT status = 'CREATE_FAILED' FROM qiwi_bills WHERE bill_id = 'ac-3'},
	'a bill QIWI refuses for good becomes CREATE_FAILED');
like(sql(q{SELECT last_error FROM qiwi_bills WHERE bill_id = 'ac-3'}), qr/QIWI rejected the request/,
	'with the reason');
sandbox('/sandbox/faults', '{"status": 503, "times": 1}');
sql(q{SELECT qiwi_create_bill_after_commit('ac-4', 2)});
wait_for(q{SELECT status = 'WAITING' FROM qiwi_bills WHERE bill_id = 'ac-4'},
	'a creation that meets a 503 is retried on its schedule');
is(sql(q{SELECT failures = 0 AND last_error IS NULL FROM qiwi_bills WHERE bill_id = 'ac-4'}), 't',
	'and its failure is cleared');

# pg_terminate_backend: the launcher starts it again within seconds
my $pid = sql(q{SELECT pid FROM qiwi_reconciler_status});
sql(qq{SELECT pg_terminate_backend($pid)});
wait_for(qq{SELECT running AND pid <> $pid FROM qiwi_reconciler_status}, 'a terminated reconciler is back');

# DROP EXTENSION while a round waits for a slow QIWI
sandbox('/sandbox/latency', '{"ms": 4000}');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT true FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler' AND state = 'active' AND query LIKE 'qiwi_kassa: checking%'},
	'a slow round is in flight');
my $t0 = [gettimeofday];
# (deliberately: the ledger holds rows, test/t/015_money_guards.pl)
sql('BEGIN; SET LOCAL qiwi.drop_ledger = on; DROP EXTENSION qiwi_kassa; COMMIT');
my $drop_s = tv_interval($t0);
cmp_ok($drop_s, '<', 2, 'DROP EXTENSION is not blocked by it');
diag(sprintf('DROP EXTENSION took %.0f ms during a round', $drop_s * 1000));

# DROP DATABASE of the reconciler's database while a round is in flight
sql('CREATE DATABASE shop');
$node->safe_psql('shop', 'CREATE EXTENSION qiwi_kassa');
sandbox('/sandbox/latency', '{"ms": 0}');
$node->safe_psql('shop', q{SELECT qiwi_create_bill('shop-1', 1, expires_at => now() + interval '1 day')});
sql(q{ALTER SYSTEM SET qiwi.database = 'shop'});
sql('SELECT pg_reload_conf()');
ok($node->poll_query_until('shop', q{SELECT running AND database = 'shop' FROM qiwi_reconciler_status}),
	'changing qiwi.database moves the reconciler');
sandbox('/sandbox/latency', '{"ms": 8000}');
$node->safe_psql('shop', q{SELECT qiwi_reconcile_now()});
ok($node->poll_query_until('postgres', q{SELECT true FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler' AND datname = 'shop' AND state = 'active' AND query LIKE 'qiwi_kassa: checking%'}),
	'a slow round is in flight in shop');
$t0 = [gettimeofday];
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE shop');
my $dropdb_s = tv_interval($t0);
is($ret, 0, 'DROP DATABASE succeeds') or diag($stderr);
cmp_ok($dropdb_s, '<', 5, 'without waiting for the round');
diag(sprintf('DROP DATABASE took %.0f ms during a round', $dropdb_s * 1000));
sandbox('/sandbox/latency', '{"ms": 0}');
unlike(slurp_file($node->logfile), qr/terminated by signal|server process .* was terminated/,
	'no backend crashed');

$node->stop;
done_testing();
