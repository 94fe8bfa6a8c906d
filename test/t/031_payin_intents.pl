# Payin captures and refunds commit their intent ('sending') before their
# PUT, and one whose outcome is not known is asked for by its id, never sent
# again blindly.  A refund's and a capture's PUT held at the sandbox: a
# second session reads the committed intent; the caller rolls back, and the
# reconciler settles the intent from QIWI's answer, with exactly one PUT.
# A refund whose answer is lost stays 'sending'; calling it again with its id
# asks QIWI (GET) and sends no second PUT.  A refund QIWI never got stays
# 'sending' after the reconciler's looks within the grace
# (qiwi.unsent_after: QIWI does not have it), counts
# against the payment's headroom, and a new call with its id sends it then,
# its intent committed again.  Past the grace (set to 3 s), the second look
# that finds a refund or capture QIWI never got makes it UNSENT: it counts
# no more, and a new call with its id sends it once, its intent committed
# again before the PUT.  One QIWI got, whose looks past the grace fail (an
# answer cut short, 503, a malformed answer, a 404 that is not QIWI's "not
# found"), is never UNSENT: it is settled from QIWI's answer.  A repeat
# with its id that QIWI refuses withdraws the intent (in REPEATABLE READ,
# which could not see that, it is refused before sending); a repeat while
# the first call is between its intent and its PUT waits for it and sends
# nothing.  An answer about an intent that the tables refuse (more than its
# payment) fails its check and the reconciler goes on.  The
# reconciler's sweep at its start settles a 'sending' refund QIWI has,
# sending nothing.
use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = qiwi_node('payin_intents', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.timeout = 60000
});
sandbox('/sandbox/payin/sites', '{"siteId": "intent", "apiKey": "intent-key", "notificationKey": "intent-n"}');
$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER pi FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'intent', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pi OPTIONS (payin_api_key 'intent-key');
});

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# How many times the sandbox got a PUT of this path (under the site), held, dropped or answered
sub writes_of
{
	my ($path) = @_;
	return decode_json(HTTP::Tiny->new->get("$sandbox_url/sandbox/writes")->{content})
		->{"PUT /partner/payin/v1/sites/intent/$path"} // 0;
}

# Wait until the sandbox holds n requests
sub wait_held
{
	my ($n, $what) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	usleep(50_000) while stats('')->{held} != $n && time < $deadline;
	is(stats('')->{held}, $n, $what);
}

# The next ask about payment $p (a GET) is answered as QIWI answers for a
# capture or refund it does not have (a call asks so before its PUT)
sub ask_not_found
{
	my ($p) = @_;
	sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $p, method => 'GET', times => 1, status => 404,
		body => encode_json({ serviceName => 'payin-core', errorCode => 'payin.resource.not.found',
			description => 'Resource not found', userMessage => 'Resource not found',
			dateTime => '2026-12-06T10:00:00+03:00', traceId => 'ask-first' }) }));
}

# A call whose requests after its first ask never arrive (dropped before
# QIWI reads them): it returns the row sending
sub never_arrives
{
	my ($p, $call) = @_;
	my ($out, $err) = ('', '');
	ask_not_found($p);
	sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $p, drop => 'before', times => 50 }));
	$node->psql('postgres', "SELECT status FROM $call", stdout => \$out, stderr => \$err);
	HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults");
	return $out;
}

# The sandbox's counters: held requests (''), or Payin's ('payin/')
sub stats
{
	my ($which) = @_;
	return decode_json(HTTP::Tiny->new->get("$sandbox_url/sandbox/${which}stats")->{content});
}
sub puts { return stats('payin/')->{byMethod}{PUT} // 0; }

# A 10.00 payment of a new invoice, paid and recorded: one step, or held (manual)
sub payment
{
	my ($bill, $capture) = @_;
	sql("SELECT qiwi_payin_create_invoice('$bill', 10.00, capture => '$capture', merchant => 'pi')");
	my $paid = decode_json(sandbox("/sandbox/payin/sites/intent/bills/$bill/pay",
			'{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}'));
	my $p = $paid->{paymentId};
	is(sql("SELECT status FROM qiwi_payin_payment('$p', merchant => 'pi')"), 'COMPLETED', "payment of $bill is recorded");
	return $p;
}

# The events of a capture or refund: old>new:source, in order
sub events_of
{
	my ($object, $id) = @_;
	return sql(qq{SELECT string_agg(coalesce(old_status, '') || '>' || new_status || ':' || source, ',' ORDER BY id)
		FROM qiwi_payin_events WHERE object = '$object' AND object_id = '$id'});
}

# Run statements in a psql of its own, its PUT held at the sandbox (a fault
# for payment $p's PUTs); the session, once the PUT is held
sub start_held
{
	my ($p, $statements) = @_;
	sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $p, method => 'PUT', hold => JSON::PP::true, times => 1 }));
	my %s = (out => '', err => '');
	$s{h} = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'), '-c', $statements ],
		'>', \$s{out}, '2>', \$s{err});
	wait_held(1, "the PUT for $p is at the sandbox, held unanswered");
	return \%s;
}

# ---------- a refund's intent, its caller rolled back ----------
my $a = payment('intent-a', 'auto');
my ($puts, $refunds) = (puts(), stats('payin/')->{refunds});
my $s = start_held($a, qq{BEGIN; SELECT status FROM qiwi_payin_refund('$a', 'a-1', 3.00, 'RUB', merchant => 'pi'); ROLLBACK});
is(sql("SELECT status || ' ' || amount FROM qiwi_payin_refunds WHERE refund_id = 'a-1'"), 'sending 3.00',
	'another session reads the refund\'s intent, committed before the PUT was answered');
sandbox('/sandbox/release');
$s->{h}->finish;
like($s->{out}, qr/^COMPLETED$/m, 'the call got QIWI\'s answer, then its transaction rolled back');
wait_for("SELECT status = 'COMPLETED' FROM qiwi_payin_refunds WHERE refund_id = 'a-1'",
	'the reconciler settles the committed intent from QIWI\'s answer');
is(puts() - $puts, 1, 'the sandbox saw exactly one PUT');
is(sql("SELECT refunded_amount FROM qiwi_payin_payments WHERE payment_id = '$a'"), '3.00',
	'the payment counts the refund');
is(events_of('refund', 'a-1'), '>sending:call,sending>COMPLETED:reconciler',
	'the intent from the call, COMPLETED from the reconciler (the call\'s own record rolled back)');

# ---------- a capture's intent, its caller rolled back ----------
my $b = payment('intent-b', 'manual');
$puts = puts();
$s = start_held($b, qq{BEGIN; SELECT status FROM qiwi_payin_capture('$b', 'b-1', merchant => 'pi'); ROLLBACK});
is(sql("SELECT status || ' ' || (amount IS NULL) FROM qiwi_payin_captures WHERE capture_id = 'b-1'"), 'sending true',
	'another session reads the capture\'s intent (its amount not known yet)');
sandbox('/sandbox/release');
$s->{h}->finish;
like($s->{out}, qr/^COMPLETED$/m, 'the capture was made, then its transaction rolled back');
wait_for("SELECT status = 'COMPLETED' AND amount = 10.00 FROM qiwi_payin_captures WHERE capture_id = 'b-1'",
	'the reconciler settles the capture from QIWI\'s answer');
is(puts() - $puts, 1, 'the sandbox saw exactly one capture PUT');
is(sql("SELECT captured_amount FROM qiwi_payin_payments WHERE payment_id = '$b'"), '10.00',
	'the payment counts the capture');

# ---------- a lost answer: the repeated call asks, sends no second PUT ----------
my $c = payment('intent-c', 'auto');
$puts = puts();
# the call's ask first (a GET) is answered as QIWI does for a refund it
# does not have; then every request about the payment takes effect and
# loses its answer: the PUT and the call's asks after it
ask_not_found($c);
sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $c, drop => 'after', times => 50 }));
my ($out, $err) = ('', '');
$node->psql('postgres', "SELECT status FROM qiwi_payin_refund('$c', 'c-1', 4.00, 'RUB', merchant => 'pi')",
	stdout => \$out, stderr => \$err);
like($err, qr/WARNING:.*It stays 'sending'/s, 'the call warns that the outcome is not known');
is($out, 'sending', 'and returns the refund as sending');
HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults");
is(sql("SELECT (qiwi_payin_refund('$c', 'c-1', 4.00, 'RUB', merchant => 'pi')).status"), 'COMPLETED',
	'the repeated call with its id gets the refund QIWI made');
is(puts() - $puts, 1, 'the sandbox saw exactly one PUT for it');
is(sql("SELECT status || ' ' || amount FROM qiwi_payin_refunds WHERE refund_id = 'c-1'"), 'COMPLETED 4.00',
	'the refund is recorded once');

# ---------- a PUT QIWI never got: counted as in flight, sent by a new call ----------
my $d = payment('intent-d', 'auto');
$puts = puts();
$refunds = stats('payin/')->{refunds};
ask_not_found($d);
sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $d, drop => 'before', times => 50 }));
$node->psql('postgres', "SELECT status FROM qiwi_payin_refund('$d', 'd-1', 3.00, 'RUB', merchant => 'pi')",
	stdout => \$out, stderr => \$err);
is($out, 'sending', 'a refund whose requests never arrive stays sending');
HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults");
wait_for("SELECT last_error LIKE 'QIWI does not have this refund%' FROM qiwi_payin_refunds WHERE refund_id = 'd-1'",
	'the reconciler asked QIWI for it by its id: QIWI does not have it, it stays sending');
wait_for("SELECT check_count >= 2 FROM qiwi_payin_refunds WHERE refund_id = 'd-1'",
	'the reconciler looked again, QIWI still not having it');
is(sql("SELECT status FROM qiwi_payin_refunds WHERE refund_id = 'd-1'"), 'sending',
	'two looks within qiwi.unsent_after (an hour) leave it sending');
is(puts() - $puts, 0, 'and did not send it');
$node->psql('postgres', "SELECT qiwi_payin_refund('$d', 'd-2', 8.00, 'RUB', merchant => 'pi')",
	stdout => \$out, stderr => \$err);
like($err, qr/other refunds returned 3\.00; 7\.00 is left, this call asks for 8\.00\. Nothing was sent to QIWI\./,
	'another refund\'s headroom counts the one in flight');
is(sql("SELECT (qiwi_payin_refund('$d', 'd-1', 3.00, 'RUB', merchant => 'pi')).status"), 'COMPLETED',
	'a new call with its id, QIWI not having it, sends it');
is(puts() - $puts, 1, 'one PUT arrived in all');
is((stats('payin/')->{refunds}) - $refunds, 1, 'QIWI made one refund');
is(events_of('refund', 'd-1'), '>sending:call,sending>sending:call,sending>COMPLETED:call',
	'its events: its intent committed again before the new PUT');

# ---------- past the grace: UNSENT ----------
$node->safe_psql('postgres', q{ALTER SYSTEM SET qiwi.unsent_after = '3s'; SELECT pg_reload_conf()});

# a refund QIWI never got: UNSENT at the second look past the grace, which frees its money
my $e = payment('intent-e', 'auto');
$refunds = stats('payin/')->{refunds};
is(never_arrives($e, "qiwi_payin_refund('$e', 'e-1', 3.00, 'RUB', merchant => 'pi')"), 'sending',
	'a refund whose requests never arrive stays sending');
wait_for("SELECT status = 'UNSENT' FROM qiwi_payin_refunds WHERE refund_id = 'e-1'",
	'past the grace, QIWI still not having it, the refund is UNSENT');
like(sql("SELECT last_error FROM qiwi_payin_refunds WHERE refund_id = 'e-1'"),
	qr/^QIWI does not have this refund \(payin\.resource\.not\.found\) at two looks 3 s or more after its intent was committed: it never got it, nothing moved/,
	'last_error says why');
is(events_of('refund', 'e-1'), '>sending:call,sending>UNSENT:reconciler', 'its events');
is(sql(q{SELECT max(changed_at) - min(changed_at) >= interval '3s' FROM qiwi_payin_events
	WHERE object = 'refund' AND object_id = 'e-1'}), 't', 'not before the grace');
is(stats('payin/')->{refunds} - $refunds, 0, 'QIWI made no refund');
is(sql("SELECT (qiwi_payin_refund('$e', 'e-2', 8.00, 'RUB', merchant => 'pi')).status"), 'COMPLETED',
	'another refund may take its money: 8.00 of 10.00, where 7.00 was left while it was sending');
$node->psql('postgres', "SELECT qiwi_payin_refund('$e', 'e-1', 3.00, 'RUB', merchant => 'pi')",
	stdout => \$out, stderr => \$err);
like($err, qr/other refunds returned 8\.00; 2\.00 is left, this call asks for 3\.00\. Nothing was sent to QIWI\./,
	'sent again with its id, it counts against what is left like a new refund');
is(sql("SELECT status FROM qiwi_payin_refunds WHERE refund_id = 'e-1'") . ' ' . writes_of("payments/$e/refunds/e-1"),
	'UNSENT 1', 'and stays UNSENT, not sent');

# a capture QIWI never got: UNSENT; a new call with its id commits its intent again, then sends it once
my $g = payment('intent-g', 'manual');
my $captures = stats('payin/')->{captures};
is(never_arrives($g, "qiwi_payin_capture('$g', 'g-1', merchant => 'pi')"), 'sending',
	'a capture whose requests never arrive stays sending');
wait_for("SELECT status = 'UNSENT' FROM qiwi_payin_captures WHERE capture_id = 'g-1'",
	'past the grace, QIWI still not having it, the capture is UNSENT');
is(events_of('capture', 'g-1'), '>sending:call,sending>UNSENT:reconciler', 'its events');
is(writes_of("payments/$g/captures/g-1"), 1, 'the sandbox saw the one PUT it dropped');
# the call's ask (GET), then its PUT, each held
sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $g, hold => JSON::PP::true, times => 2 }));
$s = { out => '', err => '' };
$s->{h} = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'), '-c',
	"SELECT status FROM qiwi_payin_capture('$g', 'g-1', merchant => 'pi')" ], '>', \$s->{out}, '2>', \$s->{err});
wait_held(1, 'a new call with its id asks QIWI first');
is(sql("SELECT status FROM qiwi_payin_captures WHERE capture_id = 'g-1'"), 'UNSENT', 'nothing committed yet');
sandbox('/sandbox/release');
wait_held(1, 'QIWI does not have it: the call sends its PUT, held');
is(sql("SELECT status || ' ' || (checked_at IS NULL) || ' ' || check_count || ' ' || (last_error IS NULL) || ' ' || count(*) OVER ()
	FROM qiwi_payin_captures WHERE capture_id = 'g-1'"), 'sending true 0 true 1',
	'another session reads its intent, committed again over its row before the PUT, looked at afresh');
is(events_of('capture', 'g-1'), '>sending:call,sending>UNSENT:reconciler,UNSENT>sending:call', 'an event says so');
sandbox('/sandbox/release');
$s->{h}->finish;
like($s->{out}, qr/^COMPLETED$/m, 'the call gets QIWI\'s answer');
is(writes_of("payments/$g/captures/g-1") . ' ' . (stats('payin/')->{captures} - $captures), '2 1',
	'the sandbox got one more PUT: QIWI made one capture');
is(sql("SELECT status || ' ' || amount FROM qiwi_payin_captures WHERE capture_id = 'g-1'") . ' '
	. sql("SELECT captured_amount FROM qiwi_payin_payments WHERE payment_id = '$g'"), 'COMPLETED 10.00 10.00',
	'recorded over its row, and the payment counts it');
is(events_of('capture', 'g-1'), '>sending:call,sending>UNSENT:reconciler,UNSENT>sending:call,sending>COMPLETED:call',
	'its events');

# a refund QIWI never got, UNSENT, sent again by a new call with its id: once
my $f = payment('intent-f', 'auto');
$refunds = stats('payin/')->{refunds};
is(never_arrives($f, "qiwi_payin_refund('$f', 'f-1', 4.00, 'RUB', merchant => 'pi')"), 'sending',
	'another refund whose requests never arrive stays sending');
wait_for("SELECT status = 'UNSENT' FROM qiwi_payin_refunds WHERE refund_id = 'f-1'", 'it becomes UNSENT');
my $f_puts = writes_of("payments/$f/refunds/f-1");
is(sql("SELECT (qiwi_payin_refund('$f', 'f-1', 4.00, 'RUB', merchant => 'pi')).status"), 'COMPLETED',
	'a new call with its id sends it');
is((writes_of("payments/$f/refunds/f-1") - $f_puts) . ' ' . (stats('payin/')->{refunds} - $refunds), '1 1',
	'one more PUT: QIWI made one refund');
is(sql("SELECT count(*) || ' ' || min(status) FROM qiwi_payin_refunds WHERE refund_id = 'f-1'") . ' '
	. sql("SELECT refunded_amount FROM qiwi_payin_payments WHERE payment_id = '$f'"), '1 COMPLETED 4.00',
	'recorded over its row; the payment counts it');
is(events_of('refund', 'f-1'), '>sending:call,sending>UNSENT:reconciler,UNSENT>sending:call,sending>COMPLETED:call',
	'its events');

# a refund QIWI got, whose every look past the grace fails: never UNSENT
my $h = payment('intent-h', 'auto');
$puts = puts();
$s = start_held($h, qq{BEGIN; SELECT status FROM qiwi_payin_refund('$h', 'h-1', 2.00, 'RUB', merchant => 'pi'); ROLLBACK});
# (an answer cut short: a connection closed before any answer is tried again by libcurl)
for my $fault ({ drop => 'mid-answer' }, { status => 503 }, { status => 200, body => '{"refundId": "h-1"}' },
	{ status => 404, body => '<html>Not Found</html>' })
{
	sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $h, times => 2, %$fault }));
}
sandbox('/sandbox/release');
$s->{h}->finish;
like($s->{out}, qr/^COMPLETED$/m, 'QIWI made the refund, then the call\'s transaction rolled back');
wait_for("SELECT status = 'COMPLETED' FROM qiwi_payin_refunds WHERE refund_id = 'h-1'",
	'the reconciler settles it from QIWI\'s answer once one arrives');
is(sql("SELECT failures FROM qiwi_payin_refunds WHERE refund_id = 'h-1'"), '8',
	'after eight looks that failed, two of each: an answer cut short, 503, a malformed answer, a 404 that is not QIWI\'s "not found"');
is(sql(q{SELECT max(changed_at) - min(changed_at) >= interval '3s' FROM qiwi_payin_events
	WHERE object = 'refund' AND object_id = 'h-1'}), 't', 'they went on past the grace');
is(events_of('refund', 'h-1'), '>sending:call,sending>COMPLETED:reconciler', 'it was never UNSENT');
is(puts() - $puts, 1, 'one PUT in all');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET qiwi.unsent_after; SELECT pg_reload_conf()});

# ---------- a repeat QIWI refuses: its intent is withdrawn ----------
# A capture QIWI never got stays 'sending'; the payment is captured under
# another id meanwhile; the repeat with the first id asks QIWI (which does
# not have it) and sends it: QIWI refuses, and the intent is withdrawn
# (its worker does not wait for a lock the repeat holds on the row).
my $k = payment('intent-k', 'manual');
ask_not_found($k);
sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $k, drop => 'before', times => 50 }));
$node->psql('postgres', "SELECT status FROM qiwi_payin_capture('$k', 'k-1', merchant => 'pi')",
	stdout => \$out, stderr => \$err);
is($out, 'sending', 'a capture whose requests never arrive stays sending');
HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults");
is(sql("SELECT (qiwi_payin_capture('$k', 'k-2', merchant => 'pi')).status"), 'COMPLETED',
	'the payment is captured under another id');
$node->psql('postgres', "SET qiwi.timeout = 5000; SELECT qiwi_payin_capture('$k', 'k-1', merchant => 'pi')",
	stdout => \$out, stderr => \$err);
like($err, qr/ERROR:  could not capture .*Successful capture already done for this payment/,
	'the repeat fails with QIWI\'s refusal');
is(sql("SELECT count(*) FROM qiwi_payin_captures WHERE capture_id = 'k-1'"), '0', 'and its intent is withdrawn');
is(events_of('capture', 'k-1'), '>sending:call,sending>sending:call,sending>REFUSED:call',
	'its events: the repeat committed its intent again, then QIWI refused it');
# a repeat in REPEATABLE READ, whose snapshot could not see a withdrawal
# committed apart, is refused before anything is sent
ask_not_found($k);
sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $k, drop => 'before', times => 50 }));
$node->psql('postgres', "SELECT status FROM qiwi_payin_capture('$k', 'k-3', merchant => 'pi')",
	stdout => \$out, stderr => \$err);
is($out, 'sending', 'another capture whose requests never arrive stays sending');
HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults");
# (due in no round: no check of the reconciler's writes its row meanwhile)
sql(q{UPDATE qiwi_payin_captures SET next_check_at = 'infinity' WHERE capture_id = 'k-3'});
$puts = puts();
$node->psql('postgres', "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT qiwi_payin_capture('$k', 'k-3', merchant => 'pi'); COMMIT",
	stdout => \$out, stderr => \$err);
like($err, qr/cannot capture "k-3" of Payin payment "[^"]+" in a REPEATABLE READ or SERIALIZABLE transaction/,
	'its repeat in REPEATABLE READ is refused');
is(puts() - $puts, 0, 'before anything is sent');
is(sql("SELECT status FROM qiwi_payin_captures WHERE capture_id = 'k-3'"), 'sending', 'its intent stays');
sql(q{DELETE FROM qiwi_payin_captures WHERE capture_id = 'k-3'});

# ---------- a repeat while the first call is between its intent and its PUT ----------
# The first call's intent is committed (its worker waited for another
# session's row meanwhile) and the call is stopped before it locks the row
# to send it; a
# repeat with its id, rolled back, sends no PUT of its own: it waits for
# the first call to end, then finds its capture.  The payment is not
# recorded here, so no lock of its row orders the two calls.
my $m = payment('intent-m', 'manual');
wait_for(q{SELECT status <> 'CREATED' FROM qiwi_payin_invoices WHERE bill_id = 'intent-m'},
	'the reconciler settled the invoice (it records its payment no more)');
sql("DELETE FROM qiwi_payin_payments WHERE payment_id = '$m'");
$puts = puts();
my $holder = $node->background_psql('postgres');
# a row of its id inserted and not committed: the intent's INSERT waits for it
$holder->query_safe(qq{BEGIN; INSERT INTO qiwi_payin_captures (merchant, payment_id, capture_id, status)
	VALUES ('pi', '$m', 'm-1', 'sending')});
my %first = (out => '', err => '');
$first{h} = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'), '-c',
		"SELECT status FROM qiwi_payin_capture('$m', 'm-1', merchant => 'pi')" ], '>', \$first{out}, '2>', \$first{err});
wait_for(q{SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'qiwi_kassa intent' AND wait_event_type = 'Lock')},
	'the first call\'s intent worker waits for that row');
my $first_pid = sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'
	AND query LIKE 'SELECT status FROM qiwi_payin_capture(%''m-1''%'});
ok(kill('STOP', $first_pid), 'the first call is stopped');
$holder->query_safe('ROLLBACK');
$holder->quit;
wait_for(q{SELECT EXISTS (SELECT FROM qiwi_payin_captures WHERE capture_id = 'm-1' AND status = 'sending')},
	'the first call\'s intent is committed');
my %second = (out => '', err => '');
$second{h} = IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'), '-c',
		"BEGIN; SELECT status FROM qiwi_payin_capture('$m', 'm-1', merchant => 'pi'); ROLLBACK" ],
	'>', \$second{out}, '2>', \$second{err});
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
usleep(50_000) until time > $deadline || puts() > $puts || sql(q{SELECT EXISTS (SELECT FROM pg_stat_activity
	WHERE wait_event = 'advisory' AND query LIKE '%ROLLBACK%' AND pid <> pg_backend_pid())}) eq 't';
ok(kill('CONT', $first_pid), 'the first call goes on');
$first{h}->finish;
$second{h}->finish;
like($first{out}, qr/^COMPLETED$/m, 'the first call made the capture');
like($second{out}, qr/^COMPLETED$/m, 'the repeat got it');
is(puts() - $puts, 1, 'one capture PUT in all');

# ---------- an answer the tables refuse fails its item's check, not the reconciler ----------
# QIWI answers the GET of a capture in flight with more money than its
# payment holds: the capture is not recorded, its check fails saying why,
# and the reconciler goes on.
my $n = payment('intent-n', 'manual');
sql(qq{INSERT INTO qiwi_payin_captures (merchant, payment_id, capture_id, status) VALUES ('pi', '$n', 'n-1', 'sending')});
my $reconciler = sql(q{SELECT pid FROM qiwi_reconciler_status});
sandbox('/sandbox/faults', encode_json({ api => 'payin', payment => $n, status => 200, times => 1000,
	body => encode_json({ captureId => 'n-1', paymentId => $n, createdDateTime => '2023-02-17T14:50:44+03:00',
		amount => { currency => 'RUB', value => '50.00' },
		status => { value => 'COMPLETED', changedDateTime => '2023-02-17T14:50:44+03:00' } }) }));
wait_for(q{SELECT last_error LIKE '%but the payment is for 10.00 RUB%' FROM qiwi_payin_captures WHERE capture_id = 'n-1'},
	'the capture\'s check failed, saying why');
HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults");
is(sql(q{SELECT status FROM qiwi_payin_captures WHERE capture_id = 'n-1'}), 'sending', 'the capture is not recorded');
is(sql(q{SELECT pid FROM qiwi_reconciler_status}), $reconciler, 'the reconciler goes on');
sql(q{DELETE FROM qiwi_payin_captures WHERE capture_id = 'n-1'});

# ---------- the sweep at the reconciler's start ----------
# A refund QIWI made, whose answer this database lost (as a promoted
# asynchronous standby that had only its intent would), due in no round:
# the restarted reconciler's sweep asks QIWI for it by its id before
# anything else, and sends nothing.
sql(q{UPDATE qiwi_payin_refunds SET status = 'sending', next_check_at = 'infinity' WHERE refund_id = 'a-1'});
$puts = puts();
my $log_offset = -s $node->logfile;
my $pid = sql(q{SELECT pid FROM qiwi_reconciler_status});
sql(qq{SELECT pg_terminate_backend($pid)});
wait_for(qq{SELECT running AND pid <> $pid FROM qiwi_reconciler_status}, 'the killed reconciler is back');
wait_for(q{SELECT status = 'COMPLETED' FROM qiwi_payin_refunds WHERE refund_id = 'a-1'},
	'its sweep settled the refund from QIWI\'s answer');
like(substr(slurp_file($node->logfile), $log_offset),
	qr/swept [1-9]\d* items? sent with an outcome not known before sending anything new: [1-9]\d* changed/,
	'the sweep ran first and said how many it swept');
is(puts(), $puts, 'nothing was sent again');

done_testing();
