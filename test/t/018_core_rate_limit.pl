# The core's rate limiter (src/core/ratelimit.c), through the test module
# qiwi_core_test: a full table of accounts refuses one more, then reuses an
# idle one; four backends at once never exceed the limit in any window; two
# accounts (and two limits) are counted apart; a wait that would outlast
# statement_timeout or qiwi.call_deadline fails at once with QK429; a cancel
# ends a wait with 57014; a backend that exits, waiting or after passing,
# leaves nothing held; the exchange passes the limiter before each attempt
# (its retries included) and a batch before each run of requests.
use strict;
use warnings;

use IPC::Run;
use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);

my $accounts = 16;
my $node = qiwi_node('rate_limit', "qiwi.database = ''\nqiwi.rate_limit_accounts = $accounts\n");
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_core_test');

# Run SQL in a new session with verbose errors; its stderr and how long it took
sub run_sql
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $t0 = [gettimeofday];
	$node->psql('postgres', "\\set VERBOSITY verbose\n$sql", stdout => \$out, stderr => \$err);
	return ($err, tv_interval($t0), $out);
}

# A pass in a new session, whose calls may wait an hour: when it was let
# through (µs of the limiter's clock)
sub pass
{
	my ($name, $account, $requests, $window_ms) = @_;
	return query_value($node, "SET qiwi.call_deadline = '1h';
SELECT qiwi_core_test_rate_pass('$name', '$account', $requests, $window_ms)");
}

# The query of the backend waiting in the limiter (wait event "Extension") with the text $marker
sub waiting
{
	my ($marker) = @_;
	return qq{FROM pg_stat_activity WHERE wait_event_type = 'Extension'
		AND wait_event = 'Extension' AND query LIKE '%$marker%' AND pid <> pg_backend_pid()};
}

# ---- a full table refuses one more account, then forgets an idle one ----
my ($err) = run_sql(qq{DO \$\$
BEGIN
	FOR i IN 1..$accounts LOOP
		PERFORM qiwi_core_test_rate_pass('full', 'a' || i, 1, 3000);
	END LOOP;
	PERFORM qiwi_core_test_rate_pass('full', 'one more', 1, 3000);
END \$\$});
like($err, qr/53400: too many accounts of rate-limited QIWI APIs at once/,
	'an account beyond qiwi.rate_limit_accounts, all of them busy, is refused (53400)');
like($err, qr/HINT:  Raise qiwi.rate_limit_accounts/, 'the error names the setting to raise');
$node->safe_psql('postgres', q{
CREATE FUNCTION passes_now(account text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
	PERFORM qiwi_core_test_rate_pass('full', account, 1, 3000);
	RETURN true;
EXCEPTION WHEN configuration_limit_exceeded THEN
	RETURN false;
END $$});
wait_true($node, "SELECT passes_now('one more')",
	'once the accounts are idle (a window old), one of them makes room for a new account');

# ---- four backends at once never exceed the limit in any window ----
my ($limit, $window_us, $sessions, $each) = (5, 1_000_000, 4, 10);
$node->safe_psql('postgres', 'CREATE TABLE passes (pid int, at bigint)');
my @psql;
for my $s (1 .. $sessions)
{
	my $psql = $node->background_psql('postgres');
	$psql->query_safe("SET qiwi.call_deadline = '1h'");
	$psql->query_until(qr/started/, qq{\\echo started
INSERT INTO passes SELECT pg_backend_pid(), qiwi_core_test_rate_pass('many', 'acct', $limit, @{[ $window_us / 1000 ]})
	FROM generate_series(1, $each);
});
	push @psql, $psql;
}
wait_true($node, 'SELECT count(*) >= 3 ' . waiting('INSERT INTO passes'),
	'three backends or more wait in the limiter at once');
for my $psql (@psql)
{
	my ($out, $failed) = $psql->query("SELECT 'done'");
	is($failed, 0, 'a backend passed all its turns') or diag($psql->{stderr});
	$psql->quit;
}
my @at = split /\n/, query_value($node, 'SELECT at FROM passes ORDER BY at');
is(scalar(@at), $sessions * $each, 'every pass is recorded');
is(query_value($node, 'SELECT count(DISTINCT pid) FROM passes'), $sessions, 'by four backends');
my @crowded = grep { $at[ $_ + $limit ] - $at[$_] < $window_us } 0 .. $#at - $limit;
is_deeply(\@crowded, [], "no window of 1 s holds more than $limit passes")
  or diag(join(', ', map { "passes $_ to " . ($_ + $limit) . ': ' . ($at[ $_ + $limit ] - $at[$_]) . ' µs' } @crowded));

# ---- two accounts, and two limits, are counted apart ----
my $long_ms = 600_000;
my $out;
($err, undef, $out) = run_sql(qq{SET statement_timeout = '30s';
SELECT qiwi_core_test_rate_pass('apart', 'x', 2, $long_ms) < qiwi_core_test_rate_pass('apart', 'x', 2, $long_ms),
	qiwi_core_test_rate_pass('apart', 'y', 2, $long_ms) < qiwi_core_test_rate_pass('apart', 'y', 2, $long_ms),
	qiwi_core_test_rate_pass('other', 'x', 2, $long_ms) > 0});
is($err, '', 'account y and limit "other" pass at once after account x used its limit');
is($out, 't|t|t', 'six passes, in order');

# ---- a wait that would outlast the call's time fails at once ----
my $elapsed;
($err, $elapsed) = run_sql(qq{SET statement_timeout = '20s'; SET qiwi.call_deadline = '1h';
SELECT qiwi_core_test_rate_pass('apart', 'x', 2, $long_ms)});
like($err, qr/QK429: the apart rate limit of account "x" leaves this call no time before statement_timeout/,
	'account x is counted: its third pass would wait past statement_timeout (QK429)');
like($err, qr/The request was not sent/, 'the DETAIL says nothing was sent');
cmp_ok($elapsed, '<', 20, 'the error comes before statement_timeout, not after waiting it out');
($err, $elapsed) = run_sql(qq{SET qiwi.call_deadline = '20s';
SELECT qiwi_core_test_rate_pass('apart', 'y', 2, $long_ms)});
like($err, qr/QK429: .* no time before qiwi.call_deadline/, 'account y too, past qiwi.call_deadline');
cmp_ok($elapsed, '<', 20, 'the error comes before qiwi.call_deadline');
($err, undef, $out) = run_sql(q{SET statement_timeout = '30s';
SELECT qiwi_core_test_rate_pass('short', 'z', 1, 2000) + 2000000 <= qiwi_core_test_rate_pass('short', 'z', 1, 2000)});
is("$err$out", 't', 'a wait that ends in time is waited out: the second pass comes a window after the first');

# ---- a cancel ends a wait promptly, with 57014 ----
my $psql = $node->background_psql('postgres', on_error_stop => 0);
$psql->query_safe("\\set VERBOSITY verbose\nSET qiwi.call_deadline = '1h'");
$psql->query_until(qr/started/, qq{\\echo started
SELECT qiwi_core_test_rate_pass('apart', 'x', 2, $long_ms) AS cancel_me;
});
wait_true($node, 'SELECT count(*) = 1 ' . waiting('cancel_me'), 'a backend waits for account x\'s turn');
my $t0 = [gettimeofday];
$node->safe_psql('postgres', 'SELECT pg_cancel_backend(pid) ' . waiting('cancel_me'));
$psql->query("SELECT 'after the cancel'");
my $cancel_s = tv_interval($t0);
like($psql->{stderr}, qr/57014: canceling statement due to user request/, 'pg_cancel_backend ends the wait with 57014');
cmp_ok($cancel_s, '<', 30, 'promptly: the wait had about 600 s to go');
diag(sprintf('the cancel ended the wait in %.0f ms', $cancel_s * 1000));
$psql->quit;

# ---- a backend that exits while waiting holds nothing ----
my $first = pass('leave', 'w', 1, 10_000);
my ($stdout, $stderr) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', "SET qiwi.call_deadline = '1h'",
	  '-c', "SELECT qiwi_core_test_rate_pass('leave', 'w', 1, 10000) AS terminate_me" ],
	'>', \$stdout, '2>', \$stderr);
wait_true($node, 'SELECT count(*) = 1 ' . waiting('terminate_me'), 'a backend waits for account w\'s turn');
$node->safe_psql('postgres', 'SELECT pg_terminate_backend(pid) ' . waiting('terminate_me'));
wait_true($node, q{SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE '%terminate_me%' AND pid <> pg_backend_pid()},
	'the waiting backend is gone');
$h->finish;
like($stderr, qr/terminating connection due to administrator command/, 'pg_terminate_backend ended its wait');
my $next = pass('leave', 'w', 1, 10_000);
cmp_ok($next - $first, '>=', 10_000_000, 'the next pass waits for the window of the first');
cmp_ok($next - $first, '<', 20_000_000, 'and no longer: the terminated waiter took no turn');

# ---- a backend that exits after passing leaves its passes to expire ----
$psql = $node->background_psql('postgres');
my ($e1, $e2) = split /\|/, $psql->query_safe(
	"SELECT qiwi_core_test_rate_pass('leave', 'e', 2, 3000), qiwi_core_test_rate_pass('leave', 'e', 2, 3000)");
$psql->quit;
($err, undef, $out) = run_sql(q{SELECT qiwi_core_test_rate_pass('leave', 'e', 2, 3000) || ' ' || qiwi_core_test_rate_pass('leave', 'e', 2, 3000)});
my ($n1, $n2) = split / /, $out;
is($err, '', 'after the backend that passed twice exits, two more pass');
cmp_ok($n1 - $e1, '>=', 3_000_000, 'the first a window after its first pass');
cmp_ok($n2 - $e2, '>=', 3_000_000, 'the second a window after its second');
cmp_ok($n2 - $n1, '<', 3_000_000, 'both in one window: both of its slots came back');

# ---- the exchange passes the limiter before each attempt ----
my $url = "$sandbox_url/partner/bill/v1/bills/rate-limited";
my $get = "SELECT qiwi_core_test_rate_limited_get('$url', 'exchange', 'w1', 3, $long_ms)";
my $sent = sandbox_requests();
is(query_value($node, $get), 'QK404', 'a GET under a limit is sent (the sandbox has no such bill)');
sandbox('/sandbox/faults', '{"times": 1, "status": 500}');
is(query_value($node, $get), 'QK404', 'a GET answered 500 is sent again');
is(sandbox_requests(), $sent + 3, 'three requests were sent');
($err, $elapsed) = run_sql($get);
like($err, qr/QK429: the exchange rate limit of account "w1" leaves this call no time before qiwi.call_deadline/,
	'the retry took the third turn: a fourth request is refused (QK429)');
is(sandbox_requests(), $sent + 3, 'and not sent');

# ---- a batch sends its requests in runs the limiter lets through ----
$sent = sandbox_requests();
($err, undef, $out) = run_sql(qq{SELECT clock_timestamp() AS t0 \\gset
SELECT qiwi_core_test_rate_limited_batch('$url', 'exchange', 'w2', 2, 3000, 5, 8),
	clock_timestamp() - :'t0' >= interval '6 s'});
is("$err$out", '{QK404,QK404,QK404,QK404,QK404}|t',
	'a batch of 5 under a limit of 2 per 3 s is answered, in no less than two windows');
is(sandbox_requests(), $sent + 5, 'all five were sent');

done_testing();
