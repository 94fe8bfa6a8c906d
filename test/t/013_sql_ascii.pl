# A SQL_ASCII database holds QIWI's text as its UTF-8 bytes.  An answer
# whose text has \u escapes beyond ASCII (Russian in "comment", in an error
# description) reads as if QIWI had sent the characters themselves: for a
# SQL call and for the reconciler, Bill Payments and Payin alike.  The
# reconciler (same PID) checks every item of its round.  A text argument
# that is not UTF-8 (comment, account, custom_fields, URLs, ids) is refused
# with 22021, naming it, and nothing is sent.
use strict;
use warnings;

use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

# A long interval: only qiwi_reconcile_now() starts the round looked at
my $node = qiwi_node('sql_ascii', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '60s'
qiwi.reconcile_concurrency = 4
});
sandbox('/sandbox/reset');
sandbox('/sandbox/payin/sites', '{"siteId": "asc", "apiKey": "asc-api-key", "notificationKey": "asc-n"}');
$node->safe_psql('postgres',
	q{CREATE DATABASE ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});

# A query's output in the SQL_ASCII database; its output or its error
sub sql { return $node->safe_psql('ascii', $_[0]); }
sub sql_or_error
{
	my ($ret, $out, $err) = $node->psql('ascii', $_[0]);
	return $ret == 0 ? $out : $err;
}

sql(qq{CREATE EXTENSION qiwi_kassa;
	CREATE SERVER pa FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'asc', payin_api_url '$sandbox_url');
	CREATE USER MAPPING FOR PUBLIC SERVER pa OPTIONS (payin_api_key 'asc-api-key');
	CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS \$\$
	DECLARE
		state text;
		msg text;
	BEGIN
		EXECUTE stmt;
		RETURN 'ok';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
		RETURN state || ': ' || msg;
	END \$\$});
is(sql('SELECT getdatabaseencoding()'), 'SQL_ASCII', 'the database is SQL_ASCII');

# Answer requests about one item with status and body, a thousand times
sub serve
{
	my (%fault) = (times => 1000, @_);
	my $json = join(',', map {
		my $v = $fault{$_};
		$v =~ /^\d+$/ ? qq("$_":$v) : qq("$_":") . ($v =~ s/(["\\])/\\$1/gr) . '"'
	} sort keys %fault);
	sandbox('/sandbox/faults', "{$json}");
}

# "Заказ" (the bytes of this file are UTF-8), and as QIWI may escape it
my $order = 'Заказ';
my $escaped = '\u0417\u0430\u043a\u0430\u0437';

# A PAID answer for a bill with a comment (raw JSON text)
sub paid_with_comment
{
	my ($bill, $comment) = @_;
	return qq({"siteId":"270305","billId":"$bill","amount":{"currency":"RUB","value":"10.00"},)
	  . qq("status":{"value":"PAID","changedDateTime":"2020-01-01T10:00:00+03:00"},"comment":"$comment"});
}

# ---------- arguments that are not UTF-8 are refused before sending ----------
my $bills_before = sandbox_requests();
my $payin_before = payin_requests();
my %refused = (
	q{qiwi_create_bill(E'caf\xe9', 10)} => '22021: bill_id is not valid UTF-8',
	q{qiwi_create_bill('b-bad', 10, comment => E'caf\xe9')} => '22021: comment is not valid UTF-8',
	q{qiwi_create_bill('b-bad', 10, account => E'caf\xe9')} => '22021: account is not valid UTF-8',
	q{qiwi_create_bill('b-bad', 10, custom_fields => E'{"k":"caf\xe9"}')} =>
	  '22021: the value of key "k" of custom_fields is not valid UTF-8',
	q{qiwi_create_bill('b-bad', 10, custom_fields => E'{"caf\xe9":"v"}')} =>
	  '22021: a key of custom_fields is not valid UTF-8',
	q{qiwi_create_bill('b-bad', 10, success_url => E'https://shop.example/caf\xe9')} =>
	  '22021: success_url is not valid UTF-8',
	q{qiwi_payin_create_invoice('pi-bad', 5, comment => E'\xd0', merchant => 'pa')} =>
	  '22021: comment is not valid UTF-8',
	q{qiwi_payin_create_invoice('pi-bad', 5, account => E'caf\xe9', merchant => 'pa')} =>
	  '22021: account is not valid UTF-8',
	q{qiwi_payin_create_invoice('pi-bad', 5, custom_fields => E'{"cf1":"\xd0\xd0"}', merchant => 'pa')} =>
	  '22021: the value of key "cf1" of custom_fields is not valid UTF-8',
	q{qiwi_payin_create_invoice('pi-bad', 5, callback_url => E'https://shop.example/caf\xe9', merchant => 'pa')} =>
	  '22021: callback_url is not valid UTF-8',
);
for my $call (sort keys %refused)
{
	is(sql(qq{SELECT try(\$\$SELECT $call\$\$)}), $refused{$call}, "refused: $call");
}
is(sandbox_requests(), $bills_before, 'no Bill Payments request was sent for them');
is(payin_requests(), $payin_before, 'no Payin request was sent for them');
is(sql(q{SELECT (SELECT count(*) FROM qiwi_bills) + (SELECT count(*) FROM qiwi_payin_invoices)}), '0',
	'nothing was recorded');

# The same calls with UTF-8 text are sent
is(sql(qq{SELECT comment = '$order' FROM qiwi_create_bill('b-ok', 10, comment => '$order', account => 'café',
	custom_fields => '{"k":"$order"}', success_url => 'https://shop.example/café')}), 't',
	'a bill with UTF-8 text is created');
is(sql(qq{SELECT comment = '$order' FROM qiwi_payin_create_invoice('pi-ok', 5, comment => '$order',
	account => 'café', custom_fields => '{"cf1":"$order"}', merchant => 'pa')}), 't',
	'a Payin invoice with UTF-8 text is created');
is(sandbox_requests(), $bills_before + 1, 'the bill was sent');
is(payin_requests(), $payin_before + 1, 'the invoice was sent');

# Payin API requests the sandbox has served so far
sub payin_requests
{
	my $stats = HTTP::Tiny->new->get("$sandbox_url/sandbox/payin/stats")->{content};
	return $stats =~ /"requests":\s*(\d+)/ ? $1 : die "no Payin stats from the sandbox: $stats";
}

# ---------- answers with \u escapes: the reconciler ----------
sql(q{SELECT qiwi_create_bill(b, 10) FROM unnest(ARRAY['b-escaped', 'b-raw', 'b-400']) b;
	SELECT qiwi_payin_create_invoice('pi-escaped', 5, comment => 'Order', merchant => 'pa')});
sql(q{UPDATE qiwi_bills SET next_check_at = 'infinity'; UPDATE qiwi_payin_invoices SET next_check_at = 'infinity'});
sandbox('/sandbox/bills/b-ok/pay');
for my $bill ('pi-ok', 'pi-escaped')
{
	sandbox("/sandbox/payin/sites/asc/bills/$bill/pay",
		'{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}');
}
serve(bill => 'b-escaped', status => 200, body => paid_with_comment('b-escaped', $escaped));
serve(bill => 'b-raw', status => 200, body => paid_with_comment('b-raw', $order));
serve(bill => 'b-400', status => 400,
	body => '{"errorCode":"validation.error","description":"\u041d\u0435\u0432\u0435\u0440\u043d\u043e","traceId":"t1"}');
# the invoice's own details, with the comment escaped
my $details = HTTP::Tiny->new->get("$sandbox_url/partner/payin/v1/sites/asc/bills/pi-escaped/details",
	{ headers => { Authorization => 'Bearer asc-api-key', Accept => 'application/json' } })->{content};
like($details, qr/"status":\{"value":"PAID"/, 'the paid invoice as QIWI has it');
$details =~ s/"comment":"Order"/"comment":"$escaped"/ or die "no comment in $details";
serve(api => 'payin', site => 'asc', bill => 'pi-escaped', status => 200, body => $details);

# The reconciler moves to the SQL_ASCII database; one round checks them all
sql(q{ALTER SYSTEM SET qiwi.database = 'ascii'});
sql(q{SELECT pg_reload_conf()});
ok($node->poll_query_until('ascii', q{SELECT running AND database = 'ascii' FROM qiwi_reconciler_status}),
	'the reconciler serves the SQL_ASCII database');
my ($pid, $rounds) = split /\|/, sql(q{SELECT pid, rounds FROM qiwi_reconciler_status});
sql(q{SELECT qiwi_reconcile_now()});
ok($node->poll_query_until('ascii', qq{SELECT rounds > $rounds AND last_round_checked > 0 FROM qiwi_reconciler_status}),
	'a round ends');
is(sql(q{SELECT pid FROM qiwi_reconciler_status}), $pid, 'the same reconciler is still running');
is(sql(q{SELECT last_round_checked, last_round_failed, last_round_changed FROM qiwi_reconciler_status}),
	'6|1|5', 'in one round it checked every item: the 400 failed, the others were paid');
is(sql(q{SELECT string_agg(bill_id || ':' || status || ':' || failures, ',' ORDER BY bill_id) FROM qiwi_bills}),
	'b-400:WAITING:1,b-escaped:PAID:0,b-ok:PAID:0,b-raw:PAID:0', 'the bills as QIWI has them');
is(sql(q{SELECT last_error FROM qiwi_bills WHERE bill_id = 'b-400'}),
	'could not get the status of bill "b-400": QIWI rejected the request: Неверно',
	'the 400 is recorded as a refusal, with its escaped description');
is(sql(q{SELECT string_agg(bill_id || ':' || status || ':' || failures, ',' ORDER BY bill_id) FROM qiwi_payin_invoices}),
	'pi-escaped:PAID:0,pi-ok:PAID:0', 'the Payin invoices as QIWI has them');

# ---------- answers with \u escapes: SQL calls ----------
is(sql_or_error(qq{SELECT status || ' ' || (comment = '$order') FROM qiwi_bill_status('b-escaped')}), 'PAID true',
	'an escaped comment reads as the UTF-8 bytes of its characters');
is(sql_or_error(qq{SELECT status || ' ' || (comment = '$order') FROM qiwi_bill_status('b-raw')}), 'PAID true',
	'as the same comment sent unescaped');
is(sql_or_error(qq{SELECT status || ' ' || (comment = '$order') FROM qiwi_payin_invoice('pi-escaped', 'pa')}),
	'PAID true', 'Payin: an escaped comment reads the same');
# a pair of surrogates is one character; \u0000 is no text, in any database
serve(bill => 'b-emoji', status => 200, body => paid_with_comment('b-emoji', '\ud83d\ude00'));
is(sql_or_error(q{SELECT comment = '😀' FROM qiwi_bill_status('b-emoji')}), 't',
	'an escaped surrogate pair reads as the UTF-8 bytes of its character');
serve(bill => 'b-nul', status => 200, body => paid_with_comment('b-nul', '\u0000'));
is(sql(q{SELECT try($$SELECT qiwi_bill_status('b-nul')$$)}),
	'QKBAD: could not get the status of bill "b-nul": QIWI\'s answer is malformed', 'an escaped NUL is malformed');
is(sql(q{SELECT try($$SELECT qiwi_bill_status('b-400')$$)}),
	'QK400: could not get the status of bill "b-400": QIWI rejected the request: Неверно',
	'an escaped error answer is QIWI\'s refusal, its description read');

my $log = slurp_file($node->logfile);
unlike($log, qr/"qiwi_kassa reconciler" \(PID \d+\) exited with exit code/, 'the reconciler never exited with an error');
unlike($log, qr/conversion between UTF8 and SQL_ASCII/, 'no conversion error was raised');

$node->stop;
done_testing();
