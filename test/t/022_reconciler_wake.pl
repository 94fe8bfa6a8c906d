# A wake asked for while a round is in flight is not lost.  The round's own
# waits (for the requester's answers) reset the reconciler's latch; whether
# the wake survived that depended on timing (a latch set left over by the
# requester's last answer), and once it did not, the reconciler slept its
# whole interval with items due (a benchmark run waited 31 minutes for a
# round qiwi_reconcile_now asked for).  The reconciler now counts wakes and
# runs another round when one came during the round.  This test makes the
# wake land while QIWI holds a check of the round; it cannot force the
# leftover latch away, so on the old code it failed only sometimes.
use strict;
use warnings;

use JSON::PP;
use QiwiTest;
use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = qiwi_node('wake', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1h'
qiwi.reconcile_max_interval = '1h'
});
sandbox('/sandbox/reset');
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');
wait_true($node, q{SELECT running AND pid IS NOT NULL FROM qiwi_reconciler_status}, 'the reconciler runs');

sub sql { return query_value($node, @_); }

# Requests the sandbox holds unanswered now
sub held
{
	return decode_json(HTTP::Tiny->new->get("$sandbox_url/sandbox/stats")->{content})->{held};
}

# A true value once the sandbox holds n requests, within the tests' timeout
sub wait_held
{
	my ($n) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		return 1 if held() == $n;
		select(undef, undef, undef, 0.05);
	}
	return 0;
}

sql(q{SELECT qiwi_create_bill('wake-a', 1, expires_at => now() + interval '1 day')});
sandbox('/sandbox/faults', encode_json({ times => 1, hold => JSON::PP::true, bill => 'wake-a' }));
my $rounds = sql('SELECT rounds FROM qiwi_reconciler_status');
sql('SELECT qiwi_reconcile_now()');
ok(wait_held(1), "a round is in flight: QIWI holds its check of wake-a");

# While it is: a bill paid at QIWI, and a wake asked for that commits now
sql(q{SELECT qiwi_create_bill('wake-b', 2, expires_at => now() + interval '1 day')});
sandbox('/sandbox/bills/wake-b/pay');
is(sql('SELECT qiwi_reconcile_now() > 0'), 't', 'qiwi_reconcile_now made the bills due while the round was in flight');
is(held(), 1, 'the round was still in flight when the wake committed');
is(sql('SELECT rounds FROM qiwi_reconciler_status'), $rounds, 'and had not been counted');

sandbox('/sandbox/release');
wait_true($node, q{SELECT status = 'PAID' FROM qiwi_bills WHERE bill_id = 'wake-b'},
	'the reconciler runs another round at once for the wake, not an hour later: wake-b is PAID');
cmp_ok(sql('SELECT rounds FROM qiwi_reconciler_status'), '>=', $rounds + 2,
	'two rounds: the one in flight, then the one the wake asked for');

done_testing();
