# The core's pager (src/core/paging.c), through the test module's entry
# points over the sandbox's paged list (GET /sandbox/pages?cursor=N):
# 2,000 pages streamed with the memory flat; a LIMIT stops the requests; an
# empty first page (an empty list, or a 404) is zero rows; a failing page
# raises the exchange's error, after its retries; a cancel while a page is
# slow ends with 57014, leaves no pager behind and the session works on;
# the sync's callback entry over the same pages, with the same memory rule.
use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = qiwi_node('paging', "qiwi.database = ''\nqiwi.timeout = 30000\n");
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_core_test');
my $url = "$sandbox_url/sandbox/pages";
my $stream = "(SELECT qiwi_core_test_pages('$url') AS r) s";
my $pager_contexts =
  q{SELECT count(*) FROM pg_backend_memory_contexts WHERE name IN ('qiwi pager', 'qiwi page')};

# Configure the sandbox's list (and zero its counters)
sub pages
{
	my (%list) = @_;
	sandbox('/sandbox/pages', encode_json(\%list));
}

# The sandbox's counters of the list: requests, and requests by page
sub page_stats
{
	my $r = HTTP::Tiny->new->get("$sandbox_url/sandbox/pages/stats");
	die "no stats from the sandbox's list" unless $r->{success};
	return decode_json($r->{content});
}

# Run $sql in a psql session, cancel it once a request for the held page
# waits in the backend (wait event "Extension") and the sandbox holds it,
# then run the statements @after in the same session; its stdout and stderr
sub cancel_while_held
{
	my ($sql, $held_page, @after) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'),
		  map { ('-c', $_) } ('\\set VERBOSITY verbose', $sql, @after) ],
		'>', \$out, '2>', \$err);
	my $waiting = qq{FROM pg_stat_activity WHERE wait_event_type = 'Extension'
		AND query LIKE '%qiwi_core_test_%(''$url''%' AND pid <> pg_backend_pid()};
	$node->poll_query_until('postgres', "SELECT count(*) = 1 $waiting")
	  or die "no backend waits in a page's request";
	my $held = 0;
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		$held = page_stats()->{byPage}{$held_page} // 0;
		last if $held;
		select(undef, undef, undef, 0.1);
	}
	is($held, 1, "the sandbox holds the request for page $held_page");
	$node->safe_psql('postgres', "SELECT pg_cancel_backend(pid) $waiting");
	$h->finish;
	sandbox('/sandbox/release');
	return ($out, $err);
}

# ---- 2,000 pages streamed, memory flat ----
pages(pages => 2000, items => 10);
my ($rows, $distinct, $last_page, $memory_second, $memory_last) = split /\|/,
  $node->safe_psql('postgres', qq{
	SELECT count(*), count(DISTINCT (r).item->>'n'), max(((r).item->>'page')::int),
		max((r).memory) FILTER (WHERE ((r).item->>'page')::int = 2),
		max((r).memory) FILTER (WHERE ((r).item->>'page')::int = 2000)
	FROM $stream});
is($rows, 20000, '2,000 pages of 10 items stream 20,000 rows');
is($distinct, 20000, 'each item once');
is($last_page, 2000, 'up to the last page');
is(page_stats()->{requests}, 2000, 'one request a page');
diag("the SRF's memory at page 2: $memory_second B; at page 2,000: $memory_last B");
cmp_ok($memory_last - $memory_second, '<', 16384,
	'the memory at page 2,000 is that at page 2 (each page kept would add some 16 kB)');

# ---- LIMIT stops the requests ----
pages(pages => 100, items => 10);
is($node->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT qiwi_core_test_pages('$url') AS r LIMIT 25) s"),
	25, 'LIMIT 25 takes 25 rows');
is(page_stats()->{requests}, 3, 'and asks for the 3 pages they are on, no more');

# ---- an empty first page is a normal end ----
pages(pages => 0, empty => 'list');
is($node->safe_psql('postgres', "SELECT count(*) FROM $stream"), 0,
	'an empty first page: zero rows');
is(page_stats()->{requests}, 1, 'after one request');
pages(pages => 0, empty => '404');
is($node->safe_psql('postgres', "SELECT count(*) FROM $stream"), 0,
	'a first page answered 404 (the Wallet\'s empty history): zero rows');
is(page_stats()->{requests}, 1, 'after one request, not retried');

# ---- a failing page ----
pages(pages => 5, items => 10, fail_page => 3, fail_status => 500);
my ($ret, $out, $err) = $node->psql('postgres',
	"SET qiwi.max_retries = 1;\n\\set VERBOSITY verbose\nSELECT count(*) FROM $stream");
like($err, qr/ERROR:  QK500: could not read the test list \(page 3\): QIWI failed to process it/,
	'a failing page raises the exchange\'s error, with its SQLSTATE and the page');
like($err, qr/2 attempts were made/, 'after the exchange\'s retry');
is_deeply(page_stats()->{byPage}, { 1 => 1, 2 => 1, 3 => 2 }, 'page 3 asked twice, no page after it');
pages(pages => 5, items => 10, fail_page => 3, fail_status => 503, fail_times => 1);
is($node->safe_psql('postgres', "SELECT count(*) FROM $stream"), 50,
	'a page that fails once is retried and the list goes on');
is_deeply(page_stats()->{byPage}, { 1 => 1, 2 => 1, 3 => 2, 4 => 1, 5 => 1 }, 'page 3 asked twice');
pages(pages => 5, items => 10, fail_page => 4, fail_status => 400);
($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT count(*) FROM $stream;\n$pager_contexts", on_error_stop => 0);
like($err, qr/ERROR:  QK400: could not read the test list \(page 4\)/, 'a 400 at page 4 is QK400');
is($out, 0, 'the failed stream left no pager memory in its session');

# ---- a cancel while a page is slow ----
pages(pages => 10, items => 10, hold_page => 3);
($out, $err) = cancel_while_held("SELECT count(*) FROM $stream", 3,
	"SELECT 'still usable'", $pager_contexts, "SELECT count(*) FROM $stream");
like($err, qr/ERROR:  57014: canceling statement due to user request/, 'the cancel ends the stream with 57014');
is($out, "still usable\n0\n100\n", 'the session works on, with no pager left, and streams the list again');

# ---- the sync's callback entry ----
pages(pages => 200, items => 10);
my ($pages, $items, $sync_second, $sync_last, $failure) = split /\|/,
  $node->safe_psql('postgres', "SELECT * FROM qiwi_core_test_sync('$url')");
is("$pages $items $failure", '200 2000 ', 'the sync takes 200 pages of 10 items');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT page) FROM qiwi_core_test_synced'),
	'2000|200', 'its consumer upserted every item');
diag("the pager's memory at page 2: $sync_second B; at page 200: $sync_last B");
cmp_ok($sync_last - $sync_second, '<', 16384, 'the pager\'s memory at page 200 is that at page 2');
is(page_stats()->{requests}, 200, 'one request a page');

pages(pages => 200, items => 10);
is($node->safe_psql('postgres', "SELECT pages, items FROM qiwi_core_test_sync('$url', 0, 5)"),
	'5|50', 'a consumer that says stop after page 5 ends the sync');
is(page_stats()->{requests}, 5, 'with no request for page 6');

pages(pages => 10, items => 10, fail_page => 4, fail_status => 400);
is($node->safe_psql('postgres', "SELECT pages, items, failure FROM qiwi_core_test_sync('$url')"),
	'3|30|QK400: could not read the test list (page 4): QIWI rejected the request: Internal error',
	'a failing page ends the sync with its error returned, not raised');

pages(pages => 10, items => 10);
($ret, $out, $err) = $node->psql('postgres',
	"SELECT qiwi_core_test_sync('$url', 3);\n$pager_contexts", on_error_stop => 0);
like($err, qr/the test's consumer raised at page 3/, 'an error of the consumer goes on up');
is($out, 0, 'and the pager (under TopMemoryContext, as in a worker) is gone');

pages(pages => 10, items => 10, hold_page => 4);
($out, $err) = cancel_while_held("SELECT qiwi_core_test_sync('$url')", 4, $pager_contexts);
like($err, qr/ERROR:  57014: canceling statement due to user request/, 'a cancel ends the sync with 57014');
is($out, "0\n", 'and leaves no pager behind');

done_testing();
