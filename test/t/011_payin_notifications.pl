# End to end: the sandbox POSTs signed Payin notifications as QIWI does (to
# one URL per site, retried on QIWI's schedule), the receiver stores them
# through psql.  QIWI signs only a PAYMENT's, CAPTURE's or REFUND's id, date
# and amount, so such a notification records no money: it makes its invoice
# due and wakes the reconciler, whose check (scheduled an hour out
# otherwise) records what QIWI answers.  A held payment, its capture at the
# deadline, a one-step payment, a refund; a receiver down meanwhile; a token
# bound and reused (TOKEN notifications are applied); forgeries.
use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

my $src = $ENV{QIWI_SRC} or die "QIWI_SRC is not set";
my $http = HTTP::Tiny->new;

# The reconciler serves postgres and checks each invoice once an hour: what
# happens within seconds is the notifications' doing
my $node = qiwi_node('payin_notifications', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1h'
qiwi.reconcile_max_interval = '1h'
});

# The receiver, on a port of its own: one URL per site, ending with the siteId
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $receiver;
sub start_receiver
{
	$receiver = IPC::Run::start(
		[ 'python3', "$src/test/notification_receiver.py", '--port', $port,
		  '--dbname', $node->connstr('postgres'), '--table', 'qiwi_payin_notifications',
		  '--signature-header', 'Signature', '--site-from-path' ],
		'>', \my $out, '2>', \my $err);
	for (1 .. 100)
	{
		my $r = $http->get("http://127.0.0.1:$port/");
		return if $r->{status} != 599;
		select(undef, undef, undef, 0.1);
	}
	die "the receiver did not start";
}

sandbox('/sandbox/reset');
sandbox('/sandbox/payin/sites', qq{{"siteId": "nt-a", "apiKey": "api-nt-a", "notificationKey": "nk-nt-a-key",
	"notificationUrl": "http://127.0.0.1:$port/qiwi/payin/nt-a", "retryUnitMs": 20}});
$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER pa FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'nt-a', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pa OPTIONS (payin_api_key 'api-nt-a', payin_notification_key 'nk-nt-a-key');
});
start_receiver();

# Whether a Perl condition comes true within the usual timeout
sub poll_until
{
	my ($cond) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		return 1 if $cond->();
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# The buyer pays invoice bill with a test card
sub pay
{
	my ($bill) = @_;
	return sandbox("/sandbox/payin/sites/nt-a/bills/$bill/pay",
		'{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}');
}

# The delivery attempts of the sandbox's PAYMENT notification for invoice bill
sub payment_attempts
{
	my ($bill) = @_;
	my $sent = decode_json($http->get("$sandbox_url/sandbox/payin/notifications")->{content});
	my ($n) = grep { $_->{type} eq 'PAYMENT' && $_->{body}{payment}{billId} eq $bill } @$sent;
	return $n ? scalar @{ $n->{attempts} } : 0;
}

# ---------- two steps: held, then captured by QIWI at the deadline ----------
sql(q{SELECT qiwi_payin_create_invoice('nt-1', 6.00, capture => 'manual', merchant => 'pa')});
pay('nt-1');
wait_for(q{SELECT status = 'PAID' FROM qiwi_payin_invoices WHERE bill_id = 'nt-1'},
	'the PAYMENT notification has the reconciler ask QIWI, whose answer turns the invoice PAID');
is(sql(q{SELECT string_agg(merchant || ':' || site_id || ':' || verified || ':' || applied || ':' || error, ',') FROM qiwi_payin_notifications}),
	'pa:nt-a:true:false:unconfirmed: invoice "nt-1" is due for a check with QIWI, whose answer decides (QIWI signs only a PAYMENT\'s id, date and amount)',
	'the notification was stored, verified with pa\'s key, and recorded no money itself');
is(sql(q{SELECT status || ':' || captured_amount FROM qiwi_payin_payments WHERE bill_id = 'nt-1'}),
	'COMPLETED:0.00', 'its payment is recorded from QIWI\'s answer, held');
is(sql(q{SELECT held FROM qiwi_payin_holds WHERE bill_id = 'nt-1'}), '6.00', 'and listed in the holds view');
is(sql(q{SELECT notified_at IS NULL FROM qiwi_payin_invoices WHERE bill_id = 'nt-1'}), 't',
	'the answer confirmed the notification');
my $payment = sql(q{SELECT payment_id FROM qiwi_payin_payments WHERE bill_id = 'nt-1'});
sandbox("/sandbox/payin/sites/nt-a/payments/$payment/deadline");
wait_for(q{SELECT captured_amount = 6.00 FROM qiwi_payin_payments WHERE bill_id = 'nt-1'},
	'the CAPTURE notification of the deadline capture has the reconciler record the captured money');
is(sql(q{SELECT count(*) FROM qiwi_payin_holds}), '0', 'nothing is held any more');
is(sql(q{SELECT string_agg(object || ':' || coalesce(old_status, '-') || '>' || new_status || ':' || source, ',' ORDER BY id)
	     FROM qiwi_payin_events WHERE object IN ('invoice', 'payment') AND source <> 'call'}),
	'invoice:CREATED>PAID:reconciler,payment:->COMPLETED:reconciler', 'each change an event of the reconciler\'s');
is(sql(q{SELECT count(*) FROM qiwi_payin_events WHERE source = 'notification'}), '0', 'none from a notification');

# ---------- one step, then a refund by call and its notification ----------
sql(q{SELECT qiwi_payin_create_invoice('nt-2', 4.00, merchant => 'pa')});
pay('nt-2');
wait_for(q{SELECT status = 'PAID' FROM qiwi_payin_invoices WHERE bill_id = 'nt-2'}, 'a one-step invoice turns PAID');
is(sql(q{SELECT captured_amount FROM qiwi_payin_payments WHERE bill_id = 'nt-2'}), '4.00',
	'its payment is captured money');
sql(q{SELECT qiwi_payin_refund(payment_id, 'nt-r1', 1.50, merchant => 'pa') FROM qiwi_payin_payments WHERE bill_id = 'nt-2'});
wait_for(q{SELECT true FROM qiwi_payin_notifications WHERE type = 'REFUND'}, 'the REFUND notification arrives');
like(sql(q{SELECT verified || ':' || applied || ':' || coalesce(error, '') FROM qiwi_payin_notifications WHERE type = 'REFUND'}),
	qr/^true:false:unconfirmed: invoice "nt-2" is due for a check with QIWI/,
	'the REFUND notification is verified and only makes its invoice due');
wait_for(q{SELECT refunded_amount = 1.50 FROM qiwi_payin_payments WHERE bill_id = 'nt-2'},
	'the payment\'s refunded money is what QIWI answers');
is(sql(q{SELECT count(*) || ':' || min(amount) || ':' || min(status) FROM qiwi_payin_refunds WHERE refund_id = 'nt-r1'}),
	'1:1.50:COMPLETED', 'the refund is recorded once, for its amount');
is(sql(q{SELECT count(*) FROM qiwi_payin_events WHERE object = 'refund' AND new_status = 'COMPLETED'
          AND object_id = 'nt-r1'}), '1', 'with one event');

# ---------- the receiver down: QIWI's retries deliver later ----------
$receiver->kill_kill;
sql(q{SELECT qiwi_payin_create_invoice('nt-3', 3.00, merchant => 'pa')});
pay('nt-3');
# QIWI tried to deliver, and nothing else would make the invoice due within the hour
ok(poll_until(sub { payment_attempts('nt-3') >= 1 }), 'QIWI tries to deliver the PAYMENT while the receiver is down');
is(sql(q{SELECT status FROM qiwi_payin_invoices WHERE bill_id = 'nt-3'}), 'CREATED', 'nothing arrives while the receiver is down');
start_receiver();
wait_for(q{SELECT status = 'PAID' FROM qiwi_payin_invoices WHERE bill_id = 'nt-3'},
	'a retry on QIWI\'s schedule delivers the PAYMENT once the receiver is back');

# ---------- a token bound by a TOKEN notification pays a later invoice ----------
sql(q{SELECT qiwi_payin_create_invoice('nt-4', 2.00, account => 'buyer-9', bind_token => true, merchant => 'pa')});
pay('nt-4');
wait_for(q{SELECT true FROM qiwi_payin_tokens WHERE account = 'buyer-9'}, 'the TOKEN notification records the token');
sql(q{SELECT qiwi_payin_create_invoice('nt-5', 2.50, account => 'buyer-9', merchant => 'pa')});
sandbox('/sandbox/payin/sites/nt-a/bills/nt-5/pay',
	'{"token": "' . sql(q{SELECT token FROM qiwi_payin_tokens WHERE account = 'buyer-9'}) . '"}');
wait_for(q{SELECT status = 'PAID' FROM qiwi_payin_invoices WHERE bill_id = 'nt-5'},
	'a later invoice for the same account, paid with it, turns PAID');
is(sql(q{SELECT method FROM qiwi_payin_payments WHERE bill_id = 'nt-5'}), 'TOKEN', 'paid with the token, not a card');

# ---------- forgeries are stored, marked, and change nothing ----------
my $body = sql(q{SELECT body FROM qiwi_payin_notifications WHERE type = 'PAYMENT' AND body->'payment'->>'billId' = 'nt-3'});
(my $forged = $body) =~ s/"value": 3/"value": 300/;
my $r = $http->post("http://127.0.0.1:$port/qiwi/payin/nt-a",
	{ content => $forged, headers => { 'Content-Type' => 'application/json', 'Signature' => 'ab' x 32 } });
is($r->{status}, 200, 'the receiver stores a forged notification');
is(sql(q{SELECT verified || ':' || applied || ':' || error FROM qiwi_payin_notifications ORDER BY id DESC LIMIT 1}),
	'false:false:the signature does not match', 'marked as not verified, with the reason');
is(sql(q{SELECT amount FROM qiwi_payin_payments WHERE bill_id = 'nt-3'}), '3.00', 'and the payment is unchanged');
like(slurp_file($node->logfile), qr/^(?!.*nk-nt-a-key)/s, 'the notification key is in no log');

$receiver->kill_kill;
$node->stop;
done_testing();
