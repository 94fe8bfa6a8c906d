# Wallet transfers are never doubled: a transfer whose answer is lost (the
# sandbox acts, then drops the connection) is found in the wallet's
# history by its client id and not sent again, from a SQL call and from the
# worker; an after-commit transfer rolled back is never sent, committed is
# sent exactly once; the worker follows a sent transfer through WAITING to
# SUCCESS, and one the recipient refuses to ERROR with QIWI's code.
use strict;
use warnings;

use HTTP::Tiny;
use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = qiwi_node('wallet_transfers', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
});
sandbox('/sandbox/wallet/reset', '{}');
sandbox('/sandbox/wallet/wallets', '{"number": "79220000001", "token": "xfer-token-a", "balance": "1000.00"}');
sandbox('/sandbox/wallet/wallets', '{"number": "79220000002", "token": "xfer-token-b"}');
sandbox('/sandbox/wallet/wallets', '{"number": "79220000003", "token": "xfer-token-c", "refuseIncoming": 57}');

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# A field of the sandbox's Wallet answer at path
sub wallet_field
{
	my ($path, $field) = @_;
	my $r = HTTP::Tiny->new->get("$sandbox_url/sandbox/wallet/$path");
	die "sandbox $path: $r->{status}" unless $r->{success};
	return $r->{content} =~ /"\Q$field\E":\s*"?([0-9.]+)/ ? $1 : 0;
}

# Transfers POSTed to the sandbox so far, and wallet A's balance there
sub transfers_sent { return wallet_field('stats', 'sinap'); }
sub balance_a { return wallet_field('wallets/79220000001', 'balance'); }

$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER wa FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79220000001', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER wa OPTIONS (wallet_token 'xfer-token-a');
});

# ---------- a lost answer to a SQL call ----------
sandbox('/sandbox/faults', '{"api": "wallet", "drop": "after", "times": 1}');
is(sql(q{SELECT status || ':' || (txn_id > 0) FROM qiwi_wallet_transfer('79220000002', 10.00, 'lost', merchant => 'wa')}),
	'SUCCESS:true', 'a transfer whose answer was lost is found in the history, with its txnId and status');
is(transfers_sent(), 1, 'it was POSTed once: the history answered before any resend');
is(balance_a(), '990.00', 'the wallet paid it once');
is(sql(q{SELECT string_agg(coalesce(old_status, '-') || '>' || new_status, ',' ORDER BY e.id)
	FROM qiwi_wallet_transfer_events e JOIN qiwi_wallet_transfers USING (merchant, client_txn_id)
	WHERE comment = 'lost'}), '->sending,sending>SUCCESS', 'recorded as the history has it');

# ---------- after commit: rolled back none, committed one ----------
sql(q{BEGIN; SELECT qiwi_wallet_transfer_after_commit('79220000002', 15.00, 'rolled back', merchant => 'wa'); ROLLBACK});
is(sql(q{SELECT status FROM qiwi_wallet_transfer_after_commit('79220000002', 20.00, 'committed', merchant => 'wa')}),
	'queued', 'an after-commit transfer is queued');
wait_for(q{SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'committed'},
	'the worker sends it after the commit and follows it to SUCCESS');
is(transfers_sent(), 2, 'exactly one more transfer was POSTed: the rolled-back one never');
is(balance_a(), '970.00', 'the wallet paid the committed one only');
is(sql(q{SELECT string_agg(coalesce(old_status, '-') || '>' || new_status || ':' || source, ',' ORDER BY e.id)
	FROM qiwi_wallet_transfer_events e JOIN qiwi_wallet_transfers USING (merchant, client_txn_id)
	WHERE comment = 'committed'}),
	'->queued:call,queued>sent:reconciler,sent>SUCCESS:reconciler', 'its events, from the call and the worker');

# ---------- a lost answer to the worker ----------
sandbox('/sandbox/faults', '{"api": "wallet", "drop": "after", "times": 1}');
sql(q{SELECT qiwi_wallet_transfer_after_commit('79220000002', 30.00, 'worker lost', merchant => 'wa')});
wait_for(q{SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'worker lost'},
	'a transfer the worker sent and lost the answer of reaches SUCCESS');
is(sql(q{SELECT last_error LIKE 'could not transfer%' FROM qiwi_wallet_transfers WHERE comment = 'worker lost'}),
	't', 'its lost answer was recorded');
is(transfers_sent(), 3, 'it was POSTed once');
is(balance_a(), '940.00', 'and paid once');

# ---------- WAITING, then SUCCESS or ERROR ----------
sandbox('/sandbox/wallet/limits', '{"transferSeconds": 3600}');
sql(q{SELECT qiwi_wallet_transfer('79220000002', 40.00, 'slow', merchant => 'wa');
      SELECT qiwi_wallet_transfer('79220000003', 50.00, 'refused', merchant => 'wa')});
wait_for(q{SELECT bool_and(check_count >= 2) FROM qiwi_wallet_transfers WHERE comment IN ('slow', 'refused')},
	'the worker checks the WAITING transfers');
is(sql(q{SELECT string_agg(status, ',' ORDER BY comment) FROM qiwi_wallet_transfers WHERE comment IN ('slow', 'refused')}),
	'sent,sent', 'they stay sent while the history says WAITING');
sandbox('/sandbox/wallet/clock', '{"seconds": 3601}');
wait_for(q{SELECT count(*) = 2 FROM qiwi_wallet_transfers WHERE comment IN ('slow', 'refused') AND status <> 'sent'},
	'once settled, the worker learns their final status');
is(sql(q{SELECT string_agg(comment || ':' || status || ':' || coalesce(error_code::text, '-') || ':' || (error IS NOT NULL),
	',' ORDER BY comment) FROM qiwi_wallet_transfers WHERE comment IN ('slow', 'refused')}),
	'refused:ERROR:57:true,slow:SUCCESS:-:false', 'SUCCESS, and ERROR with QIWI\'s code and reason');
is(balance_a(), '900.00', 'the refused transfer\'s money came back');
is(sql(q{SELECT count(*) FROM qiwi_wallet_transfers WHERE status NOT IN ('SUCCESS', 'ERROR')}), '0',
	'every transfer is final');

$node->stop;
done_testing();
