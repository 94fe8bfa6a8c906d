# Failover loses and doubles nothing, in the style of src/test/recovery.
# (a) A primary with a synchronous standby dies ('immediate') while QIWI
# holds its answers: a reconciler round (bill checks and after-commit
# creates), a synchronous Wallet transfer, a Payin capture and refund and a
# Pull refund are in flight, an after-commit Wallet transfer is queued.  QIWI then carries
# out what it got; the standby is promoted, and its reconciler asks before
# it sends: QIWI saw every id exactly once, every intent ends resolved, and
# the tables agree with QIWI's books (the Payin capture and refund in
# flight included, settled by the reconciler).  (b) An asynchronous standby that did
# not receive a committed, sent transfer is promoted: the transfer is not
# sent again, the wallet's history shows it in
# qiwi_wallet_transfers_unrecorded, and the new primary's client ids pass
# it.  (c) The old primary, rewound with pg_rewind, follows as a standby
# and sends nothing while items are due there.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use QiwiTest qw(:DEFAULT sandbox_get writes held poll_until wait_held);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

sandbox('/sandbox/reset');
sandbox('/sandbox/wallet/wallets', '{"number": "79280000001", "token": "fo-token-1", "balance": "1000.00"}');
sandbox('/sandbox/wallet/wallets', '{"number": "79280000002", "token": "fo-token-2", "balance": "1000.00"}');
sandbox('/sandbox/wallet/wallets', '{"number": "79280000009", "token": "fo-token-9"}');
sandbox('/sandbox/payin/sites', '{"siteId": "fo-site", "apiKey": "fo-payin-key", "notificationKey": "fo-n"}');
sandbox('/sandbox/pull/projects', '{"prv_id": "4828", "api_id": "8828", "api_password": "fo-pull-pass"}');

# How many times QIWI got a request that may change something (writes, QiwiTest)
sub bill_puts { return writes("PUT /partner/bill/v1/bills/$_[0]"); }
sub transfer_posts { return writes("POST /sinap/api/v2/terms/99/payments id=$_[0]"); }
sub payin_puts { return writes("PUT /partner/payin/v1/sites/fo-site/payments/$_[0]"); }

# A wallet's balance at the sandbox
sub balance { return sandbox_get("/sandbox/wallet/wallets/$_[0]")->{balance}; }

# A test that a Perl condition comes to hold
sub wait_until
{
	my ($cond, $what) = @_;
	poll_until($cond);
	ok($cond->(), $what);
}

# ---------------------------------------------------------------------
# (a) a synchronous standby
# ---------------------------------------------------------------------

my $primary = PostgreSQL::Test::Cluster->new('fo_primary');
$primary->init(allows_streaming => 1);
# the primary's rounds only when woken (commits, qiwi_reconcile_now): no
# round of its own takes the faults meant for the one below; its requests
# wait for QIWI's answers as long as the sandbox holds them (60 s at most)
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'qiwi_kassa'
wal_log_hints = on
wal_keep_size = '256MB'
qiwi.api_url = '$sandbox_url'
qiwi.secret_key = '$sandbox_secret'
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1h'
qiwi.reconcile_max_interval = '1h'
qiwi.wallet_sync_interval = '1h'
qiwi.reconcile_concurrency = 8
qiwi.timeout = '10min'
qiwi.call_deadline = '10min'
});
$primary->start;
$primary->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER wa FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79280000001', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER wa OPTIONS (wallet_token 'fo-token-1');
CREATE SERVER wb FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79280000002', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER wb OPTIONS (wallet_token 'fo-token-2');
CREATE SERVER pa FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'fo-site', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pa OPTIONS (payin_api_key 'fo-payin-key');
CREATE SERVER fp FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '4828', pull_api_id '8828', pull_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER fp OPTIONS (pull_api_password 'fo-pull-pass');
SELECT qiwi_pull_create_bill('fo-pb', '79161234567', 5.00, 'Failover', now() + interval '1 day', merchant => 'fp');
SELECT qiwi_create_bill('fo-w-1', 11.00, expires_at => now() + interval '1 day');
SELECT qiwi_create_bill('fo-w-2', 12.00, expires_at => now() + interval '1 day');
SELECT qiwi_payin_create_invoice('fo-held', 8.00, capture => 'manual', merchant => 'pa');
SELECT qiwi_payin_create_invoice('fo-paid', 9.00, merchant => 'pa');
});
foreach my $bill ('fo-held', 'fo-paid')
{
	sandbox("/sandbox/payin/sites/fo-site/bills/$bill/pay",
		'{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}');
}
sandbox('/sandbox/pull/projects/4828/bills/fo-pb/pay', '{}');
$primary->safe_psql('postgres', q{SELECT qiwi_pull_bill_status('fo-pb', 'fp')});
my %payment = map {
	$_ => $primary->safe_psql('postgres', qq{SELECT payment_id FROM qiwi_payin_invoice_payments('$_', 'pa')})
} ('fo-held', 'fo-paid');

$primary->backup('fo_backup');
my $standby = PostgreSQL::Test::Cluster->new('fo_standby');
$standby->init_from_backup($primary, 'fo_backup', has_streaming => 1);
# once promoted, it has no standby of its own, and reconciles every second
$standby->append_conf('postgresql.conf', q{
synchronous_standby_names = ''
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.wallet_sync_interval = '1s'
});
$standby->start;
$primary->append_conf('postgresql.conf', q{synchronous_standby_names = '*'});
$primary->reload;
$primary->wait_for_catchup($standby);
ok($primary->poll_query_until('postgres', q{SELECT sync_state = 'sync' FROM pg_stat_replication}),
	'the standby becomes synchronous');
is($primary->safe_psql('postgres', q{SELECT string_agg(sync_state, ',') FROM pg_stat_replication}), 'sync',
	'the standby is synchronous');
ok($primary->poll_query_until('postgres', q{SELECT (SELECT running FROM qiwi_reconciler_status)
	AND (SELECT bool_and(next_check_at > now() + interval '10 minutes') FROM qiwi_bills WHERE bill_id LIKE 'fo-w-%')}),
	'the primary\'s reconciler runs, and has checked the bills: none is due before an hour');
is($standby->safe_psql('postgres', q{SELECT running FROM qiwi_reconciler_status}),
	'f', 'the standby\'s does not');

# the round in flight: two bill checks and two after-commit creates, held
sandbox('/sandbox/faults', qq{{"hold": true, "bill": "$_"}}) foreach qw(fo-w-1 fo-w-2 fo-ac-1 fo-ac-2);
$primary->safe_psql('postgres', q{BEGIN;
	SELECT qiwi_create_bill_after_commit('fo-ac-1', 21.00, expires_at => now() + interval '1 day');
	SELECT qiwi_create_bill_after_commit('fo-ac-2', 22.00, expires_at => now() + interval '1 day');
	SELECT qiwi_reconcile_now();
	COMMIT});
wait_held(4, 'a round is in flight: two checks and two creates, held by QIWI');

# queued behind that round: an after-commit transfer the primary never sends
my $queued = $primary->safe_psql('postgres',
	q{SELECT client_txn_id FROM qiwi_wallet_transfer_after_commit('79280000009', 10.00, 'fo-queued', merchant => 'wa')});

# SQL calls in flight, each in its own session, each held by QIWI
my @calls;
# Start a SQL call in a session of the primary's, and wait until QIWI holds n requests
sub call_in_flight
{
	my ($sql, $n, $what) = @_;
	my ($out, $err) = ('', '');
	push @calls, IPC::Run::start([ 'psql', '-XAtq', '-d', $primary->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	wait_held($n, $what);
}
sandbox('/sandbox/faults', '{"api": "wallet", "service": "sinap", "hold": true}');
call_in_flight(q{SELECT qiwi_wallet_transfer('79280000009', 20.00, 'fo-sync', merchant => 'wb')}, 5,
	'a synchronous Wallet transfer is in flight');
# (their PUTs held: each call asks QIWI for its id by a GET first)
sandbox('/sandbox/faults', qq{{"api": "payin", "payment": "$payment{'fo-held'}", "method": "PUT", "hold": true}});
call_in_flight(qq{SELECT qiwi_payin_capture('$payment{'fo-held'}', 'fo-cap-1', merchant => 'pa')}, 6,
	'a Payin capture is in flight');
sandbox('/sandbox/faults', qq{{"api": "payin", "payment": "$payment{'fo-paid'}", "method": "PUT", "hold": true}});
call_in_flight(qq{SELECT qiwi_payin_refund('$payment{'fo-paid'}', 'fo-ref-1', 4.00, merchant => 'pa')}, 7,
	'a Payin refund is in flight');
sandbox('/sandbox/faults', '{"api": "pull", "prv": "4828", "bill": "fo-pb", "hold": true}');
call_in_flight(q{SELECT qiwi_pull_refund('fo-pb', 'fopr1', 2.00, 'fp')}, 8, 'a Pull refund is in flight');

$primary->stop('immediate');
$_->kill_kill foreach @calls;

# QIWI carries out every request it got, though nobody hears the answers
sandbox('/sandbox/release');
wait_until(sub {
	sandbox_get('/partner/bill/v1/bills/fo-ac-1', $sandbox_secret)
	  && sandbox_get('/partner/bill/v1/bills/fo-ac-2', $sandbox_secret)
	  && balance('79280000002') eq '980.00'
	  && sandbox_get("/partner/payin/v1/sites/fo-site/payments/$payment{'fo-held'}/captures/fo-cap-1", 'fo-payin-key')
	  && sandbox_get("/partner/payin/v1/sites/fo-site/payments/$payment{'fo-paid'}/refunds/fo-ref-1", 'fo-payin-key')
}, 'QIWI made the two bills, the transfer, the capture and the refund it got');

$standby->promote;
ok($standby->poll_query_until('postgres', q{SELECT running AND rounds >= 1 FROM qiwi_reconciler_status}),
	'the promoted standby\'s reconciler runs');
ok($standby->poll_query_until('postgres', q{SELECT count(*) = 4 FROM qiwi_bills WHERE bill_id LIKE 'fo-%' AND status = 'WAITING'}),
	'the bills of the round in flight are WAITING on the new primary');
ok($standby->poll_query_until('postgres', q{SELECT count(*) = 2 FROM qiwi_wallet_transfers WHERE status = 'SUCCESS'}),
	'the queued and the synchronous transfer are SUCCESS');
# a Payin capture and refund commit their intent ('sending') before the PUT,
# at the synchronous standby: the new primary knows both, and its
# reconciler settles them by asking QIWI for them by their ids
is($standby->safe_psql('postgres', q{SELECT count(*) FROM qiwi_payin_captures WHERE capture_id = 'fo-cap-1'})
	. ',' . $standby->safe_psql('postgres', q{SELECT count(*) FROM qiwi_payin_refunds WHERE refund_id = 'fo-ref-1'}),
	'1,1', 'the capture and the refund in flight are known to the new primary');
ok($standby->poll_query_until('postgres', q{SELECT
	(SELECT status FROM qiwi_payin_captures WHERE capture_id = 'fo-cap-1') = 'COMPLETED'
	AND (SELECT status FROM qiwi_payin_refunds WHERE refund_id = 'fo-ref-1') = 'COMPLETED'}),
	'the new primary\'s reconciler records both as QIWI has them, COMPLETED');
is($standby->safe_psql('postgres', q{SELECT string_agg(bill_id || ':' || status, ',' ORDER BY bill_id)
	FROM qiwi_bills WHERE status IN ('CREATING', 'CREATE_FAILED')}), '', 'no bill is left creating');
is($standby->safe_psql('postgres', q{SELECT string_agg(comment || ':' || status, ',' ORDER BY comment)
	FROM qiwi_wallet_transfers WHERE status NOT IN ('SUCCESS', 'ERROR')}), '', 'no transfer is left unknown');

is(join(',', map { bill_puts($_) } qw(fo-ac-1 fo-ac-2)), '1,1', 'QIWI got each after-commit bill once');
is(join(',', map { bill_puts($_) } qw(fo-w-1 fo-w-2)), '1,1', 'and each bill it only checked once, by its creation');
my %posts = map { /^POST \/sinap\/.* id=(\d+)$/ ? ($1 => writes($_)) : () } keys %{ sandbox_get('/sandbox/writes') };
is(join(',', map { $posts{$_} } sort keys %posts), '1,1', 'QIWI got two transfers, each id once');
is(transfer_posts($queued), 1, 'one of them the queued transfer');
# a Pull refund needs no intent (the same id gives the same refund): asked
# for by its id, as after any lost answer, it is recorded
ok($standby->poll_query_until('postgres', q{SELECT status IS NOT NULL FROM qiwi_pull_refund_status('fo-pb', 'fopr1', 'fp')}),
	'the Pull refund in flight, asked for by its id, is known');
is($standby->safe_psql('postgres', q{SELECT amount FROM qiwi_pull_refunds WHERE bill_id = 'fo-pb' AND refund_id = 'fopr1'})
	. ',' . writes('PUT /api/v2/prv/4828/bills/fo-pb/refund/fopr1'), '2.00,1', 'and recorded; QIWI got it once');
is(payin_puts("$payment{'fo-held'}/captures/fo-cap-1") . ',' . payin_puts("$payment{'fo-paid'}/refunds/fo-ref-1"),
	'1,1', 'the capture and the refund once');

# the tables and the reports agree with QIWI's books
is($standby->safe_psql('postgres', q{SELECT 1000 - coalesce(sum(amount), 0) FROM qiwi_wallet_transfers WHERE merchant = 'wa' AND status = 'SUCCESS'})
	. ',' . $standby->safe_psql('postgres', q{SELECT 1000 - coalesce(sum(amount), 0) FROM qiwi_wallet_transfers WHERE merchant = 'wb' AND status = 'SUCCESS'}),
	balance('79280000001') . ',' . balance('79280000002'), 'the transfers recorded are what the wallets paid');
my %qiwi_payment = map {
	my $p = sandbox_get("/partner/payin/v1/sites/fo-site/payments/$payment{$_}", 'fo-payin-key');
	$_ => "$p->{capturedAmount}{value}/$p->{refundedAmount}{value}"
} ('fo-held', 'fo-paid');
is($standby->safe_psql('postgres', q{SELECT string_agg(captured_amount || '/' || refunded_amount, ',' ORDER BY bill_id)
	FROM qiwi_payin_payments WHERE merchant = 'pa'}), "$qiwi_payment{'fo-held'},$qiwi_payment{'fo-paid'}",
	'the Payin payments recorded are QIWI\'s');
is($standby->safe_psql('postgres', q{SELECT string_agg(api || ':' || status || ':' || items || ':' || amount, ',' ORDER BY api, status)
	FROM qiwi_money_by_status WHERE merchant IN ('default', 'pa')}),
	'bill:WAITING:4:66.00,payin:CAPTURED:2:17.00,payin:REFUNDED:1:4.00',
	'qiwi_money_by_status counts what QIWI has');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM qiwi_wallet_transfers_unrecorded}), '0',
	'the wallets\' histories have no transfer the tables miss');

# ---------------------------------------------------------------------
# (b) an asynchronous standby that misses a committed transfer
# ---------------------------------------------------------------------

# from the first backup, following the new primary: it streams the WAL of
# both timelines, which the old primary needs in (c)
my $async = PostgreSQL::Test::Cluster->new('fo_async');
$async->init_from_backup($primary, 'fo_backup');
$async->enable_streaming($standby);
$async->append_conf('postgresql.conf', q{
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.wallet_sync_interval = '1s'
});
$async->start;
$standby->wait_for_catchup($async);
is($standby->safe_psql('postgres', q{SELECT string_agg(sync_state, ',') FROM pg_stat_replication}), 'async',
	'the second standby is asynchronous');
# cut it off: what commits from now on never reaches it
$async->append_conf('postgresql.conf', q{primary_conninfo = ''});
$async->reload;
ok($standby->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_replication}),
	'the asynchronous standby no longer receives WAL');

my $lost = $standby->safe_psql('postgres',
	q{SELECT client_txn_id FROM qiwi_wallet_transfer_after_commit('79280000009', 30.00, 'fo-lost', merchant => 'wa')});
$standby->safe_psql('postgres', q{SELECT qiwi_create_bill_after_commit('fo-lost-bill', 31.00, expires_at => now() + interval '1 day')});
ok($standby->poll_query_until('postgres', q{SELECT
	(SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'fo-lost')
	AND (SELECT status = 'WAITING' FROM qiwi_bills WHERE bill_id = 'fo-lost-bill')}),
	'the primary sent a transfer and a bill committed after the cut');
$standby->stop('immediate');

$async->promote;
ok($async->poll_query_until('postgres', q{SELECT running AND rounds >= 1 FROM qiwi_reconciler_status}),
	'the promoted asynchronous standby\'s reconciler runs');
is($async->safe_psql('postgres', q{SELECT count(*) FROM qiwi_wallet_transfers WHERE comment = 'fo-lost'}), '0',
	'it does not have the lost transfer');
ok($async->poll_query_until('postgres', qq{SELECT amount = 30.00 FROM qiwi_wallet_transfers_unrecorded WHERE client_txn_id = '$lost'}),
	'the wallet\'s history shows it in qiwi_wallet_transfers_unrecorded');
is(transfer_posts($lost), 1, 'it was not sent again');
is(bill_puts('fo-lost-bill'), 1, 'nor was the lost bill');
my $after = $async->safe_psql('postgres',
	q{SELECT client_txn_id FROM qiwi_wallet_transfer('79280000009', 1.00, 'fo-after', merchant => 'wa')});
cmp_ok($after, '>', $lost, 'the new primary\'s next client id is above the lost one');
ok($async->poll_query_until('postgres', q{SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'fo-after'}),
	'and QIWI took it');

# ---------------------------------------------------------------------
# (c) the old primary comes back as a standby and sends nothing
# ---------------------------------------------------------------------

# pg_rewind copies the source's configuration files: the old primary keeps its own
my %conf = map { $_ => slurp_file($primary->data_dir . "/$_") } qw(postgresql.conf postgresql.auto.conf);
# pg_rewind reads the source's timeline from its control file: a checkpoint writes it
$async->safe_psql('postgres', 'CHECKPOINT');
command_ok([ 'pg_rewind', '--target-pgdata', $primary->data_dir,
	'--source-server', $async->connstr('postgres') ], 'pg_rewind rewinds the old primary');
foreach my $file (keys %conf)
{
	open(my $fh, '>', $primary->data_dir . "/$file") or die "$file: $!";
	print $fh $conf{$file};
	close $fh;
}
$primary->enable_streaming($async);
$primary->append_conf('postgresql.conf', q{
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
});
$primary->start;
# the new primary's round is held by QIWI on the creation of a bill: the
# bill and a transfer queued behind it stay due there, and on the standby
sandbox('/sandbox/faults', '{"hold": true, "bill": "fo-due"}');
$async->safe_psql('postgres', q{SELECT qiwi_create_bill_after_commit('fo-due', 41.00, expires_at => now() + interval '1 day')});
wait_held(1, 'the new primary\'s creation of the bill is in flight');
my $due = $async->safe_psql('postgres',
	q{SELECT client_txn_id FROM qiwi_wallet_transfer_after_commit('79280000009', 2.00, 'fo-due', merchant => 'wa')});
$async->wait_for_catchup($primary);
is($primary->safe_psql('postgres', q{SELECT pg_is_in_recovery() || ':' ||
	(SELECT status FROM qiwi_bills WHERE bill_id = 'fo-due') || ':' ||
	(SELECT status FROM qiwi_wallet_transfers WHERE comment = 'fo-due') || ':' || current_setting('qiwi.database')}),
	'true:CREATING:queued:postgres', 'the old primary is a standby with a bill and a transfer due, for qiwi.database');
# several of its own reconcile intervals pass with the items due there
ok($primary->poll_query_until('postgres', q{SELECT now() - created_at > interval '5 s' FROM qiwi_wallet_transfers WHERE comment = 'fo-due'}),
	'the items have been due on it for five seconds');
is($primary->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'qiwi_kassa%'})
	. ':' . $primary->safe_psql('postgres', q{SELECT running || ':' || rounds FROM qiwi_reconciler_status}),
	'0:false:0', 'no launcher, reconciler or requester runs on it');
is(bill_puts('fo-due') . ',' . transfer_posts($due), '1,0', 'QIWI got nothing from it: only the new primary\'s creation');
my ($rc, $out, $err) = $primary->psql('postgres', q{SELECT qiwi_wallet_transfer('79280000009', 3.00, 'fo-standby', merchant => 'wa')});
like($err, qr/on a hot standby/, 'a transfer called there is refused');

# QIWI answers the new primary: it records the bill and sends the transfer, once
sandbox('/sandbox/release');
ok($async->poll_query_until('postgres', q{SELECT
	(SELECT status = 'WAITING' FROM qiwi_bills WHERE bill_id = 'fo-due')
	AND (SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'fo-due')}),
	'the new primary sends the due items');
is(bill_puts('fo-due') . ',' . transfer_posts($due), '1,1', 'QIWI got each once');

$primary->stop;
$async->stop;
done_testing();
