# The worker keeps qiwi_wallet_payments: a history filled at the sandbox
# (over 200 days: several 90-day windows and pages of 50) reaches the table
# for two merchants with no SQL call; a new payment comes on a later round;
# a WAITING transfer older than the overlap is followed until SUCCESS; a
# payment the table refuses is that payment's error only, and so is one QIWI
# writes that cannot be read (the sync and qiwi_wallet_history skip it, and
# say so); the money report
# spans Bill, Payin, Pull and Wallet; a 423 stops the merchant's sync, with
# a status and one log line, until the block ends; the token view and its
# daily log line; a revoked token stops the merchant until its mapping
# changes.
use strict;
use warnings;

use QiwiTest;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = qiwi_node('wallet_sync', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.wallet_sync_interval = '1s'
});
my $http = HTTP::Tiny->new;

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# The sandbox's Wallet counters (requests by service, blocked answers)
sub wallet_stats
{
	return decode_json($http->get("$sandbox_url/sandbox/wallet/stats")->{content});
}

# Move the sandbox's clock by $seconds
sub move_clock
{
	my ($seconds) = @_;
	sandbox('/sandbox/wallet/clock', qq{{"seconds": $seconds}});
}

sandbox('/sandbox/wallet/reset', '{}');
sandbox('/sandbox/reset');
sandbox('/sandbox/wallet/wallets', '{"number": "79000000271", "token": "wsync-token-one", "balance": "0"}');
sandbox('/sandbox/wallet/wallets', '{"number": "79000000272", "token": "wsync-token-two", "balance": "100.00"}');
sandbox('/sandbox/wallet/wallets/79000000271/payments', '{"count": 120, "days": 200, "amount": "2.50"}');
sandbox('/sandbox/wallet/wallets/79000000272/payments', '{"count": 60, "days": 30}');

# A transfer made two hours ago that stays WAITING for three hours: older
# than the overlap of later reads, it is followed because it is WAITING
sandbox('/sandbox/wallet/limits', '{"transferSeconds": 10800}');
move_clock(-7200);
my $transfer = $http->post("$sandbox_url/sinap/api/v2/terms/99/payments", {
	headers => { 'Authorization' => 'Bearer wsync-token-two', 'Content-Type' => 'application/json',
				 'Accept' => 'application/json' },
	content => encode_json({ id => '1700000000001', sum => { amount => 10, currency => '643' },
							 paymentMethod => { type => 'Account', accountId => '643' },
							 fields => { account => '+79000000271' }, comment => 'waits' }) });
is($transfer->{status}, 200, 'the sandbox accepts a transfer') or diag($transfer->{content});
move_clock(7200);

sandbox('/sandbox/pull/reset');
sandbox('/sandbox/pull/projects', '{"prv_id": "4271", "api_id": "8271", "api_password": "wsync-pull"}');
sandbox('/sandbox/payin/sites', '{"siteId": "wsync-site", "apiKey": "wsync-payin-key", "notificationKey": "n-w"}');
$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER w1 FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79000000271', wallet_api_url '$sandbox_url',
	wallet_token_issued '} . sql(q{SELECT (current_date - 170)::text}) . qq{');
CREATE USER MAPPING FOR PUBLIC SERVER w1 OPTIONS (wallet_token 'wsync-token-one');
CREATE SERVER w2 FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79000000272', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER w2 OPTIONS (wallet_token 'wsync-token-two');
CREATE SERVER pl FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '4271', pull_api_id '8271', pull_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pl OPTIONS (pull_api_password 'wsync-pull');
CREATE SERVER pa FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'wsync-site', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pa OPTIONS (payin_api_key 'wsync-payin-key');
});

# ---------- the history reaches the table, for two merchants ----------
wait_for(q{SELECT count(*) = 120 FROM qiwi_wallet_payments WHERE merchant = 'w1'},
	"merchant w1's 120 payments over 200 days reach qiwi_wallet_payments");
wait_for(q{SELECT count(*) = 61 FROM qiwi_wallet_payments WHERE merchant = 'w2'},
	"merchant w2's 60 payments and its transfer too");
is(sql(q{SELECT min(date) < now() - interval '190 days' AND sum(amount) = 300.00
		   AND bool_and(source = 'reconciler' AND type = 'IN' AND status = 'SUCCESS')
		 FROM qiwi_wallet_payments WHERE merchant = 'w1'}),
	't', 'across windows and pages, every payment once, as QIWI wrote it');
wait_for(q{SELECT synced_until IS NOT NULL AND items = 120 AND waiting = 0 AND last_error IS NULL
			 AND blocked_until IS NULL AND reading_from IS NULL FROM qiwi_wallet_sync_status WHERE merchant = 'w1'},
	'qiwi_wallet_sync_status shows w1 read whole');
is(sql(q{SELECT status || ' ' || amount || ' ' || type FROM qiwi_wallet_payments
		  WHERE merchant = 'w2' AND trm_txn_id = '1700000000001'}),
	'WAITING 10 OUT', 'the transfer is WAITING');
is(sql(q{SELECT waiting FROM qiwi_wallet_sync_status WHERE merchant = 'w2'}), '1', 'the status counts it waiting');

# ---------- new payments come on a later round ----------
sandbox('/sandbox/wallet/wallets/79000000271/payments', '{"amount": "7.77", "comment": "late"}');
wait_for(q{SELECT count(*) = 1 FROM qiwi_wallet_payments WHERE merchant = 'w1' AND comment = 'late' AND amount = 7.77},
	'a new payment appears on a later round');

# ---------- the WAITING transfer is followed until SUCCESS ----------
wait_for(q{SELECT synced_until > (SELECT date FROM qiwi_wallet_payments WHERE trm_txn_id = '1700000000001')
				  + interval '1 hour 5 seconds' FROM qiwi_wallet_sync WHERE merchant = 'w2'},
	'later reads of w2 start after the transfer, less the overlap');
move_clock(10800);
wait_for(q{SELECT status = 'SUCCESS' FROM qiwi_wallet_payments WHERE trm_txn_id = '1700000000001'},
	'the WAITING transfer is read again until it is SUCCESS');
wait_for(q{SELECT waiting = 0 FROM qiwi_wallet_sync_status WHERE merchant = 'w2'}, 'and no longer waiting');
move_clock(-10800);

# ---------- a payment the table refuses is its own error ----------
sandbox('/sandbox/wallet/wallets/79000000272/payments', '{"amount": "1.00", "type": "REFUND", "comment": "odd"}');
sandbox('/sandbox/wallet/wallets/79000000272/payments', '{"amount": "3.00", "comment": "after odd"}');
wait_for(q{SELECT count(*) = 1 FROM qiwi_wallet_payments WHERE merchant = 'w2' AND comment = 'after odd'},
	'the payments beside one the table refuses are recorded');
wait_for(q{SELECT last_error LIKE '%qiwi_wallet_payments_type_check%' FROM qiwi_wallet_sync_status WHERE merchant = 'w2'},
	'the refused payment is the status\'s last_error');
like(slurp_file($node->logfile), qr/could not record payment \d+ of the wallet history of merchant "w2"/,
	'and a log line names it');
is(sql(q{SELECT pid IS NOT NULL FROM qiwi_reconciler_status}), 't', 'the worker goes on');

# ---------- the money report spans every API ----------
sql(q{SELECT qiwi_create_bill('wsync-bill', 11.00, expires_at => now() + interval '1 day')});
sql(q{SELECT qiwi_payin_create_invoice('wsync-invoice', 7.00, merchant => 'pa')});
sql(q{SELECT qiwi_pull_create_bill('wsync-pull', '79161234567', 13.00, 'c', now() + interval '1 day', merchant => 'pl')});
is(sql(q{SELECT string_agg(api || ':' || status || ':' || amount || ':' || received, ',' ORDER BY api, status)
		   FROM qiwi_money_by_status WHERE api <> 'wallet' OR merchant = 'w2'}),
	'bill:WAITING:11.00:0.00,payin:INVOICE_CREATED:7.00:0.00,pull:WAITING:13.00:0.00,'
	. 'wallet:IN_SUCCESS:63:63,wallet:OUT_SUCCESS:10:-10',
	'qiwi_money_by_status: Bill, Payin, Pull and Wallet; a payment out is negative received');
is(sql(q{SELECT wallet_merchants || ' ' || wallet_failing || ' ' || wallet_blocked FROM qiwi_reconciler_health}),
	'2 1 0', 'qiwi_reconciler_health counts the wallet merchants, one failing');

# ---------- the token's expiry ----------
is(sql(q{SELECT string_agg(merchant || ':' || coalesce(days_left::text, '-') || ':' || coalesce(warn::text, '-') || ':' || state, ',' ORDER BY merchant)
		   FROM qiwi_wallet_tokens}),
	'w1:10:true:expires within 14 days,w2:-:-:unknown: the merchant has no wallet_token_issued option',
	'qiwi_wallet_tokens: w1 expires in 10 days, w2 unknown');
my @warned = slurp_file($node->logfile) =~ /the wallet token of merchant "w1" expires on/g;
is(scalar(@warned), 1, 'the worker said it once, over many rounds');
unlike(slurp_file($node->logfile), qr/wallet token of merchant "w2"/, 'and nothing of w2');
sql(q{CREATE ROLE wsync_reader; SELECT qiwi_grant('wsync_reader', 'read'); SELECT qiwi_grant('wsync_reader', 'monitor')});
is($node->safe_psql('postgres', q{SET ROLE wsync_reader;
	SELECT count(*) FROM qiwi_wallet_tokens; SELECT count(*) FROM qiwi_wallet_sync_status;
	SELECT wallet_merchants FROM qiwi_reconciler_health}), "2\n2\n2", 'a reading role sees the views');

# ---------- a payment QIWI writes that cannot be read is its own error ----------
# Older than the payment the table refuses, so that its error is the last of
# each round's read; a payment older still, and one newer, beside it
sub msk_ago { return sql(qq{SELECT to_char((now() - interval '$_[0]') AT TIME ZONE 'Europe/Moscow',
	'YYYY-MM-DD"T"HH24:MI:SS') || '+03:00'}); }
my ($odd) = sandbox('/sandbox/wallet/wallets/79000000272/payments',
	'{"amount": "5.00", "comment": "unreadable", "date": "' . msk_ago('30 minutes') . '", "writtenAs": {"sum": "lots"}}')
	=~ /"txnId":\s*(\d+)/;
ok($odd, 'the sandbox writes a payment whose sum cannot be read');
sandbox('/sandbox/wallet/wallets/79000000272/payments',
	'{"amount": "6.00", "comment": "older than unreadable", "date": "' . msk_ago('40 minutes') . '"}');
sandbox('/sandbox/wallet/wallets/79000000272/payments', '{"amount": "8.00", "comment": "newer than unreadable"}');
wait_for(q{SELECT count(*) = 2 FROM qiwi_wallet_payments WHERE merchant = 'w2' AND comment LIKE '%than unreadable'},
	'the payments before and after one that cannot be read are recorded');
wait_for(qq{SELECT last_error LIKE '%skipped item % of "data": txnId $odd: field "sum" is not an object'
			  FROM qiwi_wallet_sync_status WHERE merchant = 'w2'},
	'the payment that cannot be read is the status\'s last_error, naming its txnId');
is(sql(qq{SELECT count(*) FROM qiwi_wallet_payments WHERE txn_id = $odd}), '0', 'and it is not in the table');
like(slurp_file($node->logfile),
	qr/wallet history of merchant "w2": could not read the wallet's history \(page \d+\) wholly: skipped item \d+ of "data": txnId $odd: field "sum" is not an object/,
	'a log line names it');
my ($rows, $stderr) = ('', '');
$node->psql('postgres', q{SELECT string_agg(comment, ',' ORDER BY date) FROM qiwi_wallet_history(now() - interval '2 hours', merchant => 'w2')
	WHERE comment LIKE '%unreadable%'}, stdout => \$rows, stderr => \$stderr);
is($rows, 'older than unreadable,newer than unreadable', 'qiwi_wallet_history returns the payments beside it, not it');
like($stderr, qr/WARNING:  could not read the wallet's history \(page \d+\) wholly: skipped item \d+ of "data": txnId $odd: field "sum" is not an object/,
	'and warns of it, naming its txnId');

# ---------- a 423 stops the merchant's sync until the block ends ----------
# The sandbox blocks after 2 history requests a minute, while we allow 95;
# its clock is 290 s behind, so the block (dateTime + 5 min) ends in ~10 s.
sql(q{DROP SERVER w2 CASCADE});
move_clock(-290);
sandbox('/sandbox/wallet/limits', '{"requests": 2, "windowSeconds": 60, "blockSeconds": 1}');
wait_for(q{SELECT blocked_until BETWEEN now() AND now() + interval '15 s' FROM qiwi_wallet_sync_status WHERE merchant = 'w1'},
	'a 423 shows in the status with when the block ends');
like(slurp_file($node->logfile), qr/QIWI blocked the wallet of merchant "w1"; its history sync waits until/,
	'one log line says so');
is(sql(q{SELECT last_error LIKE '%blocked%' FROM qiwi_wallet_sync_status WHERE merchant = 'w1'}), 't',
	'last_error has the 423');
sandbox('/sandbox/wallet/limits', '{"requests": 100}');
my $before = wallet_stats()->{'payment-history'};
wait_for(q{SELECT now() > blocked_until - interval '2 s' FROM qiwi_wallet_sync WHERE merchant = 'w1'},
	'the block nears its end');
is(wallet_stats()->{'payment-history'}, $before, 'no history request was sent during the block');
my $resumed = sql(q{SELECT blocked_until FROM qiwi_wallet_sync WHERE merchant = 'w1'});
wait_for(qq{SELECT last_sync_at > '$resumed' AND blocked_until IS NULL AND last_error IS NULL
			  FROM qiwi_wallet_sync_status WHERE merchant = 'w1'},
	'after the block the sync goes on, clean');
my @blocked = slurp_file($node->logfile) =~ /QIWI blocked the wallet of merchant "w1"/g;
is(scalar(@blocked), 1, 'the block was said once');
move_clock(290);

# ---------- a refused token stops the merchant until its options change ----------
sandbox('/sandbox/wallet/wallets', '{"number": "79000000271", "token": "wsync-token-new"}');
wait_for(q{SELECT stopped_by_auth FROM qiwi_reconciler_status}, 'a revoked token (401) stops the merchant');
like(slurp_file($node->logfile), qr/QIWI refused the secret key of merchant "w1"/, 'the log says so');
sql(q{ALTER USER MAPPING FOR PUBLIC SERVER w1 OPTIONS (SET wallet_token 'wsync-token-new')});
sandbox('/sandbox/wallet/wallets/79000000271/payments', '{"amount": "4.44", "comment": "new token"}');
wait_for(q{SELECT count(*) = 1 FROM qiwi_wallet_payments WHERE merchant = 'w1' AND comment = 'new token'},
	'with the new token the sync goes on');
is(sql(q{SELECT stopped_by_auth FROM qiwi_reconciler_status}), 'f', 'and the worker is no longer stopped');

done_testing();
