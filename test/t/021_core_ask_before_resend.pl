# The exchange asks before it sends again: an operation that is not
# idempotent and can rebuild itself (here a Bill Payments refund, through
# qiwi_core_test) is sent once; after a lost answer it is asked for by its
# id, and sent again only if QIWI does not know it.
use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = qiwi_node('core_ask', "qiwi.database = ''\n");
sandbox('/sandbox/reset');
$node->safe_psql('postgres', q{
CREATE EXTENSION qiwi_kassa;
CREATE EXTENSION qiwi_core_test;
SELECT qiwi_create_bill('ask-1', 10.00, 'RUB', now() + interval '1 day');
});
sandbox('/sandbox/bills/ask-1/pay');

# The refunds the sandbox has made
sub refunds_made
{
	my $stats = decode_json(HTTP::Tiny->new->get("$sandbox_url/sandbox/stats")->{content});
	return $stats->{refunds};
}

# Refund through the test module with a fault on the bill's next requests;
# what the call returned (or its error), and the requests QIWI received
sub refund_with_faults
{
	my ($refund_id, $settings, @faults) = @_;
	HTTP::Tiny->new->request('DELETE', "$sandbox_url/sandbox/faults");
	sandbox('/sandbox/faults', encode_json({ times => 1, bill => 'ask-1', %$_ })) foreach @faults;
	my $before = sandbox_requests();
	my ($rc, $out, $err) = $node->psql('postgres',
		"$settings SELECT qiwi_core_test_refund_asking('ask-1', '$refund_id', 1.00)");
	return ($rc == 0 ? $out : $err, sandbox_requests() - $before);
}

# with no retries, only asking can find it
my ($answer, $requests) = refund_with_faults('r-after', 'SET qiwi.max_retries = 0;', { drop => 'after' });
is($answer, 'r-after 1.00', 'answer lost after QIWI made the refund: the call returns it');
is($requests, 2, 'the refund was sent once, then asked for by its id (PUT, GET)');
is(refunds_made(), 1, 'QIWI made one refund');

($answer, $requests) = refund_with_faults('r-before', '', { drop => 'before' });
is($answer, 'r-before 1.00', 'answer lost before QIWI made the refund: the call returns it');
is($requests, 3, 'asked for, unknown, then sent again (PUT, GET, PUT)');
is(refunds_made(), 2, 'QIWI made one more refund');

($answer, $requests) = refund_with_faults('r-failed', 'SET qiwi.max_retries = 0;',
	{ drop => 'before' }, { status => 500 });
like($answer, qr/could not refund "r-failed" of bill "ask-1": network failure talking to QIWI/,
	'asking fails too: the error is the refund\'s');
like($answer, qr/Asking QIWI for it failed too: could not get refund "r-failed" of bill "ask-1": QIWI failed to process it/,
	'and says that asking failed');
is($requests, 2, 'the refund was not sent again (PUT, GET)');
is(refunds_made(), 2, 'QIWI made no refund');

($answer, $requests) = refund_with_faults('r-rejected', '', { status => 400 });
like($answer, qr/could not refund "r-rejected" of bill "ask-1": QIWI rejected the request/,
	'a refused refund is not asked for');
is($requests, 1, 'one request (PUT)');

# the asks and sends of one call share its qiwi.call_deadline: a refund
# whose answer is lost at the deadline is asked for, not sent again late
($answer, $requests) = refund_with_faults('r-late', 'SET qiwi.call_deadline = 1000;',
	{ delay_ms => 1500, drop => 'before' });
like($answer, qr/could not refund "r-late" of bill "ask-1": QIWI did not answer in time/,
	'a refund lost at the deadline: the error is the refund\'s');
like($answer, qr/left no time to send it again|Asking QIWI for it failed too/,
	'and says why it was not sent again');
is($requests, 2, 'the refund was not sent again after the deadline (PUT, GET)');
is(refunds_made(), 2, 'QIWI made no refund');

# an error that ends the asking (here the rate limiter's refusal, which says
# that its request was not sent) says that the refund's answer was lost
HTTP::Tiny->new->request('DELETE', "$sandbox_url/sandbox/faults");
sandbox('/sandbox/faults', encode_json({ times => 1, bill => 'ask-1', drop => 'after' }));
my $before = sandbox_requests();
my ($rc, $out, $err) = $node->psql('postgres',
	"SELECT qiwi_core_test_refund_asking_limited('ask-1', 'r-limited', 1.00, 'acct-1')");
like($err, qr/ERROR:  the review rate limit of account "acct-1" leaves this call no time/,
	'the limiter refuses to ask for a refund whose answer was lost');
like($err, qr/whose answer was lost \(could not refund "r-limited" of bill "ask-1": network failure talking to QIWI\); whether QIWI made it is not known/,
	'and the error says that the refund\'s answer was lost');
is(sandbox_requests() - $before, 1, 'the refund was sent once, and not asked for (PUT)');
is(refunds_made(), 3, 'QIWI made the refund whose answer was lost');

done_testing();
