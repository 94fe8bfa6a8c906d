# The reconciler follows Payin invoices: paid, held, captured at the
# deadline, released at the deadline and expired in the sandbox, they reach
# the tables with no SQL call, with events from the reconciler; no
# transaction is open while it asks; a failed check backs off; a Payin key
# QIWI refuses stops only its merchant, until its mapping changes.
use strict;
use warnings;

use QiwiTest;
use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = qiwi_node('payin_reconciler', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.reconcile_concurrency = 4
});
sandbox('/sandbox/reset');
sandbox('/sandbox/payin/sites', '{"siteId": "rec-a", "apiKey": "key-a", "notificationKey": "n-a"}');
sandbox('/sandbox/payin/sites', '{"siteId": "rec-b", "apiKey": "key-b", "notificationKey": "n-b", "deadlineAction": "reverse"}');

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

# Payin API requests the sandbox has served so far
sub payin_requests
{
	my $stats = HTTP::Tiny->new->get("$sandbox_url/sandbox/payin/stats")->{content};
	return $stats =~ /"requests":\s*(\d+)/ ? $1 : die "no Payin stats from the sandbox: $stats";
}

$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER pa FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'rec-a', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pa OPTIONS (payin_api_key 'key-a');
CREATE SERVER pb FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'rec-b', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pb OPTIONS (payin_api_key 'key-b');
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
my $requests = payin_requests();
sleep(3);
cmp_ok(payin_requests() - $requests, '<=', 2,
	'then only the CREATED invoice is asked about (final and captured ones are not followed)');

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
sandbox('/sandbox/payin/sites', '{"siteId": "rec-a", "apiKey": "key-a2", "notificationKey": "n-a"}');
wait_for(q{SELECT stopped_by_auth AND last_error LIKE '%merchant "pa"%' FROM qiwi_reconciler_status},
	'QIWI refusing pa\'s Payin key stops the reconciler for pa');
unlike(slurp_file($node->logfile), qr/key-a\b/, 'the key is not in the log');
pay('rec-a', 'a-later');
pay('rec-b', 'b-later');
wait_for(q{SELECT status = 'PAID' FROM qiwi_payin_invoices WHERE bill_id = 'b-later'},
	'pb\'s invoices are still followed');
is(sql(q{SELECT status FROM qiwi_payin_invoices WHERE bill_id = 'a-later'}), 'CREATED',
	'pa\'s are left alone');
sql(q{ALTER USER MAPPING FOR PUBLIC SERVER pa OPTIONS (SET payin_api_key 'key-a2')});
wait_for(q{SELECT status = 'PAID' FROM qiwi_payin_invoices WHERE bill_id = 'a-later'},
	'a new key for pa resumes it');
wait_for(q{SELECT NOT stopped_by_auth FROM qiwi_reconciler_status}, 'and the stop is cleared');

$node->stop;
done_testing();
