# The reconciler follows Payin invoices: paid, held, captured at the
# deadline, released at the deadline and expired in the sandbox, they reach
# the tables with no SQL call, with events from the reconciler; no
# transaction is open while it asks; a failed check backs off; a Payin key
# QIWI refuses stops only its merchant, until its mapping changes.
# qiwi_reconcile_now() makes the followed invoices due (not final ones),
# writing none of them; qiwi_reconciler_status counts their
# checks; qiwi_reconciler_health shows their lag and failures.  An answer
# that repeats an invoice's row is not written but with its check, and a
# chunk's checks (a failed one among them) are recorded together.
use strict;
use warnings;

use IPC::Run;
use QiwiTest;
use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);

my $node = qiwi_node('payin_reconciler', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.reconcile_concurrency = 4
});
sandbox('/sandbox/reset');
sandbox('/sandbox/payin/sites', '{"siteId": "rec-a", "apiKey": "rec-key-a", "notificationKey": "n-a"}');
sandbox('/sandbox/payin/sites', '{"siteId": "rec-b", "apiKey": "rec-key-b", "notificationKey": "n-b", "deadlineAction": "reverse"}');

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# The buyer pays invoice bill of site with a test card
sub pay
{
	my ($site, $bill) = @_;
	return sandbox("/sandbox/payin/sites/$site/bills/$bill/pay",
		'{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}');
}

$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER pa FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'rec-a', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pa OPTIONS (payin_api_key 'rec-key-a');
CREATE SERVER pb FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'rec-b', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pb OPTIONS (payin_api_key 'rec-key-b');
});

# ---------- invoices paid, held, expired reach the tables by themselves ----------
sql(q{SELECT qiwi_payin_create_invoice('one-step', 5.00, merchant => 'pa');
      SELECT qiwi_payin_create_invoice('held', 6.00, capture => 'manual', merchant => 'pa');
      SELECT qiwi_payin_create_invoice('expiring', 7.00, merchant => 'pa');
      SELECT qiwi_payin_create_invoice('released', 8.00, capture => 'manual', merchant => 'pb');
      SELECT qiwi_payin_create_invoice('waiting', 9.00, merchant => 'pb')});
pay('rec-a', 'one-step');
pay('rec-a', 'held');
sandbox('/sandbox/payin/sites/rec-a/bills/expiring/expire');
pay('rec-b', 'released');
wait_for(q{SELECT count(*) = 4 FROM qiwi_payin_invoices WHERE status <> 'CREATED'},
	'paid and expired invoices change with no SQL call');
is(sql(q{SELECT string_agg(bill_id || ':' || status, ',' ORDER BY bill_id) FROM qiwi_payin_invoices}),
	'expiring:EXPIRED,held:PAID,one-step:PAID,released:PAID,waiting:CREATED', 'each with the status QIWI gave');
wait_for(q{SELECT count(*) = 3 FROM qiwi_payin_payments WHERE status = 'COMPLETED'},
	'their payments are recorded');
is(sql(q{SELECT string_agg(bill_id || ':' || captured_amount, ',' ORDER BY bill_id) FROM qiwi_payin_payments}),
	'held:0.00,one-step:5.00,released:0.00', 'one step captured, two steps held');
is(sql(q{SELECT count(*) FROM qiwi_payin_events WHERE source = 'reconciler' AND object = 'invoice'}), '4',
	'one invoice event per change, from the reconciler');
is(sql(q{SELECT count(*) FROM qiwi_payin_events WHERE source = 'reconciler' AND object = 'payment' AND new_status = 'COMPLETED'}), '3',
	'one payment event per payment, from the reconciler');
is(sql(q{SELECT string_agg(bill_id || ':' || held, ',' ORDER BY bill_id) FROM qiwi_payin_holds}),
	'held:6.00,released:8.00', 'the holds view lists the two holds');
is(sql(q{SELECT check_count >= 1 AND next_check_at > now() - interval '1 second' AND failures = 0
	     FROM qiwi_payin_invoices WHERE bill_id = 'waiting'}),
	't', 'an invoice still CREATED is checked and scheduled again');

# ---------- no transaction open while it asks ----------
sandbox('/sandbox/latency', '{"ms": 2500}');
wait_for(q{SELECT true FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler'
	       AND state = 'active' AND query LIKE 'qiwi_kassa: checking % Payin invoices with QIWI'},
	'a round asks QIWI about Payin invoices');
is(sql(q{SELECT xact_start IS NULL AND backend_xid IS NULL AND backend_xmin IS NULL
	     FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa reconciler'}),
	't', 'with no transaction, xid or snapshot held');
sandbox('/sandbox/latency', '{"ms": 0}');

# ---------- the capture deadline: captured (rec-a), released (rec-b) ----------
my $held = sql(q{SELECT payment_id FROM qiwi_payin_payments WHERE bill_id = 'held'});
my $released = sql(q{SELECT payment_id FROM qiwi_payin_payments WHERE bill_id = 'released'});
sandbox("/sandbox/payin/sites/rec-a/payments/$held/deadline");
sandbox("/sandbox/payin/sites/rec-b/payments/$released/deadline");
wait_for(q{SELECT NOT EXISTS (SELECT FROM qiwi_payin_holds)}, 'holds captured or released at the deadline leave the holds view');
is(sql(qq{SELECT captured_amount || '/' || refunded_amount FROM qiwi_payin_payments WHERE payment_id = '$held'}),
	'6.00/0.00', 'the hold QIWI captured at the deadline is captured money');
is(sql(qq{SELECT captured_amount || '/' || refunded_amount FROM qiwi_payin_payments WHERE payment_id = '$released'}),
	'0.00/8.00', 'the hold QIWI released at the deadline is released');
is(sql(q{SELECT string_agg(status || ':' || received, ',' ORDER BY status) FROM qiwi_money_by_status
	     WHERE api = 'payin' AND status IN ('CAPTURED', 'HELD')}),
	'CAPTURED:11.00', 'the report counts the captured hold as received, and nothing as held');
# awaited: two rounds started after this point; a round sends one request
# per invoice it checks, and one may be in flight when the count is read
my $requests = payin_requests();
my $rounds = sql(q{SELECT rounds FROM qiwi_reconciler_status});
for my $n (1 .. 2)
{
	wait_round_after($node, server_now($node), "round $n more");
	is(sql(q{SELECT last_round_checked FROM qiwi_reconciler_status}), '1',
		'then only the CREATED invoice is checked (final and captured ones are not followed)');
}
my $sent = payin_requests() - $requests;
my $passed = sql(q{SELECT rounds FROM qiwi_reconciler_status}) - $rounds;
cmp_ok($sent, '<=', $passed + 1, "and only it is asked about ($sent requests in $passed rounds)");

# ---------- failures back off ----------
sandbox('/sandbox/faults', '{"api": "payin", "bill": "waiting", "status": 503, "times": 1000}');
wait_for(q{SELECT failures >= 2 AND last_error LIKE '%waiting%' FROM qiwi_payin_invoices WHERE bill_id = 'waiting'},
	'a failed check is counted, with its error');
is(sql(q{SELECT next_check_at > now() FROM qiwi_payin_invoices WHERE bill_id = 'waiting'}), 't',
	'and the invoice is checked again later');
HTTP::Tiny->new->request('DELETE', "$sandbox_url/sandbox/faults");
wait_for(q{SELECT failures = 0 AND last_error IS NULL FROM qiwi_payin_invoices WHERE bill_id = 'waiting'},
	'an answer clears the failures');

# ---------- a refused key stops only its merchant ----------
sql(q{SELECT qiwi_payin_create_invoice('a-later', 3.00, merchant => 'pa');
      SELECT qiwi_payin_create_invoice('b-later', 4.00, merchant => 'pb')});
sandbox('/sandbox/payin/sites', '{"siteId": "rec-a", "apiKey": "rec-key-a2", "notificationKey": "n-a"}');
wait_for(q{SELECT stopped_by_auth AND last_error LIKE '%merchant "pa"%' FROM qiwi_reconciler_status},
	'QIWI refusing pa\'s Payin key stops the reconciler for pa');
unlike(slurp_file($node->logfile), qr/rec-key-a\b/, 'the key is not in the log');
pay('rec-a', 'a-later');
pay('rec-b', 'b-later');
wait_for(q{SELECT status = 'PAID' FROM qiwi_payin_invoices WHERE bill_id = 'b-later'},
	'pb\'s invoices are still followed');
is(sql(q{SELECT status FROM qiwi_payin_invoices WHERE bill_id = 'a-later'}), 'CREATED',
	'pa\'s are left alone');
sql(q{ALTER USER MAPPING FOR PUBLIC SERVER pa OPTIONS (SET payin_api_key 'rec-key-a2')});
wait_for(q{SELECT status = 'PAID' FROM qiwi_payin_invoices WHERE bill_id = 'a-later'},
	'a new key for pa resumes it');
wait_for(q{SELECT NOT stopped_by_auth FROM qiwi_reconciler_status}, 'and the stop is cleared');
# a paid invoice is followed while a payment of it holds money: the checks
# below count due invoices, so these two must be left alone by then
wait_for(q{SELECT NOT EXISTS (SELECT FROM qiwi_payin_holds WHERE bill_id IN ('a-later', 'b-later'))
	       AND bool_and(notified_at IS NULL) FROM qiwi_payin_invoices WHERE bill_id IN ('a-later', 'b-later')},
	'the paid invoices of this section are no longer followed');

# ---------- qiwi_reconcile_now, the status and the health view ----------
sql(q{SELECT qiwi_payin_create_invoice('now-paid', 2.00, merchant => 'pa');
      SELECT qiwi_payin_create_invoice('now-expired', 3.00, merchant => 'pb');
      SELECT qiwi_payin_create_invoice('now-held', 4.00, capture => 'manual', merchant => 'pa')});
pay('rec-a', 'now-held');
wait_for(q{SELECT EXISTS (SELECT FROM qiwi_payin_holds WHERE bill_id = 'now-held')}, 'a new hold is recorded');
# Rounds and checks an hour apart from now on: what follows happens only
# because of qiwi_reconcile_now.  One round with the new setting schedules
# every followed invoice an hour ahead.
$node->append_conf('postgresql.conf', qq{qiwi.reconcile_interval = '1h'\nqiwi.reconcile_max_interval = '1h'\n});
$node->reload;
wait_for(q{SELECT current_setting('qiwi.reconcile_interval') = '1h'}, 'the setting is reloaded');
# The reconciler reads the setting once its round in flight ends; a round
# with it schedules every followed invoice an hour ahead.  Awaited: such a
# round, each try making them due and waiting for a round started after.
my $scheduled = 0;
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (!$scheduled && time() < $deadline)
{
	my $since = server_now($node);
	sql(q{SELECT qiwi_reconcile_now()});
	last unless $node->poll_query_until('postgres', qq{SELECT last_round_start > '$since' FROM qiwi_reconciler_status});
	$scheduled = sql(q{SELECT bool_and(next_check_at > now() + interval '30 minutes') FROM qiwi_payin_invoices
	                    WHERE status = 'CREATED' OR bill_id = 'now-held'}) eq 't';
}
ok($scheduled, 'a round with the new setting: every followed invoice is next checked in an hour');
is(sql(q{SELECT payin_open_invoices || '/' || payin_due_invoices || '/' || payin_lag || '/' || payin_failing_invoices
	     FROM qiwi_reconciler_health}),
	'4/0/00:00:00/0', 'qiwi_reconciler_health: four Payin invoices followed (three CREATED, one holding money), none due');

pay('rec-a', 'now-paid');
sandbox('/sandbox/payin/sites/rec-b/bills/now-expired/expire');
my $t0 = [gettimeofday];
# (the round that checks them starts after the transaction's start)
my ($since, $due_before, $made_due, $due_after) = split /\n/, sql(q{BEGIN;
	SELECT now();
	SELECT payin_due_invoices FROM qiwi_reconciler_health;
	SELECT qiwi_reconcile_now();
	SELECT payin_due_invoices FROM qiwi_reconciler_health;
	COMMIT});
is($made_due, '4', 'qiwi_reconcile_now counts the Payin invoices it made due');
is("$due_before/$due_after", '0/4', 'qiwi_reconciler_health counts them due at once');
wait_for(q{SELECT string_agg(bill_id || ':' || status, ',' ORDER BY bill_id) = 'now-expired:EXPIRED,now-held:PAID,now-paid:PAID'
	       FROM qiwi_payin_invoices WHERE bill_id LIKE 'now-%'},
	'the reconciler then reaches PAID and EXPIRED');
cmp_ok(tv_interval($t0), '<', 15, 'within seconds, not the hour they were scheduled for');
wait_round_after($node, $since, 'the round is published');
is(sql(q{SELECT last_round_checked || '/' || last_round_changed || '/' || last_round_failed FROM qiwi_reconciler_status}),
	'4/2/0', 'qiwi_reconciler_status counts the Payin invoices checked and changed in the round');
is(sql(qq{SELECT string_agg(bill_id, ',' ORDER BY bill_id) FROM qiwi_payin_invoices WHERE scheduled_at > '$since'}),
	'now-expired,now-held,now-paid,waiting', 'the CREATED ones and the one holding money were checked, not the final ones');

# a row another transaction holds is left to it, not waited for
# (the other session holds the row until the test has a row in
# lock_released; its DO block runs only once it holds the row)
sql(q{CREATE TABLE public.lock_released ()});
my ($lock_out, $lock_err) = ('', '');
my $locker = IPC::Run::start(
	[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') . ' application_name=qiwi_test_locker',
	  '-c', 'BEGIN', '-c', q{SELECT FROM qiwi_payin_invoices WHERE bill_id = 'waiting' FOR UPDATE},
	  '-c', wait_in_sql(q{SELECT EXISTS (SELECT FROM public.lock_released)}), '-c', 'COMMIT' ],
	'>', \$lock_out, '2>', \$lock_err);
wait_for(q{SELECT true FROM pg_stat_activity WHERE application_name = 'qiwi_test_locker' AND query LIKE 'DO %'},
	'another session holds the CREATED invoice');
$t0 = [gettimeofday];
my $skipped = sql(q{BEGIN;
	SELECT qiwi_reconcile_now();
	ROLLBACK});
cmp_ok(tv_interval($t0), '<', 3, 'qiwi_reconcile_now does not wait for it');
is($skipped, '2', 'and counts both followed invoices due: it writes neither, the reconciler claims the held one once it is free');
sql(q{INSERT INTO public.lock_released DEFAULT VALUES});
$locker->finish;
is($lock_err, '', 'the other session held it until told, then committed');
sql(q{DROP TABLE public.lock_released});

# a failing check: counted in the round, shown with its error
sandbox('/sandbox/faults', '{"api": "payin", "bill": "waiting", "status": 503, "times": 1000}');
$since = server_now($node);
is(sql(q{SELECT qiwi_reconcile_now()}), '2', 'qiwi_reconcile_now makes the two followed invoices due');
wait_round_after($node, $since, 'the next round is published');
is(sql(q{SELECT last_round_checked || '/' || last_round_changed || '/' || last_round_failed FROM qiwi_reconciler_status}),
	'2/0/1', 'qiwi_reconciler_status counts the failed Payin check');
is(sql(q{SELECT payin_open_invoices || '/' || payin_due_invoices || '/' || payin_failing_invoices || '/' || payin_max_failures
	     || '/' || (payin_invoice_error = (SELECT last_error FROM qiwi_payin_invoices WHERE bill_id = 'waiting'))
	     || '/' || (payin_invoice_error LIKE '%waiting%')
	     FROM qiwi_reconciler_health}),
	'2/0/1/1/true/true', 'qiwi_reconciler_health shows the failing Payin invoice and its error');
is(sql(q{SELECT open_bills || '/' || failing_bills || '/' || lag FROM qiwi_reconciler_health}), '0/0/00:00:00',
	'and counts it in no bill column');

# falling behind: QIWI slow to answer, the due invoices wait
HTTP::Tiny->new->request('DELETE', "$sandbox_url/sandbox/faults");
sandbox('/sandbox/latency', '{"ms": 4000}');
sql(q{SELECT qiwi_reconcile_now()});
wait_for(q{SELECT payin_due_invoices = 2 AND payin_lag > interval '2 seconds' FROM qiwi_reconciler_health},
	'qiwi_reconciler_health shows the due Payin invoices and their lag while QIWI is slow');
sandbox('/sandbox/latency', '{"ms": 0}');
wait_for(q{SELECT payin_due_invoices = 0 AND payin_lag = interval '0' AND payin_failing_invoices = 0
	       FROM qiwi_reconciler_health},
	'once they are answered, nothing is due or failing');

# ---------- an answer that repeats the invoice's row does not rewrite it ----------
# Every UPDATE of an invoice is logged with the columns it changed.  A
# round's checks are written in one statement per chunk, with a failed one
# among them.
sql(q{SELECT qiwi_payin_create_invoice('same-a', 1.00, merchant => 'pa');
      SELECT qiwi_payin_create_invoice('same-b', 2.00, merchant => 'pa');
      SELECT qiwi_payin_create_invoice('moves', 3.00, merchant => 'pa');
      SELECT qiwi_payin_create_invoice('fails', 4.00, merchant => 'pa')});
$since = server_now($node);
sql(q{SELECT qiwi_reconcile_now()});
wait_round_after($node, $since, 'a round checks the new invoices once');
$node->safe_psql('postgres', q{
CREATE TABLE invoice_writes (bill_id text, changed text);
CREATE FUNCTION log_invoice_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.invoice_writes
	SELECT NEW.bill_id, string_agg(n.key, ',' ORDER BY n.key)
	  FROM jsonb_each(to_jsonb(NEW)) n WHERE n.value IS DISTINCT FROM to_jsonb(OLD) -> n.key;
	RETURN NEW;
END $$;
CREATE TRIGGER log_invoice_write AFTER UPDATE ON qiwi_payin_invoices
	FOR EACH ROW EXECUTE FUNCTION public.log_invoice_write();
});
my $before = sql(q{SELECT string_agg(bill_id || ':' || check_count || ':' || failures, ',' ORDER BY bill_id)
	FROM qiwi_payin_invoices WHERE bill_id IN ('same-a', 'same-b', 'moves', 'fails')});
is($before, 'fails:1:0,moves:1:0,same-a:1:0,same-b:1:0', 'each was checked once');
pay('rec-a', 'moves');
sandbox('/sandbox/faults', '{"api": "payin", "bill": "fails", "status": 503, "times": 1000}');
$since = server_now($node);
# (qiwi_reconcile_now's own write is not the round's)
is(sql(q{BEGIN; SELECT qiwi_reconcile_now(); DELETE FROM invoice_writes; COMMIT}), '6',
	'the four and the two followed before are due');
wait_round_after($node, $since, 'the next round is published');
HTTP::Tiny->new->request('DELETE', "$sandbox_url/sandbox/faults");
is(sql(q{SELECT last_round_checked || '/' || last_round_changed || '/' || last_round_failed FROM qiwi_reconciler_status}),
	'6/1/1', 'six checked, one changed, one failed');
is(sql(q{SELECT string_agg(bill_id || ':' || changed, ' ' ORDER BY bill_id) FROM invoice_writes
	     WHERE bill_id IN ('same-a', 'same-b')}),
	'same-a:check_count,checked_at,next_check_at,scheduled_at same-b:check_count,checked_at,next_check_at,scheduled_at',
	'an unchanged answer: one write per invoice, its check alone');
is(sql(q{SELECT string_agg(bill_id || ':' || n, ',' ORDER BY bill_id)
	     FROM (SELECT bill_id, count(*) AS n FROM invoice_writes GROUP BY bill_id) w}),
	'fails:1,moves:2,now-held:1,same-a:1,same-b:1,waiting:1',
	'one write per unchanged or failed invoice (one holding money too), two for the changed one');
is(sql(q{SELECT count(*) FROM invoice_writes WHERE bill_id = 'moves' AND changed LIKE '%status%'}), '1',
	'the changed answer rewrites its invoice');
is(sql(q{SELECT status || ':' || check_count FROM qiwi_payin_invoices WHERE bill_id = 'moves'}), 'PAID:2',
	'as PAID, and its check is recorded');
is(sql(q{SELECT count(*) FROM qiwi_payin_events WHERE object = 'invoice' AND object_id = 'moves' AND new_status = 'PAID'
	     AND source = 'reconciler'}), '1', 'with its event');
is(sql(q{SELECT failures || ':' || check_count || ':' || (last_error LIKE '%fails%') FROM qiwi_payin_invoices WHERE bill_id = 'fails'}),
	'1:1:true', 'the failed check is counted in the same chunk, with its error');
is(sql(q{SELECT string_agg(bill_id || ':' || check_count || ':' || failures || ':' || (last_error IS NULL)
	       || ':' || (checked_at > now() - interval '1 minute') || ':' || (next_check_at > now() + interval '30 minutes'), ','
	       ORDER BY bill_id) FROM qiwi_payin_invoices WHERE bill_id IN ('same-a', 'same-b')}),
	'same-a:2:0:true:true:true,same-b:2:0:true:true:true', 'and the others beside it are recorded and scheduled');
$node->safe_psql('postgres', q{DROP TRIGGER log_invoice_write ON qiwi_payin_invoices});

$node->stop;
done_testing();
