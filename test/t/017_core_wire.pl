# The core's wire, as the next APIs will use it (test/modules/qiwi_core_test
# wire.c): form bodies and Basic authorization as the sandbox receives them,
# the credentials redacted from errors, the server log and NOTICEs; PATCH
# and DELETE with their bodies; an envelope whose errors come with HTTP 200
# mapped to the error classes; 403 apart from 401; 423 retryable, with the
# time its block ends, and not retried past the call's deadline.
use strict;
use warnings;
use utf8;

use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

# the postmaster may log its environment: the harness's copy of the key must not be in it
delete $ENV{QIWI_SANDBOX_SECRET};

my $node = qiwi_node('core_wire', q{
qiwi.site_id = 'shop-17'
qiwi.call_deadline = '10s'
log_min_messages = debug1
log_min_error_statement = debug1
});
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_core_test');
my $json = JSON::PP->new->utf8;

# A query's single value
sub sql { return query_value($node, @_); }

# The answers the sandbox's /wire/answer gives next: [status, body], ...
sub answers
{
	sandbox('/sandbox/wire/answers',
		$json->encode({ answers => [ map { { status => $_->[0], body => $_->[1] } } @_ ] }));
}

# How many requests reached /wire/ since the last answers()
sub wire_requests
{
	my $r = HTTP::Tiny->new->get("$sandbox_url/sandbox/wire/stats");
	return $json->decode($r->{content})->{requests};
}

# What the sandbox's echo received for a call (the arguments of qiwi_core_test_wire after path)
sub echo
{
	my ($method, $args) = @_;
	my $answer = sql(qq{SELECT answer FROM qiwi_core_test_wire('$method', 'wire/echo/x'$args)});
	return $json->decode($answer);
}

# A failed call's sqlstate|retry_safe|message|detail
sub failure
{
	my ($args) = @_;
	return sql(qq{SELECT concat_ws('|', ok, sqlstate, retry_safe, message, detail)
		FROM qiwi_core_test_wire($args)});
}

# Percent-encoding of a string's UTF-8 bytes, every byte but RFC 3986's unreserved
sub escaped
{
	my ($text) = @_;
	my $bytes = $text;
	utf8::encode($bytes);
	$bytes =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord($1))/ge;
	return $bytes;
}

# 1. Form bodies: reserved characters, Cyrillic and empty values arrive as sent
my @form = (user => 'tel:+79001234567', comment => 'a&b=c+d %/?#;', name => 'Заказ №101', empty => '');
my $array = join(',', map { my $v = $_; $v =~ s/'/''/g; "'$v'" } @form);
utf8::encode($array);
my $seen = echo('PUT', qq{, form => ARRAY[$array]});
is($seen->{content_type}, 'application/x-www-form-urlencoded; charset=utf-8', 'a form body has its content type');
is_deeply($seen->{form}, {@form}, 'the sandbox reads every field back, the empty one too');
my @pairs = @form;
my @encoded;
push @encoded, escaped(shift @pairs) . '=' . escaped(shift @pairs) while @pairs;
my $raw = $seen->{body};
utf8::encode($raw);
is($raw, join('&', @encoded), 'names and values are percent-encoded by libcurl, nothing else');

# 2. Basic authorization as received
my $credentials = encode_base64("shop-17:$sandbox_secret", '');
is(echo('GET', q{, auth => 'basic'})->{authorization}, "Basic $credentials",
	'Basic authorization is base64 of login:password');
is(echo('GET', '')->{authorization}, "Bearer $sandbox_secret", 'Bearer authorization carries the key');

# 3. PATCH and DELETE reach the sandbox with their bodies
$seen = echo('PATCH', q{, form => ARRAY['status', 'rejected'], auth => 'basic'});
is($seen->{method}, 'PATCH', 'a PATCH is sent as PATCH');
is_deeply($seen->{form}, { status => 'rejected' }, 'with its form body');
$seen = echo('DELETE', q{, body => '{"token":"t-1"}'});
is($seen->{method}, 'DELETE', 'a DELETE is sent as DELETE');
is($seen->{body}, '{"token":"t-1"}', 'with its JSON body');
is($seen->{content_type}, 'application/json;charset=UTF-8', 'of type JSON');

# 4. The credentials never appear in an error, the server log or a NOTICE,
# even when QIWI echoes them
my $log_offset = -s $node->logfile;
answers([400, '{"errorCode":"echo","description":"you sent @authorization@"}']);
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
SET client_min_messages = debug5;
SELECT qiwi_core_test_wire('PUT', 'wire/answer/a', form => ARRAY['a', 'b'], auth => 'basic', raise => true);
DO $$
BEGIN
	PERFORM qiwi_core_test_wire('GET', 'wire/answer/b', auth => 'basic', raise => true);
EXCEPTION WHEN others THEN
	RAISE NOTICE 'caught: % (%)', SQLERRM, SQLSTATE;
END $$;
SELECT message || ' ' || detail FROM qiwi_core_test_wire('GET', 'wire/answer/c', auth => 'basic');
}, on_error_stop => 0);
like($stderr, qr/ERROR:.*you sent Basic \*{8}/, 'the echoed credentials reach the client as ********');
like($stderr, qr/NOTICE:  caught: .*you sent Basic \*{8} \(QK400\)/, 'and a handler that catches the error');
like($stdout, qr/you sent Basic \*{8}/, 'and the error the reconciler would record');
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/you sent Basic \*{8}/, 'the server log has the error');
for my $where ([ 'the client', $stdout . $stderr ], [ 'the server log', $log ])
{
	ok(index($where->[1], $credentials) < 0, "$where->[0] never sees the base64 credentials");
	ok(index($where->[1], $sandbox_secret) < 0, "$where->[0] never sees the password");
}

# 5. An envelope's errors come with HTTP 200: its codes map to the classes
answers([200, '{"response":{"result_code":0,"bill":{"bill_id":"b-1"}}}']);
is(sql(q{SELECT ok::text || ' ' || answer FROM qiwi_core_test_wire('GET', 'wire/answer/e', errors => 'envelope')}),
	'true {"response":{"result_code":0,"bill":{"bill_id":"b-1"}}}', 'result_code 0 is success');
answers([200, '{"response":{"result_code":210,"description":"Bill not found"}}']);
is(failure(q{'GET', 'wire/answer/e', errors => 'envelope'}),
	'f|QK404|f|could not call wire/answer/e: QIWI does not know it: Bill not found|HTTP status 200, result_code "210".',
	'result_code 210 with HTTP 200 is not found (QK404), not retried');
is(wire_requests(), 1, 'one request');
answers([200, '{"response":{"result_code":150,"description":"Authorization failed"}}']);
like(failure(q{'GET', 'wire/answer/e', errors => 'envelope'}), qr/^f\|QK401\|f\|.*refused the secret key/,
	'result_code 150 is the key refused (QK401)');
answers([200, '{"response":{"result_code":78}}']);
like(failure(q{'GET', 'wire/answer/e', errors => 'envelope'}), qr/^f\|QK403\|f\|/, 'result_code 78 is forbidden (QK403)');
answers([200, '{"response":{"result_code":9999}}']);
like(failure(q{'GET', 'wire/answer/e', errors => 'envelope'}), qr/^f\|QK400\|f\|.*rejected the request/,
	'an unknown code with HTTP 200 is a rejection (QK400)');
answers([200, '{"response":{"result_code":13,"description":"Server is busy"}}'],
	[200, '{"response":{"result_code":0}}']);
is(sql(q{SELECT ok FROM qiwi_core_test_wire('GET', 'wire/answer/e', errors => 'envelope')}), 't',
	'a temporary code (13) with HTTP 200 is retried, and the retry succeeds');
is(wire_requests(), 2, 'two requests');
answers([200, '{"response":{"result_code":300}}']);
is(sql(q{SELECT retry_safe::text || ' ' || sqlstate FROM qiwi_core_test_wire('GET', 'wire/answer/e', errors => 'envelope', idempotent => false)}),
	'true QK500', 'a temporary code is retry_safe (QK500)');
is(wire_requests(), 1, 'and a call that may not be repeated is sent once');

# 6. 403 (a key without the permission) is apart from 401 (a key refused)
answers([403, '{"errorCode":"auth.forbidden","description":"Access denied"}']);
like(failure(q{'GET', 'wire/answer/f'}),
	qr/^f\|QK403\|f\|could not call wire\/answer\/f: QIWI refused the call: the key lacks the permission it needs: Access denied\|HTTP status 403, errorCode "auth.forbidden"/,
	'403 is QK403');
answers([401, '{"errorCode":"auth.unauthorized"}']);
like(failure(q{'GET', 'wire/answer/f'}), qr/^f\|QK401\|f\|could not call wire\/answer\/f: QIWI refused the secret key/,
	'401 is QK401');

# 7. 423: retryable, with the end of the block; not retried past the deadline
my $blocked = '{"serviceName":"payment-history","errorCode":"request.blocked","userMessage":"request blocked, try again later","dateTime":"%s"}';
answers([423, sprintf($blocked, '2026-01-01T10:00:00+03:00')]);
is(sql(q{SET qiwi.max_retries = 0; SET TimeZone = 'UTC';
	SELECT concat_ws('|', sqlstate, retry_safe, blocked_until, message)
	FROM qiwi_core_test_wire('GET', 'wire/answer/w', errors => 'wallet')}),
	'QK423|t|2026-01-01 07:05:00+00|could not call wire/answer/w: QIWI blocks the requests until 2026-01-01 07:05:00+00: request blocked, try again later',
	'423 is QK423, retry_safe, blocked until its dateTime plus 5 minutes');
answers([423, sprintf($blocked, '@now@')]);
is(sql(q{SELECT concat_ws('|', sqlstate, blocked_until BETWEEN now() + interval '4 min' AND now() + interval '6 min', detail)
	FROM qiwi_core_test_wire('GET', 'wire/answer/w', errors => 'wallet')}),
	'QK423|t|HTTP status 423, errorCode "request.blocked". 1 attempt was made. qiwi.call_deadline (10000 ms) or statement_timeout left no time for another.',
	'a block ending after the call deadline is not waited for');
is(wire_requests(), 1, 'one request only');
answers([423, sprintf($blocked, '@now@')], [200, '{"ok":1}']);
is(sql(q{SELECT ok::text || ' ' || answer FROM qiwi_core_test_wire('GET', 'wire/answer/w', errors => 'short_block')}),
	'true {"ok":1}', 'a block ending within the deadline is waited out, then the call succeeds');
is(wire_requests(), 2, 'two requests');

$node->stop;
done_testing();
