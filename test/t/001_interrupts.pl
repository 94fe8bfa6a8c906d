# A hung QIWI request ends promptly on a query cancel, on
# pg_terminate_backend and on postmaster death; the backend stays usable
# after a cancel; thousands of failing calls leave its memory flat.
use strict;
use warnings;

use IPC::Run;
use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(gettimeofday tv_interval);


# A new node for the sandbox, with the extension installed and no reconciler
sub new_node
{
	my ($name) = @_;
	my $node = qiwi_node($name, "qiwi.database = ''\nqiwi.timeout = 30000\n");
	$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');
	return $node;
}

# Start a call that hangs in QIWI (the sandbox is slow), interrupt it with
# $interrupt->($pid) once it waits in the request (wait event "Extension"),
# and return how long it took to end and what the client saw on stderr
sub interrupt_hung_request
{
	my ($node, $interrupt) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		  '-c', "SELECT status FROM qiwi_bill_status('tap-1')" ],
		'>', \$out, '2>', \$err);
	my $waiting = q{FROM pg_stat_activity
		WHERE wait_event_type = 'Extension' AND query LIKE '%qiwi_bill_status%'};
	$node->poll_query_until('postgres', "SELECT count(*) = 1 $waiting")
	  or die "no backend is waiting in a QIWI request";
	my $pid = $node->safe_psql('postgres', "SELECT pid $waiting");
	my $t0 = [gettimeofday];
	$interrupt->($pid);
	$h->finish;
	return (tv_interval($t0), $err);
}

my $node = new_node('interrupts');
sandbox('/sandbox/latency', '{"ms": 0}');
is($node->safe_psql('postgres',
		"SELECT status FROM qiwi_create_bill('tap-1', 10, expires_at => now() + interval '1 day')"),
	'WAITING', 'a bill to ask about');

# QIWI now takes 5 s to answer; the HTTP timeout is 30 s
my $latency_s = 5;
sandbox('/sandbox/latency', qq{{"ms": @{[ $latency_s * 1000 ]}}});

# pg_cancel_backend
my ($cancel_s, $err) = interrupt_hung_request($node,
	sub { $node->safe_psql('postgres', "SELECT pg_cancel_backend($_[0])") });
like($err, qr/canceling statement due to user request/, 'a cancel ends the request with PostgreSQL\'s own error');
cmp_ok($cancel_s, '<', $latency_s / 2, 'the cancel took effect before QIWI answered');
diag(sprintf('pg_cancel_backend ended the hung request in %.0f ms', $cancel_s * 1000));

# the same session is usable after a cancel
my $session = "SET statement_timeout = '300ms';\n"
  . "SELECT qiwi_bill_status('tap-1');\n"
  . "RESET statement_timeout;\n"
  . "SELECT 'still usable';\n";
my $out = '';
$err = '';
IPC::Run::run([ 'psql', '-X', '-d', $node->connstr('postgres') ], '<', \$session, '>', \$out, '2>', \$err);
like($err, qr/canceling statement due to statement timeout/, 'statement_timeout ends it too');
like($out, qr/still usable/, 'the session goes on after the cancel');

# pg_terminate_backend
my $terminate_s;
($terminate_s, $err) = interrupt_hung_request($node,
	sub { $node->safe_psql('postgres', "SELECT pg_terminate_backend($_[0])") });
like($err, qr/terminating connection due to administrator command/, 'pg_terminate_backend ends it');
cmp_ok($terminate_s, '<', $latency_s / 2, 'the termination took effect before QIWI answered');
diag(sprintf('pg_terminate_backend ended the hung request in %.0f ms', $terminate_s * 1000));

# Memory: 3,000 failing calls of several kinds after a warm-up leave the
# backend's private memory (RssAnon) and its memory contexts flat
sandbox('/sandbox/latency', '{"ms": 0}');
my $rss_sql = q{(SELECT (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+) kB'))[1]::int)};
my $ctx_sql = q{(SELECT sum(total_bytes) FROM pg_backend_memory_contexts)};
my $loop = q{
DO $$
BEGIN
	FOR i IN 1..%d LOOP
		BEGIN
			CASE i % 3
				WHEN 0 THEN PERFORM qiwi_bill_status('missing-' || i);
				WHEN 1 THEN PERFORM qiwi_refund_status('tap-1', 'missing-' || i);
				ELSE PERFORM qiwi_create_bill('tap-bad-' || i, 1, 'XXX');
			END CASE;
		EXCEPTION WHEN others THEN NULL;
		END;
	END LOOP;
END $$;
};
my $memory = $node->safe_psql('postgres',
	sprintf($loop, 500) . "SELECT $rss_sql, $ctx_sql;\n"
	  . sprintf($loop, 3000) . "SELECT $rss_sql, $ctx_sql;\n");
my ($before, $after) = split /\n/, $memory;
my ($rss0, $ctx0) = split /\|/, $before;
my ($rss1, $ctx1) = split /\|/, $after;
diag("after 500 failing calls: RssAnon $rss0 kB, contexts $ctx0 B; after 3,000 more: $rss1 kB, $ctx1 B");
cmp_ok($rss1 - $rss0, '<', 1024, 'private memory grows by less than 1 MB over 3,000 failing calls');
cmp_ok($ctx1 - $ctx0, '<=', 0, 'memory contexts do not grow');

# Postmaster death while a backend waits for QIWI: the backend exits
sandbox('/sandbox/latency', qq{{"ms": @{[ $latency_s * 1000 ]}}});
my $orphan_s;
($orphan_s, $err) = interrupt_hung_request($node, sub { kill 'KILL', $node->{_pid} });
like($err, qr/terminating QIWI request because the postmaster died/,
	'the backend ends its request and exits when the postmaster dies');
cmp_ok($orphan_s, '<', $latency_s / 2, 'it exits before QIWI answers');
diag(sprintf('the client saw the backend exit %.0f ms after the postmaster died', $orphan_s * 1000));
# the killed postmaster leaves its pid file behind; the cluster is gone
unlink($node->data_dir . '/postmaster.pid');
$node->_update_pid(0);
sandbox('/sandbox/latency', '{"ms": 0}');

done_testing();
