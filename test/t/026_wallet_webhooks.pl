# End to end: a Wallet webhook registered at the sandbox, its key fetched
# into the merchant's user mapping, payments made at the sandbox delivered
# (signed) to test/notification_receiver.py --wallet, which stores them
# through psql; the trigger verifies and records them in
# qiwi_wallet_payments.  The receiver down at first: QIWI's retries (their
# delays shortened) deliver once it answers.  A duplicate applied once, a
# forgery refused, QIWI's test stored as a test; a key stored by hand;
# every statement logged, and neither key in the log.
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_hex);
use HTTP::Tiny;
use IPC::Run;
use MIME::Base64;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

my $src = $ENV{QIWI_SRC} or die "QIWI_SRC is not set";
my $http = HTTP::Tiny->new;
my $wallet = '79260001122';

# every statement logged: the key must be hidden in them all
my $node = qiwi_node('wallet_webhooks', "log_statement = 'all'\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }

# The receiver, on a port of its own
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $receiver;
sub start_receiver
{
	$receiver = IPC::Run::start(
		[ 'python3', "$src/test/notification_receiver.py", '--port', $port,
		  '--dbname', $node->connstr('postgres'), '--wallet' ],
		'>', \my $out, '2>', \my $err);
	for (1 .. 100)
	{
		return if $http->get("http://127.0.0.1:$port/")->{status} != 599;
		select(undef, undef, undef, 0.1);
	}
	die "the receiver did not start";
}

# The sandbox's deliveries so far
sub deliveries
{
	return decode_json($http->get("$sandbox_url/sandbox/wallet/webhooks")->{content});
}

# Whether a Perl condition comes true within the usual timeout
sub poll_until
{
	my ($cond) = @_;
	for (1 .. $PostgreSQL::Test::Utils::timeout_default * 10)
	{
		return 1 if $cond->();
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

sandbox('/sandbox/reset');
sandbox('/sandbox/wallet/wallets', qq{{"number": "$wallet", "token": "wh-token-0001-abcdef", "balance": "0.00"}});
sandbox('/sandbox/wallet/limits', '{"retrySeconds": [1, 1, 1, 1, 1]}');
$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER w1 FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '$wallet', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER w1 OPTIONS (wallet_token 'wh-token-0001-abcdef');
});

# ---------- the hook and its key ----------
is(sql(qq{SELECT txn_type FROM qiwi_wallet_webhook_register('http://127.0.0.1:$port/qiwi/wallet', merchant => 'w1')}),
	'BOTH', 'the hook is registered for both directions');
is(sql(q{SELECT url FROM qiwi_wallet_webhook('w1')}), "http://127.0.0.1:$port/qiwi/wallet", 'and is the active one');
is(sql(q{SELECT qiwi_wallet_webhook_fetch_key(merchant => 'w1')}), '', 'its key is fetched, and not returned');
like(sql(q{SELECT array_to_string(umoptions, ',') FROM pg_user_mapping u JOIN pg_foreign_server s ON s.oid = u.umserver
	WHERE s.srvname = 'w1'}), qr/wallet_webhook_key=[A-Za-z0-9+\/]{43}=/, 'it is kept in the user mapping');

# ---------- the receiver down: QIWI's retries deliver once it answers ----------
sandbox("/sandbox/wallet/wallets/$wallet/payments", '{"amount": "150.50", "account": "+79990001122", "comment": "order 1"}');
ok(poll_until(sub { my $d = deliveries(); @$d && @{ $d->[0]{attempts} } >= 1 }),
	'QIWI tries to deliver while the receiver is down');
is(sql(q{SELECT count(*) FROM qiwi_wallet_webhooks}), '0', 'nothing is stored meanwhile');
start_receiver();
wait_true($node, q{SELECT count(*) = 1 FROM qiwi_wallet_webhooks}, 'a retry delivers it once the receiver answers');
ok(poll_until(sub { deliveries()->[0]{delivered} }), 'QIWI counts it delivered');
cmp_ok(scalar @{ deliveries()->[0]{attempts} }, '>=', 2, 'after more than one attempt');
is(sql(q{SELECT merchant || ':' || verified || ':' || applied || ':' || coalesce(error, '') FROM qiwi_wallet_webhooks}),
	'w1:true:true:', 'stored, verified with the fetched key, and applied');
is(sql(q{SELECT txn_id || ':' || type || ':' || status || ':' || (amount = 150.50) || ':' || currency || ':' || account || ':' || source
	FROM qiwi_wallet_payments WHERE merchant = 'w1'}),
	sql(q{SELECT txn_id || ':IN:SUCCESS:true:RUB:+79990001122:notification' FROM qiwi_wallet_webhooks}),
	'the payment is in qiwi_wallet_payments');

# an amount of 1.00, sent as the JSON number 1
sandbox("/sandbox/wallet/wallets/$wallet/payments", '{"amount": "1.00", "account": "+79990001122", "comment": "order 2"}');
wait_true($node, q{SELECT count(*) = 2 FROM qiwi_wallet_payments WHERE merchant = 'w1'}, 'a second payment is recorded');
is(sql(q{SELECT body->'payment'->'sum'->>'amount' || ':' || verified FROM qiwi_wallet_webhooks ORDER BY id DESC LIMIT 1}),
	'1:true', 'an amount QIWI writes as 1 verifies');

# ---------- a duplicate applied once, a forgery refused ----------
my $body = sql(q{SELECT body FROM qiwi_wallet_webhooks ORDER BY id LIMIT 1});
my $r = $http->post("http://127.0.0.1:$port/qiwi/wallet", { content => $body, headers => { 'Content-Type' => 'application/json' } });
is($r->{status}, 200, 'the receiver stores a message delivered twice');
like(sql(q{SELECT verified || ':' || applied || ':' || error FROM qiwi_wallet_webhooks ORDER BY id DESC LIMIT 1}),
	qr/^true:false:a duplicate: message .* was stored before$/, 'verified, not applied again');
(my $forged = $body) =~ s/"amount": 150\.5\b/"amount": 1500.5/;
isnt($forged, $body, 'a forgery: the amount raised');
$r = $http->post("http://127.0.0.1:$port/qiwi/wallet", { content => $forged =~ s/"messageId": "[^"]+"/"messageId": "forged-1"/r,
	headers => { 'Content-Type' => 'application/json' } });
is(sql(q{SELECT verified || ':' || applied || ':' || error FROM qiwi_wallet_webhooks WHERE message_id = 'forged-1'}),
	'false:false:the signature does not match', 'the forgery is stored, refused');
is(sql(q{SELECT count(*) || ':' || (sum(amount) = 151.50) FROM qiwi_wallet_payments WHERE merchant = 'w1'}), '2:true',
	'each payment recorded once, at its amount');

# ---------- QIWI's test notification ----------
sql(q{SELECT qiwi_wallet_webhook_test('w1')});
wait_true($node, q{SELECT count(*) = 1 FROM qiwi_wallet_webhooks WHERE test}, 'the test notification arrives');
is(sql(q{SELECT verified || ':' || applied || ':' || coalesce(error, 'no error') FROM qiwi_wallet_webhooks WHERE test}),
	'false:false:no error', 'stored as a test: not verified, not an error');

# ---------- the key rotated: the old one no longer verifies ----------
sql(q{SELECT qiwi_wallet_webhook_fetch_key(true, 'w1')});
is(sql(qq{SELECT qiwi_wallet_verify_webhook('$body'::jsonb, merchant => 'w1')}), 'f', 'a rotated key refuses what the old one signed');
sandbox("/sandbox/wallet/wallets/$wallet/payments", '{"amount": "7", "account": "+79990001122"}');
wait_true($node, q{SELECT count(*) = 3 FROM qiwi_wallet_payments WHERE merchant = 'w1'}, 'the new key verifies what QIWI signs now');

is(sql(q{SELECT qiwi_wallet_webhook_delete('w1')}), 't', 'the hook is deleted');
my $key = sql(q{SELECT option_value FROM pg_options_to_table((SELECT umoptions FROM pg_user_mapping u
	JOIN pg_foreign_server s ON s.oid = u.umserver WHERE s.srvname = 'w1')) WHERE option_name = 'wallet_webhook_key'});
# a DBA stores a key by hand, as the documentation says
my $hand_key = 'aGFuZC1zdG9yZWQtd2FsbGV0LWhvb2sta2V5LTAwMDE=';
sql(qq{ALTER USER MAPPING FOR PUBLIC SERVER w1 OPTIONS (SET wallet_webhook_key '$hand_key')});
my $hand_hash = hmac_sha256_hex('7', decode_base64($hand_key));
is(sql(qq{SELECT qiwi_wallet_verify_webhook('{"hash": "$hand_hash", "payment": {"signFields": "txnId", "txnId": "7"}}',
	merchant => 'w1')}), 't', 'the hand-stored key verifies what it signed');
like(slurp_file($node->logfile), qr/statement hidden by qiwi_kassa: it gives or holds a key/,
	'the statement that stores it is logged hidden');
unlike(slurp_file($node->logfile), qr/\Q$key\E|\Q$hand_key\E/, 'neither key is in the log');

$receiver->kill_kill;
$node->stop;
done_testing();
