# Helpers shared by the TAP tests: the sandbox's control endpoints and a
# node configured for it.
package QiwiTest;

use strict;
use warnings;

use Exporter 'import';
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();

our @EXPORT = qw($sandbox_url $sandbox_secret sandbox sandbox_requests payin_requests pull_requests qiwi_node query_value
				 wait_true server_now wait_round_after wait_in_sql);
# asked for by name: several tests have their own of these
our @EXPORT_OK = qw(sandbox_get writes held poll_until wait_held);

our $sandbox_url = $ENV{QIWI_SANDBOX_URL} or die "QIWI_SANDBOX_URL is not set";
our $sandbox_secret = $ENV{QIWI_SANDBOX_SECRET} or die "QIWI_SANDBOX_SECRET is not set";
my $http = HTTP::Tiny->new;

# POST to a control endpoint of the sandbox; its answer
sub sandbox
{
	my ($path, $body) = @_;
	my $r = $http->post("$sandbox_url$path", { content => $body // '' });
	die "sandbox $path: $r->{status} $r->{content}" unless $r->{success};
	return $r->{content};
}

# API requests the sandbox has served so far
sub sandbox_requests
{
	my $stats = $http->get("$sandbox_url/sandbox/stats")->{content};
	return $stats =~ /"requests":(\d+)/ ? $1 : die "no stats from the sandbox";
}

# A GET of the sandbox (control, or an API with its key), decoded; undef if it failed
sub sandbox_get
{
	my ($path, $key) = @_;
	my $r = $http->get("$sandbox_url$path",
		{ headers => { Accept => 'application/json', $key ? (Authorization => "Bearer $key") : () } });
	return $r->{success} ? decode_json($r->{content}) : undef;
}

# How many times QIWI got a request that may change something, by the key
# of /sandbox/writes: "PUT /partner/bill/v1/bills/x", "POST /sinap/... id=N"
sub writes { return sandbox_get('/sandbox/writes')->{ $_[0] } // 0; }

# Requests a "hold" fault keeps at the sandbox
sub held { return sandbox_get('/sandbox/stats')->{held}; }

# Poll a Perl condition every 0.1 s until it holds or the tests' timeout
# passes; whether it held
sub poll_until
{
	my ($cond) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	until ($cond->())
	{
		return 0 if time > $deadline;
		Time::HiRes::sleep(0.1);
	}
	return 1;
}

# A test that the sandbox comes to hold n requests
sub wait_held
{
	my ($n, $what) = @_;
	poll_until(sub { held() >= $n });
	is(held(), $n, $what);
}

# Payin API requests the sandbox has served so far
sub payin_requests
{
	my $stats = $http->get("$sandbox_url/sandbox/payin/stats")->{content};
	return $stats =~ /"requests":\s*(\d+)/ ? $1 : die "no Payin stats from the sandbox: $stats";
}

# Pull API requests the sandbox has served so far
sub pull_requests
{
	my $stats = $http->get("$sandbox_url/sandbox/pull/stats")->{content};
	return $stats =~ /"requests":\s*(\d+)/ ? $1 : die "no Pull stats from the sandbox: $stats";
}

# A started node with qiwi_kassa preloaded and pointed at the sandbox;
# extra settings are appended to postgresql.conf
sub qiwi_node
{
	my ($name, $extra) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'qiwi_kassa'
qiwi.api_url = '$sandbox_url'
qiwi.secret_key = '$sandbox_secret'
} . ($extra // ''));
	$node->start;
	return $node;
}

# A query's single value, in database postgres of the node
sub query_value
{
	my ($node, $sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

# A test that a query comes to return t in database postgres of the node
sub wait_true
{
	my ($node, $sql, $what) = @_;
	ok($node->poll_query_until('postgres', $sql), $what);
}

# The server's clock now (a timestamptz literal)
sub server_now
{
	my ($node) = @_;
	return query_value($node, 'SELECT clock_timestamp()');
}

# A test that a reconciler round that started after the moment $since has
# ended (a round that finds nothing to check is not counted: one must be due)
sub wait_round_after
{
	my ($node, $since, $what) = @_;
	wait_true($node, qq{SELECT last_round_start > '$since' FROM qiwi_reconciler_status}, $what);
}

# A DO block that waits until the SQL condition $cond holds, looking every
# 50 ms, and fails if it does not within the tests' timeout
sub wait_in_sql
{
	my ($cond) = @_;
	my $timeout = $PostgreSQL::Test::Utils::timeout_default;
	return qq{DO \$wait\$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '$timeout seconds';
BEGIN
	WHILE NOT coalesce(($cond), false) LOOP
		IF clock_timestamp() > deadline THEN
			RAISE EXCEPTION 'waited $timeout s in vain until: %', \$cond\$$cond\$cond\$;
		END IF;
		PERFORM pg_sleep(0.05);
	END LOOP;
END \$wait\$};
}

1;
