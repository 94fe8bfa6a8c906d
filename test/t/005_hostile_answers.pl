# One answer never stops the reconciler: an answer with a number that
# overflows, JSON nested 100,000 deep (also in a 503), an amount of -0.00 on
# PAID, a timestamp with an unknown time zone, or Russian error text in a
# LATIN1 database fails the check of its own bill only.  The same
# reconciler (same PID) records that failure and, in the same round, the
# other bills' changes.  In the LATIN1 database the SQL functions raise the
# class of the HTTP status (QK400), or QKBAD, never 22P05.
use strict;
use warnings;

use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

# A long interval: a failed check is not repeated while the test looks
my $node = qiwi_node('hostile', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '60s'
qiwi.reconcile_concurrency = 4
});
sandbox('/sandbox/reset');
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');

# A query's single value in a database
sub sql_in { my ($db, $query) = @_; return $node->safe_psql($db, $query); }

# A test that a query in a database comes to return t
sub wait_in
{
	my ($db, $query, $what) = @_;
	ok($node->poll_query_until($db, $query), $what);
}

# A PAID answer for a bill, with amount.value as raw JSON and a status time
sub paid_answer
{
	my ($bill, $value, $changed) = @_;
	$changed //= '2020-01-01T10:00:00+03:00';
	return qq({"siteId":"270305","billId":"$bill","amount":{"currency":"RUB","value":$value},)
	  . qq("status":{"value":"PAID","changedDateTime":"$changed"}});
}

# Answer every request about a bill with status and body ("@nest@" in the
# body becomes [[[...]]] nested 100,000 deep)
sub serve_for_bill
{
	my ($bill, $status, $body) = @_;
	my $fault = { bill => $bill, status => $status, body => $body, nest => 100000, times => 1000 };
	my $json = join(',', map {
		my $v = $fault->{$_};
		$v =~ /^\d+$/ ? qq("$_":$v) : qq("$_":") . ($v =~ s/(["\\])/\\$1/gr) . '"'
	} sort keys %$fault);
	sandbox('/sandbox/faults', "{$json}");
}

my $cyrillic_400 = '{"errorCode":"refund.incorrect.amount","description":"Неверная сумма возврата","traceId":"t1"}';

# Each hostile answer, and what its bill's last_error must say
my %hostile = (
	'hx-overflow' => [ 200, paid_answer('hx-overflow', '1e131072'), qr/malformed/ ],
	'hx-overflow-elsewhere' =>
	  [ 200, '{"pad":[-1e131072],' . substr(paid_answer('hx-overflow-elsewhere', '"10.00"'), 1), qr/malformed/ ],
	'hx-deep' => [ 200, '@nest@', qr/malformed/ ],
	'hx-deep-inside' => [ 200, '{"customFields":@nest@,' . substr(paid_answer('hx-deep-inside', '"10.00"'), 1), qr/malformed/ ],
	'hx-deep-503' => [ 503, '{"errorCode":"internal.error","traceId":@nest@}', qr/QIWI failed to process it/ ],
	'hx-minus-zero' => [ 200, paid_answer('hx-minus-zero', '-0.00'), qr/malformed/ ],
	'hx-zero' => [ 200, paid_answer('hx-zero', '"0.00"'), qr/malformed/ ],
	'hx-too-much' => [ 200, paid_answer('hx-too-much', '1000000'), qr/malformed/ ],
	'hx-zone' => [ 200, paid_answer('hx-zone', '"10.00"', '2020-01-01T00:00:00 Europe/Nowhere'), qr/malformed/ ],
	'hx-xyz' => [ 200, paid_answer('hx-xyz', '"10.00"', '2020-01-01T00:00:00 XYZ'), qr/malformed/ ],
	'hx-now' => [ 200, paid_answer('hx-now', '"10.00"', 'now'), qr/malformed/ ],
	'hx-cyrillic' => [ 400, $cyrillic_400, qr/QIWI rejected the request: Неверная сумма возврата/ ],
);
my @good = map { "ok-$_" } 1 .. 5;

# Bills at QIWI: the good ones paid, the hostile ones answered by faults;
# and one bill to create after commit, whose answer nests too deep
for my $bill (sort(keys %hostile), @good)
{
	sql_in('postgres', qq{SELECT qiwi_create_bill('$bill', 10, expires_at => now() + interval '1 day')});
}
sql_in('postgres', q{UPDATE qiwi_bills SET next_check_at = 'infinity'});
sandbox("/sandbox/bills/$_/pay") for @good;
serve_for_bill($_, $hostile{$_}[0], $hostile{$_}[1]) for keys %hostile;
serve_for_bill('hc-deep', 200, '@nest@');

# One round: all of them due at once
wait_in('postgres', q{SELECT running FROM qiwi_reconciler_status}, 'the reconciler runs');
my ($pid, $rounds) = split /\|/, sql_in('postgres', q{SELECT pid, rounds FROM qiwi_reconciler_status});
my $checks = keys(%hostile) + @good + 1;
sql_in('postgres', q{BEGIN;
	SELECT qiwi_create_bill_after_commit('hc-deep', 10, expires_at => now() + interval '1 day');
	SELECT qiwi_reconcile_now();
	COMMIT});
wait_in('postgres', qq{SELECT rounds > $rounds FROM qiwi_reconciler_status}, 'a round ends');
is(sql_in('postgres', q{SELECT pid FROM qiwi_reconciler_status}), $pid, 'the same reconciler is still running');
is(sql_in('postgres', q{SELECT rounds, last_round_checked, last_round_failed, last_round_changed
	FROM qiwi_reconciler_status}), join('|', $rounds + 1, $checks, keys(%hostile) + 1, scalar(@good)),
	'in one round it checked every bill, the hostile answers failed and the others changed');
is(sql_in('postgres', q{SELECT string_agg(bill_id || ':' || status, ',' ORDER BY bill_id) FROM qiwi_bills WHERE bill_id LIKE 'ok-%'}),
	join(',', map { "$_:PAID" } @good), 'the paid bills are PAID');
for my $bill (sort keys %hostile)
{
	my ($status, $failures, $error) = split /\|/,
	  sql_in('postgres', qq{SELECT status, failures, last_error FROM qiwi_bills WHERE bill_id = '$bill'});
	ok($status eq 'WAITING' && $failures == 1, "$bill: the check failed once, the bill is left WAITING");
	like($error, $hostile{$bill}[2], "$bill: last_error says why");
}
like(sql_in('postgres', q{SELECT status || ' ' || failures || ' ' || last_error FROM qiwi_bills WHERE bill_id = 'hc-deep'}),
	qr/^CREATING 1 .*malformed/, 'a creation with a hostile answer is no refusal: it stays to be created, with the reason');
like(sql_in('postgres', q{SELECT last_error FROM qiwi_reconciler_status}), qr/of $checks checks failed/,
	'the status view counts the failures');

# Once QIWI answers properly, the same bills are checked as usual
HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults");
$rounds = sql_in('postgres', q{SELECT rounds FROM qiwi_reconciler_status});
sql_in('postgres', q{SELECT qiwi_reconcile_now()});
wait_in('postgres', qq{SELECT rounds > $rounds FROM qiwi_reconciler_status}, 'another round ends');
is(sql_in('postgres', q{SELECT count(*) FROM qiwi_bills WHERE bill_id LIKE 'hx-%' AND failures = 0 AND status = 'WAITING'}),
	scalar(keys %hostile), 'then the hostile bills are checked like any other');
is(sql_in('postgres', q{SELECT status FROM qiwi_bills WHERE bill_id = 'hc-deep'}), 'WAITING',
	'and the creation is sent again, and made');
is(sql_in('postgres', q{SELECT pid FROM qiwi_reconciler_status}), $pid, 'by the same reconciler');

# A LATIN1 database: QIWI's Russian error text cannot be shown in it
sql_in('postgres', q{CREATE DATABASE latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
sql_in('latin1', 'CREATE EXTENSION qiwi_kassa');
sql_in('latin1', q{CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
	DECLARE
		state text;
		msg text;
		detail text;
	BEGIN
		EXECUTE stmt;
		RETURN 'ok';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
		RETURN state || ': ' || msg || ' | ' || detail;
	END $$});

# The SQL functions: a 4xx stays QK400, with errorCode and traceId
sql_in('latin1', q{SELECT qiwi_create_bill(b, 10, expires_at => now() + interval '1 day')
	FROM unnest(ARRAY['lat-400', 'lat-cyrillic-200', 'lat-latin1-200', 'lat-ok']) b});
sql_in('latin1', q{UPDATE qiwi_bills SET next_check_at = 'infinity'});
serve_for_bill('lat-400', 400, $cyrillic_400);
is(sql_in('latin1', q{SELECT try($$SELECT qiwi_bill_status('lat-400')$$)}),
	'QK400: could not get the status of bill "lat-400": QIWI rejected the request | HTTP status 400, '
	  . 'errorCode "refund.incorrect.amount", traceId "t1". QIWI\'s error text has characters that the database '
	  . 'encoding LATIN1 cannot represent; its description is not shown.',
	'LATIN1: a 400 with Russian text is QK400, with errorCode and traceId');
# a 2xx that the database cannot hold is malformed; one it can hold is read
my $comment = sub { my ($bill, $text) = @_; '{"comment":"' . $text . '",' . substr(paid_answer($bill, '"10.00"'), 1) };
serve_for_bill('lat-cyrillic-200', 200, $comment->('lat-cyrillic-200', 'Тест'));
like(sql_in('latin1', q{SELECT try($$SELECT qiwi_bill_status('lat-cyrillic-200')$$)}),
	qr/^QKBAD: .*malformed \| .*LATIN1/, 'LATIN1: a bill with a Russian comment is QKBAD');
serve_for_bill('lat-latin1-200', 200, $comment->('lat-latin1-200', 'café'));
is(sql_in('latin1', q{SELECT status || ' ' || (comment = 'caf' || chr(233)) FROM qiwi_bill_status('lat-latin1-200')}),
	'PAID true', 'LATIN1: a bill with a comment in LATIN1 is read');

# Signatures in the LATIN1 database: key and fields are signed as UTF-8
# bytes, so the signature is the one the UTF-8 database makes
my $sign_latin1 = q{SELECT qiwi_sign_notification(jsonb_build_object('bill', jsonb_build_object(
	'siteId', 's', 'billId', 'caf' || chr(233), 'amount', '{"value":"5.00","currency":"RUB"}'::jsonb,
	'status', '{"value":"PAID"}'::jsonb)), 'cl' || chr(233))};
is(sql_in('latin1', $sign_latin1), sql_in('postgres', $sign_latin1),
	'LATIN1: a notification and key with an accented letter sign as in a UTF-8 database');

# The reconciler in the LATIN1 database
sql_in('postgres', q{ALTER SYSTEM SET qiwi.database = 'latin1'});
sql_in('postgres', q{SELECT pg_reload_conf()});
wait_in('latin1', q{SELECT running AND database = 'latin1' FROM qiwi_reconciler_status},
	'the reconciler moves to the LATIN1 database');
sandbox('/sandbox/bills/lat-ok/pay');
($pid, $rounds) = split /\|/, sql_in('latin1', q{SELECT pid, rounds FROM qiwi_reconciler_status});
sql_in('latin1', q{SELECT qiwi_reconcile_now()});
wait_in('latin1', qq{SELECT rounds > $rounds FROM qiwi_reconciler_status}, 'LATIN1: a round ends');
is(sql_in('latin1', q{SELECT pid FROM qiwi_reconciler_status}), $pid, 'LATIN1: the same reconciler is still running');
is(sql_in('latin1', q{SELECT last_round_checked, last_round_failed, last_round_changed FROM qiwi_reconciler_status}),
	'3|2|1', 'LATIN1: in one round the two hostile answers failed and the paid bill changed');
is(sql_in('latin1', q{SELECT string_agg(bill_id || ':' || status || ':' || failures, ',' ORDER BY bill_id) FROM qiwi_bills}),
	'lat-400:WAITING:1,lat-cyrillic-200:WAITING:1,lat-latin1-200:PAID:0,lat-ok:PAID:0', 'LATIN1: each bill as it should be');
is(sql_in('latin1', q{SELECT last_error FROM qiwi_bills WHERE bill_id = 'lat-400'}),
	'could not get the status of bill "lat-400": QIWI rejected the request', 'LATIN1: a 400 is recorded as QIWI rejecting it');
like(sql_in('latin1', q{SELECT last_error FROM qiwi_bills WHERE bill_id = 'lat-cyrillic-200'}), qr/malformed/,
	'LATIN1: a bill it cannot hold is recorded as malformed');

my $log = slurp_file($node->logfile);
unlike($log, qr/"qiwi_kassa reconciler" \(PID \d+\) exited with exit code/, 'the reconciler never exited with an error');
unlike($log, qr/terminated by signal/, 'no process crashed');

$node->stop;
done_testing();
