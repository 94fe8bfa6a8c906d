# End to end: the sandbox POSTs signed notifications as QIWI does, a tiny
# receiver stores them through psql, and the trigger turns the bill PAID
# with no call to QIWI at all; duplicates, redelivery and forgeries too.
use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

my $src = $ENV{QIWI_SRC} or die "QIWI_SRC is not set";
my $http = HTTP::Tiny->new;

my $node = qiwi_node('notifications', "qiwi.database = ''\n");
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');

# The receiver, on a port of its own
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $receiver_url = "http://127.0.0.1:$port/qiwi-notify";
my $receiver;
sub start_receiver
{
	$receiver = IPC::Run::start(
		[ 'python3', "$src/test/notification_receiver.py", '--port', $port,
		  '--dbname', $node->connstr('postgres') ],
		'>', \my $out, '2>', \my $err);
	for (1 .. 100)
	{
		my $r = $http->get("http://127.0.0.1:$port/");
		return if $r->{status} != 599;
		select(undef, undef, undef, 0.1);
	}
	die "the receiver did not start";
}
start_receiver();
sandbox('/sandbox/notifications', qq{{"url": "$receiver_url", "retry_ms": 200}});

# Wait until a query returns t
sub wait_for
{
	my ($sql, $what) = @_;
	ok($node->poll_query_until('postgres', $sql), $what);
}

# A bill, paid in the sandbox, turns PAID through the notification alone
is($node->safe_psql('postgres',
		"SELECT status FROM qiwi_create_bill('e2e-1', 99.90, expires_at => now() + interval '1 day')"),
	'WAITING', 'a new bill is WAITING');
my $requests = sandbox_requests();
sandbox('/sandbox/bills/e2e-1/pay');
wait_for("SELECT status = 'PAID' FROM qiwi_bills WHERE bill_id = 'e2e-1'",
	'the bill turns PAID in qiwi_bills');
is($node->safe_psql('postgres',
		"SELECT verified, applied, error IS NULL FROM qiwi_notifications WHERE bill_id = 'e2e-1'"),
	't|t|t', 'the notification was verified and applied');
my $requests_after = sandbox_requests();
is($requests_after, $requests, 'without any request to the API');

# QIWI may repeat a notification after a 200: the copy changes nothing
sandbox('/sandbox/notifications', qq{{"url": "$receiver_url", "duplicates": 1}});
$node->safe_psql('postgres',
	"SELECT qiwi_create_bill('e2e-2', 5, expires_at => now() + interval '1 day')");
sandbox('/sandbox/bills/e2e-2/reject');
wait_for("SELECT count(*) = 2 FROM qiwi_notifications WHERE bill_id = 'e2e-2'",
	'the notification and its duplicate both arrive');
is($node->safe_psql('postgres',
		"SELECT string_agg(applied::text || ':' || coalesce(error, ''), ',' ORDER BY id) FROM qiwi_notifications WHERE bill_id = 'e2e-2'"),
	'true:,false:duplicate: bill "e2e-2" is already REJECTED', 'the duplicate is recognised');
is($node->safe_psql('postgres', "SELECT status FROM qiwi_bills WHERE bill_id = 'e2e-2'"),
	'REJECTED', 'the bill is REJECTED once');

# The receiver is down when the bill is paid: QIWI's retries deliver it later
sandbox('/sandbox/notifications', qq{{"url": "$receiver_url", "retry_ms": 300}});
$node->safe_psql('postgres',
	"SELECT qiwi_create_bill('e2e-3', 12, expires_at => now() + interval '1 day')");
$receiver->kill_kill;
sandbox('/sandbox/bills/e2e-3/pay');
select(undef, undef, undef, 1.0);
is($node->safe_psql('postgres', "SELECT status FROM qiwi_bills WHERE bill_id = 'e2e-3'"),
	'WAITING', 'nothing arrives while the receiver is down');
start_receiver();
wait_for("SELECT status = 'PAID' FROM qiwi_bills WHERE bill_id = 'e2e-3'",
	'a retried delivery turns it PAID once the receiver is back');

# Someone else POSTs a forged notification to the receiver: stored, not believed
my $forged = '{"bill":{"siteId":"270305","billId":"e2e-4","amount":{"currency":"RUB","value":"1.00"},"status":{"value":"PAID"}},"version":"1"}';
$node->safe_psql('postgres',
	"SELECT qiwi_create_bill('e2e-4', 1, expires_at => now() + interval '1 day')");
my $r = $http->post($receiver_url, {
	content => $forged,
	headers => { 'Content-Type' => 'application/json',
				 'X-Api-Signature-SHA256' => ('0' x 64) } });
is($r->{status}, 200, 'the receiver stores whatever arrives');
is($node->safe_psql('postgres',
		"SELECT verified, error FROM qiwi_notifications WHERE bill_id = 'e2e-4'"),
	'f|the signature does not match', 'the forgery is marked');
is($node->safe_psql('postgres', "SELECT status FROM qiwi_bills WHERE bill_id = 'e2e-4'"),
	'WAITING', 'and the bill stays WAITING');

sandbox('/sandbox/notifications', '{}');
$receiver->kill_kill;
done_testing();
