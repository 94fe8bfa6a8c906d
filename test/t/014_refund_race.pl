# Two refunds of the same money at once never both pass the local check.
# QIWI holds the first refund's request (the sandbox's "hold" fault) while
# a second session refunds 6.00 more of the same 10.00 and waits for the
# payment's (or bill's) row lock; once the first commits, the second is
# refused by the tables in READ COMMITTED, or fails with a serialization
# failure (40001) in REPEATABLE READ and SERIALIZABLE; either way QIWI receives exactly one
# refund request.  For Payin payments and for bills.
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

my $node = qiwi_node('refund_race', "qiwi.database = ''\nqiwi.timeout = 60000\n");
sandbox('/sandbox/reset');
sandbox('/sandbox/payin/sites', '{"siteId": "race", "apiKey": "race-key", "notificationKey": "race-n"}');
$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER pr FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'race', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pr OPTIONS (payin_api_key 'race-key');
});

# A query's single value
sub sql { return query_value($node, @_); }

# The sandbox's counters: of the Bill Payments API, or of Payin (payin/)
sub stats
{
	my ($which) = @_;
	return decode_json(HTTP::Tiny->new->get("$sandbox_url/sandbox/${which}stats")->{content});
}

# Wait until the sandbox holds n requests; true if it came to
sub wait_held
{
	my ($n) = @_;
	foreach (1 .. 1200)
	{
		return 1 if stats('')->{held} == $n;
		usleep(50_000);
	}
	return 0;
}

# Start psql running statements, one by one; its handle and what it prints
sub start_session
{
	my @statements = @_;
	my %s = (out => '', err => '');
	$s{h} = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'),
		  map { ('-c', $_) } ('\set VERBOSITY verbose', @statements) ],
		'>', \$s{out}, '2>', \$s{err});
	return \%s;
}

# Race two refunds of 6.00: $first is held by QIWI, $second waits for the
# lock; what each session printed, and what QIWI received meanwhile
sub race
{
	my (%r) = @_;
	sandbox('/sandbox/faults', encode_json({ times => 1, hold => JSON::PP::true, %{ $r{fault} } }));
	my $before = stats($r{stats});
	my $first = start_session(@{ $r{first} });
	ok(wait_held(1), "$r{name}: QIWI holds the first refund's request");
	my $second = start_session(@{ $r{second} });
	# the second waits for the row the first locked
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity a
		 WHERE a.query LIKE '%$r{second_id}%' AND a.wait_event_type = 'Lock'
		   AND cardinality(pg_blocking_pids(a.pid)) = 1
		   AND (SELECT b.query FROM pg_stat_activity b WHERE b.pid = (pg_blocking_pids(a.pid))[1])
		       LIKE '%$r{first_id}%'}),
		"$r{name}: the second refund waits for the first one's lock");
	sandbox('/sandbox/release');
	$first->{h}->finish;
	$second->{h}->finish;
	chomp($first->{out});
	my $after = stats($r{stats});
	return ($first, $second, $before, $after);
}

# ---------- Payin ----------

# A 10.00 one-step payment, recorded
sub payin_payment
{
	my ($bill) = @_;
	sql("SELECT qiwi_payin_create_invoice('$bill', 10.00, merchant => 'pr')");
	my $paid = decode_json(sandbox("/sandbox/payin/sites/race/bills/$bill/pay",
			'{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}'));
	my $p = $paid->{paymentId};
	is(sql("SELECT status || ' ' || captured_amount FROM qiwi_payin_payment('$p', merchant => 'pr')"),
		'COMPLETED 10.00', "payment $p of $bill is recorded, 10.00 captured");
	return $p;
}

# The isolation levels, and a name for the objects of each
my %short = ('READ COMMITTED' => 'rc', 'REPEATABLE READ' => 'rr', 'SERIALIZABLE' => 'sr');
my @isolations = ('READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE');

foreach my $isolation (@isolations)
{
	my $bill = "race-$short{$isolation}";
	my $p = payin_payment($bill);
	my ($first, $second, $before, $after) = race(
		name => "Payin, $isolation",
		fault => { api => 'payin', payment => $p },
		stats => 'payin/',
		first => [ "SELECT refund_id, amount FROM qiwi_payin_refund('$p', '$bill-1', 6.00, merchant => 'pr')" ],
		first_id => "$bill-1",
		second => [ "BEGIN ISOLATION LEVEL $isolation",
			"SELECT refund_id, amount FROM qiwi_payin_refund('$p', '$bill-2', 6.00, merchant => 'pr')",
			'COMMIT' ],
		second_id => "$bill-2");
	is($first->{out}, "$bill-1|6.00", "Payin, $isolation: the first refund is made");
	if ($isolation eq 'READ COMMITTED')
	{
		like($second->{err}, qr/ERROR:  QK400: could not refund "$bill-2" of Payin payment "\Q$p\E": the amount is more than is left to refund\nDETAIL:  The payment captured 10.00; other refunds returned 6.00; 4.00 is left, this call asks for 6.00\. Nothing was sent to QIWI\./,
			'Payin, READ COMMITTED: the second is refused by the tables, counting the first');
	}
	else
	{
		like($second->{err}, qr/ERROR:  40001: could not serialize access due to concurrent update/,
			"Payin, $isolation: the second fails with a serialization failure");
	}
	is(($after->{byMethod}{PUT} // 0) - ($before->{byMethod}{PUT} // 0), 1,
		"Payin, $isolation: QIWI received one request that moves money");
	is($after->{refunds} - $before->{refunds}, 1, "Payin, $isolation: QIWI made one refund");
	is(sql("SELECT string_agg(refund_id || ' ' || amount, ', ') FROM qiwi_payin_refunds WHERE payment_id = '$p'")
		  . ' / ' . sql("SELECT refunded_amount FROM qiwi_payin_payments WHERE payment_id = '$p'"),
		"$bill-1 6.00 / 6.00", "Payin, $isolation: the tables have the one refund, and the payment counts it");
}

# ---------- bills ----------

foreach my $isolation (@isolations)
{
	my $bill = "race-b-$short{$isolation}";
	sql("SELECT qiwi_create_bill('$bill', 10.00, expires_at => now() + interval '1 day')");
	sandbox("/sandbox/bills/$bill/pay");
	is(sql("SELECT status FROM qiwi_bill_status('$bill')"), 'PAID', "bill $bill is paid, and recorded");
	my ($first, $second, $before, $after) = race(
		name => "bills, $isolation",
		fault => { bill => $bill },
		stats => '',
		first => [ "SELECT refund_id, amount FROM qiwi_refund('$bill', '$bill-1', 6.00)" ],
		first_id => "$bill-1",
		second => [ "BEGIN ISOLATION LEVEL $isolation",
			"SELECT refund_id, amount FROM qiwi_refund('$bill', '$bill-2', 6.00)", 'COMMIT' ],
		second_id => "$bill-2");
	is($first->{out}, "$bill-1|6.00", "bills, $isolation: the first refund is made");
	if ($isolation eq 'READ COMMITTED')
	{
		like($second->{err}, qr/ERROR:  QK400: could not refund "$bill-2" of bill "$bill": the amount is more than is left to refund\nDETAIL:  The bill is for 10.00; other refunds returned 6.00; 4.00 is left, this call asks for 6.00\. Nothing was sent to QIWI\./,
			'bills, READ COMMITTED: the second is refused by the tables, counting the first');
	}
	else
	{
		like($second->{err}, qr/ERROR:  40001: could not serialize access due to concurrent update/,
			"bills, $isolation: the second fails with a serialization failure");
	}
	is($after->{requests} - $before->{requests}, 1, "bills, $isolation: QIWI received one request, the first refund");
	is($after->{refunds} - $before->{refunds}, 1, "bills, $isolation: QIWI made one refund");
	is(sql("SELECT string_agg(refund_id || ' ' || amount, ', ') FROM qiwi_refunds WHERE bill_id = '$bill'"),
		"$bill-1 6.00", "bills, $isolation: the tables have the one refund");
}

done_testing();
