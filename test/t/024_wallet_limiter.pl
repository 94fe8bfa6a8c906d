# The Wallet API under the core's rate limiter: with the sandbox's limit
# shortened and qiwi.wallet_rate_requests/_window set just under it, four
# backends reading a wallet's history and the worker's sync of the same
# wallet (its first, due at once) at the same time all finish and QIWI never
# blocks the wallet; then a block forced anyway (the sandbox's limit lowered
# behind the limiter's back): every request of that wallet, from any
# backend, waits for the block to end (the sandbox answers no second 423),
# and a call whose deadline comes first fails at once with QK423 naming the
# block's end.
use strict;
use warnings;

use HTTP::Tiny;
use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);

my $wallet = '79110000024';
my $items = 200;			# 4 pages of 50 a read
# The worker syncs a merchant's last 10 days once (4 pages), then not for an hour
my $node = qiwi_node('wallet_limiter', qq{qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.wallet_sync_days = 10
qiwi.wallet_sync_interval = '1h'
qiwi.wallet_rate_requests = 9
qiwi.wallet_rate_window = '5500ms'
});
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');

# A number of the sandbox's Wallet stats (0 when absent)
sub wallet_stat
{
	my ($name) = @_;
	my $stats = HTTP::Tiny->new->get("$sandbox_url/sandbox/wallet/stats")->{content};
	return $stats =~ /"\Q$name\E":\s*(\d+)/ ? $1 : 0;
}

# Sessions reading the whole history at once, each in the background; their psql objects
sub start_readers
{
	my ($n, $marker) = @_;
	my @psql;
	for (1 .. $n)
	{
		my $psql = $node->background_psql('postgres', on_error_stop => 0);
		$psql->query_safe("\\set VERBOSITY verbose\nSET qiwi.call_deadline = '1h'");
		$psql->query_until(qr/started/, qq{\\echo started
SELECT count(*) AS $marker FROM qiwi_wallet_history(now() - interval '10 days', merchant => 'w1');
});
		push @psql, $psql;
	}
	return @psql;
}

# Each reader's result (its count of items, or its error), once it has finished
sub finish_readers
{
	my (@psql) = @_;
	my @results;
	for my $psql (@psql)
	{
		my ($out) = $psql->query("SELECT 'done'");
		push @results, $psql->{stderr} ne '' ? $psql->{stderr} : (split /\n/, $out)[0];
		$psql->quit;
	}
	return @results;
}

sandbox('/sandbox/wallet/reset', '{}');
sandbox('/sandbox/wallet/wallets', qq{{"number": "$wallet", "token": "wallet-limiter-token"}});
sandbox("/sandbox/wallet/wallets/$wallet/payments", qq{{"count": $items, "days": 9}});
# QIWI's 100 a minute, shortened: 10 history requests in 5 s; the limiter keeps to 9 in 5.5 s
sandbox('/sandbox/wallet/limits', '{"requests": 10, "windowSeconds": 5}');

# The readers' merchant, whose first sync the worker makes (4 pages) and then none for an hour
$node->safe_psql('postgres', qq{
CREATE SERVER w1 FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '$wallet', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER w1 OPTIONS (wallet_token 'wallet-limiter-token');
});
wait_true($node, qq{SELECT items = $items FROM qiwi_wallet_sync_status WHERE merchant = 'w1'},
	'the worker syncs the merchant first');

# ---- four backends and the worker at once: all finish, QIWI never blocks ----
# While the backends wait in the limiter, a merchant of the same wallet
# appears, its sync due: the worker reads the history with them
my $t0 = [gettimeofday];
my @readers = start_readers(4, 'reader');
wait_true($node, q{SELECT count(*) >= 2 FROM pg_stat_activity WHERE wait_event_type = 'Extension'
	AND query LIKE '%AS reader%' AND pid <> pg_backend_pid()},
	'backends wait in the limiter for the wallet\'s turn');
$node->safe_psql('postgres', qq{
CREATE SERVER w_sync FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '$wallet', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER w_sync OPTIONS (wallet_token 'wallet-limiter-token');
});
is_deeply([ finish_readers(@readers) ], [ ($items) x 4 ], 'the four backends read the whole history');
my $finished = query_value($node, 'SELECT clock_timestamp()');
wait_true($node, qq{SELECT items = $items AND synced_until IS NOT NULL AND last_error IS NULL AND blocked_until IS NULL
	FROM qiwi_wallet_sync_status WHERE merchant = 'w_sync'}, 'the worker\'s sync read the whole history too');
is(query_value($node, qq{SELECT read_started_at < '$finished' FROM qiwi_wallet_sync WHERE merchant = 'w_sync'}),
	't', 'having begun before the backends had finished');
is(wallet_stat('payment-history'), 24, 'in 24 requests, 4 pages for each backend and each sync');
is(wallet_stat('blocked'), 0, 'the sandbox blocked none of them (no 423)');
cmp_ok(tv_interval($t0), '>=', 5.5, 'which took more than one window of the limiter');

# ---- a block anyway: every request of the wallet waits for its end ----
# The sandbox's limit is lowered behind the limiter's back, and its clock set
# back so that QIWI's 5-minute block (from the 423's dateTime) ends in 8 s
sandbox('/sandbox/wallet/limits', '{"requests": 1, "windowSeconds": 60, "blockSeconds": 8}');
sandbox('/sandbox/wallet/clock', '{"seconds": -292}');
my @first = start_readers(1, 'blocked_reader');
ok(wait_for_blocked(), 'the sandbox answered the first request with 423');
my $blocked_at = [gettimeofday];
# the sandbox takes requests again as soon as its block ends
sandbox('/sandbox/wallet/limits', '{"requests": 100, "windowSeconds": 60}');
my @more = start_readers(2, 'blocked_reader');
wait_true($node, q{SELECT count(*) = 3 FROM pg_stat_activity WHERE wait_event_type = 'Extension'
	AND query LIKE '%AS blocked_reader%' AND pid <> pg_backend_pid()},
	'three backends wait for the block to end');
my ($out, $err) = ('', '');
$node->psql('postgres', "\\set VERBOSITY verbose\nSET qiwi.call_deadline = '2s';
SELECT * FROM qiwi_wallet_balances('w1')", stdout => \$out, stderr => \$err);
like($err, qr/QK423: QIWI blocks Wallet account "$wallet" until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/,
	'a call whose deadline comes before the block\'s end fails at once with QK423, saying when it ends');
like($err, qr/The request was not sent/, 'and sends nothing');
is_deeply([ finish_readers(@first, @more) ], [ ($items) x 3 ], 'the waiting backends read the whole history after the block');
cmp_ok(tv_interval($blocked_at), '>=', 5, 'once the block had ended');
is(wallet_stat('blocked'), 1, 'no request reached the sandbox during the block: one 423 in all');

# Wait until the sandbox has answered a 423
sub wait_for_blocked
{
	for (1 .. $PostgreSQL::Test::Utils::timeout_default * 20)
	{
		return 1 if wallet_stat('blocked') >= 1;
		select(undef, undef, undef, 0.05);
	}
	return 0;
}

done_testing();
