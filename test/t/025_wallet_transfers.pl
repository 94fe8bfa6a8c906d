# Wallet transfers are never doubled: a transfer whose answer is lost (the
# sandbox acts, then drops the connection) is found in the wallet's
# history by its client id and not sent again, from a SQL call and from the
# worker; an after-commit transfer rolled back is never sent, committed is
# sent exactly once; the worker follows a sent transfer through WAITING to
# SUCCESS, and one the recipient refuses to ERROR with QIWI's code.  The
# worker commits 'sending' before its POST: killed between the POST and
# recording it, it finds the transfer in the history and sends nothing
# again; a 'sending' transfer the history lists late stays 'sending' until
# it is listed, one QIWI never got is UNSENT only past
# qiwi.unsent_after; queued transfers go in client-id
# order, and one QIWI refuses as not increasing is REFUSED.  A call's intent
# is committed before its POST (read from a second session while the POST is
# held); its caller rolled back, the worker settles it from the history; the
# reconciler's sweep at its start finds a queued transfer QIWI has and sends
# nothing; a status the table does not know fails the transfer's check, not
# the reconciler; with no free worker slot a call is refused before sending.
use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(usleep);
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
# Requests a "hold" fault keeps waiting at the sandbox
sub held { return HTTP::Tiny->new->get("$sandbox_url/sandbox/stats")->{content} =~ /"held":\s*(\d+)/ ? $1 : -1; }
sub balance_a { return wallet_field('wallets/79220000001', 'balance'); }

$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER wa FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79220000001', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER wa OPTIONS (wallet_token 'xfer-token-a');
});

# ---------- a lost answer to a SQL call ----------
sandbox('/sandbox/faults', '{"api": "wallet", "service": "sinap", "drop": "after", "times": 1}');
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
	'->queued:call,queued>sending:reconciler,sending>sent:reconciler,sent>SUCCESS:reconciler',
	'its events, from the call and the worker: sending committed before the POST');

# ---------- a lost answer to the worker ----------
sandbox('/sandbox/faults', '{"api": "wallet", "service": "sinap", "drop": "after", "times": 1}');
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

# The events of the transfer with comment $comment, old>new:source
sub events_of
{
	my ($comment) = @_;
	return sql(qq{SELECT string_agg(coalesce(old_status, '-') || '>' || new_status || ':' || source, ',' ORDER BY e.id)
		FROM qiwi_wallet_transfer_events e JOIN qiwi_wallet_transfers USING (merchant, client_txn_id)
		WHERE comment = '$comment'});
}

# ---------- the worker killed between its POST and recording the answer ----------
sandbox('/sandbox/wallet/limits', '{"transferSeconds": 0}');
my $sent = transfers_sent();
my $balance = balance_a();
sandbox('/sandbox/faults', '{"api": "wallet", "service": "sinap", "hold": true, "drop": "after", "times": 1}');
sql(q{SELECT qiwi_wallet_transfer_after_commit('79220000002', 5.00, 'crash', merchant => 'wa')});
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
usleep(50_000) while held() != 1 && time < $deadline;
is(held(), 1, 'the worker\'s POST is at the sandbox, held unanswered');
is(sql(q{SELECT status FROM qiwi_wallet_transfers WHERE comment = 'crash'}), 'sending',
	'the move to sending was committed before the POST');
my $pid = sql(q{SELECT pid FROM qiwi_reconciler_status});
sql(qq{SELECT pg_terminate_backend($pid)});
wait_for(qq{SELECT running AND pid <> $pid FROM qiwi_reconciler_status}, 'the killed worker is back');
sandbox('/sandbox/release', '');
wait_for(q{SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'crash'},
	'the new worker finds it in the history by its client id');
is(transfers_sent(), $sent + 1, 'exactly one transfer reached the sandbox: nothing was sent again');
is(balance_a(), sprintf('%.2f', $balance - 5), 'and it was paid once');
is(events_of('crash'), '->queued:call,queued>sending:reconciler,sending>SUCCESS:reconciler',
	'queued, sending, then SUCCESS from the history');

# ---------- listed late: 'sending', followed until QIWI lists it ----------
sandbox('/sandbox/wallet/limits', '{"listSeconds": 3600}');
sandbox('/sandbox/faults', '{"api": "wallet", "service": "sinap", "drop": "after", "times": 1}');
sql(q{SELECT qiwi_wallet_transfer_after_commit('79220000002', 6.00, 'late', merchant => 'wa')});
wait_for(q{SELECT status = 'sending' AND check_count >= 2 FROM qiwi_wallet_transfers WHERE comment = 'late'},
	'a transfer the history does not list yet is looked for again and again');
is(sql(q{SELECT status FROM qiwi_wallet_transfers WHERE comment = 'late'}), 'sending',
	'and stays sending within qiwi.unsent_after (an hour)');
sandbox('/sandbox/wallet/clock', '{"seconds": 3601}');
wait_for(q{SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'late'},
	'once QIWI lists it, it is SUCCESS, never UNSENT');
is(events_of('late'), '->queued:call,queued>sending:reconciler,sending>SUCCESS:reconciler', 'never UNSENT');
sandbox('/sandbox/wallet/limits', '{"listSeconds": 0}');

# ---------- never got by QIWI: UNSENT past the grace ----------
$node->safe_psql('postgres', q{ALTER SYSTEM SET qiwi.unsent_after = '3s'; SELECT pg_reload_conf()});
$sent = transfers_sent();
$balance = balance_a();
sandbox('/sandbox/faults', '{"api": "wallet", "service": "sinap", "drop": "before", "times": 1}');
sql(q{SELECT qiwi_wallet_transfer_after_commit('79220000002', 7.00, 'never', merchant => 'wa')});
wait_for(q{SELECT status = 'UNSENT' FROM qiwi_wallet_transfers WHERE comment = 'never'},
	'a transfer QIWI never got ends UNSENT');
is(sql(q{SELECT check_count >= 1 AND status_changed_at >= created_at + interval '3 s'
	AND last_error LIKE '%history has no such transfer, 3 s after it was recorded'
	FROM qiwi_wallet_transfers WHERE comment = 'never'}), 't',
	'only past the grace, after a look that found it absent, with the reason');
is(transfers_sent() . ' ' . balance_a(), "$sent $balance", 'nothing was sent again, nothing moved');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET qiwi.unsent_after; SELECT pg_reload_conf()});

# ---------- queued transfers in client-id order; one overtaken is REFUSED ----------
sql(q{BEGIN;
	SELECT qiwi_wallet_transfer_after_commit('79220000002', 1.00, 'order ' || n, merchant => 'wa') FROM generate_series(1, 4) n;
	COMMIT});
wait_for(q{SELECT count(*) = 4 FROM qiwi_wallet_transfers WHERE comment LIKE 'order %' AND status = 'SUCCESS'},
	'four queued transfers are all taken');
is(sql(q{SELECT array_agg(comment ORDER BY txn_id) = array_agg(comment ORDER BY client_txn_id::numeric)
	FROM qiwi_wallet_transfers WHERE comment LIKE 'order %'}), 't', 'QIWI got them in client-id order');
$balance = balance_a();
sql(q{BEGIN;
	SELECT qiwi_wallet_transfer_after_commit('79220000002', 8.00, 'behind', merchant => 'wa');
	SELECT qiwi_wallet_transfer('79220000002', 9.00, 'ahead', merchant => 'wa');
	COMMIT});
wait_for(q{SELECT status = 'REFUSED' FROM qiwi_wallet_transfers WHERE comment = 'behind'},
	'a queued transfer whose id a later call overtook is REFUSED, not retried');
is(sql(q{SELECT error = last_error AND error LIKE 'client id % is not above %, which QIWI accepted first'
	FROM qiwi_wallet_transfers WHERE comment = 'behind'}), 't', 'with the reason');
is(balance_a(), sprintf('%.2f', $balance - 9), 'only the call\'s transfer was paid');

# ---------- a call's intent is committed before its POST ----------
# The call's POST held at the sandbox: a second session reads the intent
# committed; the call's transaction then rolls back, and the worker settles
# the committed 'sending' row from the history, sending nothing again.
$sent = transfers_sent();
$balance = balance_a();
sandbox('/sandbox/faults', '{"api": "wallet", "service": "sinap", "hold": true, "times": 1}');
my ($call_out, $call_err) = ('', '');
my $call = IPC::Run::start(['psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'), '-c',
	q{BEGIN; SELECT status FROM qiwi_wallet_transfer('79220000002', 11.00, 'rolled back call', merchant => 'wa'); ROLLBACK}],
	'>', \$call_out, '2>', \$call_err);
$deadline = time + $PostgreSQL::Test::Utils::timeout_default;
usleep(50_000) while held() != 1 && time < $deadline;
is(held(), 1, 'the call\'s POST is at the sandbox, held unanswered');
is(sql(q{SELECT status || ':' || (txn_id IS NULL) FROM qiwi_wallet_transfers WHERE comment = 'rolled back call'}),
	'sending:true', 'another session reads its intent, committed before the POST');
sandbox('/sandbox/release', '');
$call->finish;
like($call_out, qr/^sent$/m, 'the call returned sent');
wait_for(q{SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'rolled back call'},
	'its transaction rolled back: the worker settles the committed intent from the history');
is(transfers_sent(), $sent + 1, 'exactly one transfer reached the sandbox');
is(balance_a(), sprintf('%.2f', $balance - 11), 'and it was paid once');
is(events_of('rolled back call'), '->sending:call,sending>SUCCESS:reconciler',
	'the intent from the call, SUCCESS from the worker (the call\'s own record rolled back)');

# ---------- the sweep at the reconciler's start ----------
# A transfer queued here that QIWI has (its move to 'sending' lost, as a
# promoted asynchronous standby would lose it), due in no round: the
# restarted reconciler's sweep finds it in the history before it sends
# anything, and does not send it.
sql(q{UPDATE qiwi_wallet_transfers SET status = 'queued', txn_id = NULL, sent_at = NULL, next_check_at = 'infinity'
	WHERE comment = 'rolled back call'});
$sent = transfers_sent();
my $log_offset = -s $node->logfile;
$pid = sql(q{SELECT pid FROM qiwi_reconciler_status});
sql(qq{SELECT pg_terminate_backend($pid)});
wait_for(qq{SELECT running AND pid <> $pid FROM qiwi_reconciler_status}, 'the killed worker is back');
wait_for(q{SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'rolled back call'},
	'its sweep found the queued transfer in the history');
my $log = substr(slurp_file($node->logfile), $log_offset);
like($log, qr/swept [1-9]\d* items? sent with an outcome not known before sending anything new: [1-9]\d* changed/,
	'the sweep ran first and said how many it swept');
like($log, qr/WARNING: +Wallet transfer \d+ of merchant "wa" is queued here but QIWI has it: recorded from the history, not sent again/,
	'and warned of the lost move');
is(transfers_sent(), $sent, 'nothing was sent again');
is(events_of('rolled back call'), '->sending:call,sending>SUCCESS:reconciler,queued>SUCCESS:reconciler',
	'SUCCESS again, from the history');

# ---------- a status the table does not know fails the check, not the worker ----------
# The history lists a transfer in flight with a status QIWI does not
# document: it is not recorded, its check fails saying why, and the
# reconciler goes on.
my $odd = sql(q{SELECT (max(client_txn_id::numeric) + 1)::text FROM qiwi_wallet_transfers});
sql(qq{INSERT INTO qiwi_wallet_transfers (merchant, client_txn_id, status, to_wallet, amount, comment)
	VALUES ('wa', '$odd', 'sending', '79220000002', 3.00, 'odd status')});
$pid = sql(q{SELECT pid FROM qiwi_reconciler_status});
my $item = qq{{"txnId": 987654321, "personId": 79220000001, "date": "2023-02-17T14:50:44+03:00", "errorCode": 0,
	"error": null, "status": "PROCESSING", "type": "OUT", "trmTxnId": "$odd", "account": "+79220000002",
	"sum": {"amount": 3, "currency": 643}, "provider": {"id": 99}, "comment": "odd status"}};
sandbox('/sandbox/faults', encode_json({ api => 'wallet', service => 'payment-history', status => 200, times => 1000,
	body => qq{{"data": [$item], "nextTxnId": null, "nextTxnDate": null}} }));
wait_for(q{SELECT last_error LIKE '%check constraint%' FROM qiwi_wallet_transfers WHERE comment = 'odd status'},
	'the transfer\'s check failed, saying why');
HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults");
is(sql(q{SELECT status FROM qiwi_wallet_transfers WHERE comment = 'odd status'}), 'sending', 'it is not recorded');
is(sql(q{SELECT pid FROM qiwi_reconciler_status}), $pid, 'the reconciler goes on');
sql(q{DELETE FROM qiwi_wallet_transfers WHERE comment = 'odd status'});

# ---------- no free worker slot: refused before anything is sent ----------
$node->append_conf('postgresql.conf', 'max_worker_processes = 0');
$node->restart;
$sent = transfers_sent();
my $rows = sql(q{SELECT count(*) FROM qiwi_wallet_transfers});
my ($ret, $out, $err) = $node->psql('postgres',
	q{SELECT qiwi_wallet_transfer('79220000002', 12.00, 'no slot', merchant => 'wa')}, extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/53400: could not record the intent to transfer \d+: no background worker slot is free/,
	'with no free worker slot the call is refused');
is(transfers_sent() . ' ' . sql(q{SELECT count(*) FROM qiwi_wallet_transfers}), "$sent $rows",
	'before anything was recorded or sent');

$node->stop;
done_testing();
