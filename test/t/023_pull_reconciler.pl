# The reconciler follows Pull bills and refunds: bills paid, rejected,
# failed and expired in the sandbox and refunds completed or failed there
# reach the tables with no SQL call, with events from the reconciler, for
# two merchants at once; a bill still waiting is checked again and stays
# waiting; a final bill is no longer asked about.  The sandbox's
# notifications, signed or with Basic authorization and sent twice, reach
# qiwi_pull_notifications through test/notification_receiver.py --pull,
# verified, and applied once.
use strict;
use warnings;

use IPC::Run;
use QiwiTest;
use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = qiwi_node('pull_reconciler', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
});
sandbox('/sandbox/pull/reset');
sandbox('/sandbox/pull/projects', '{"prv_id": "4101", "api_id": "8101", "api_password": "rec-pull-a"}');
sandbox('/sandbox/pull/projects', '{"prv_id": "4102", "api_id": "8102", "api_password": "rec-pull-b"}');

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# A control call on bill $bill of project $prv
sub control
{
	my ($prv, $bill, $action, $body) = @_;
	return sandbox("/sandbox/pull/projects/$prv/bills/$bill/$action", $body // '{}');
}

$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER pa FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '4101', pull_api_id '8101', pull_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pa OPTIONS (pull_api_password 'rec-pull-a');
CREATE SERVER pb FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '4102', pull_api_id '8102', pull_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pb OPTIONS (pull_api_password 'rec-pull-b');
});

# ---------- bills reach their final status by themselves ----------
sql(q{SELECT qiwi_pull_create_bill('paid', '79161234567', 10.00, 'c', now() + interval '1 day', merchant => 'pa');
      SELECT qiwi_pull_create_bill('rejected', '79161234567', 11.00, 'c', now() + interval '1 day', merchant => 'pa');
      SELECT qiwi_pull_create_bill('unpaid', '79161234567', 12.00, 'c', now() + interval '1 day', merchant => 'pb');
      SELECT qiwi_pull_create_bill('expired', '79161234567', 13.00, 'c', now() + interval '1 day', merchant => 'pb');
      SELECT qiwi_pull_create_bill('waiting', '79161234567', 14.00, 'c', now() + interval '1 day', merchant => 'pb')});
control('4101', 'paid', 'pay');
control('4101', 'rejected', 'reject');
control('4102', 'unpaid', 'fail');
control('4102', 'expired', 'expire');
wait_for(q{SELECT count(*) = 4 FROM qiwi_pull_bills WHERE status <> 'waiting'},
	'paid, rejected, unpaid and expired bills change with no SQL call');
is(sql(q{SELECT string_agg(merchant || ':' || bill_id || ':' || status, ',' ORDER BY bill_id) FROM qiwi_pull_bills}),
	'pb:expired:expired,pa:paid:paid,pa:rejected:rejected,pb:unpaid:unpaid,pb:waiting:waiting',
	'each with the status QIWI gave, for both merchants');
is(sql(q{SELECT count(*) FROM qiwi_pull_events WHERE source = 'reconciler' AND object = 'bill'}), '4',
	'one event per change, from the reconciler');
wait_for(q{SELECT check_count >= 2 FROM qiwi_pull_bills WHERE bill_id = 'waiting'},
	'a waiting bill is checked again');
is(sql(q{SELECT status FROM qiwi_pull_bills WHERE bill_id = 'waiting'}), 'waiting', 'and stays waiting');

# ---------- refunds reach success or fail by themselves ----------
sql(q{SELECT qiwi_pull_refund('paid', 'r1', 4.00, 'pa'); SELECT qiwi_pull_refund('paid', 'r2', 5.00, 'pa')});
is(sql(q{SELECT string_agg(refund_id || ':' || status, ',' ORDER BY refund_id) FROM qiwi_pull_refunds}),
	'r1:processing,r2:processing', 'two refunds processing');
control('4101', 'paid', 'refunds/r1/complete');
control('4101', 'paid', 'refunds/r2/fail', '{"error": 300}');
wait_for(q{SELECT count(*) = 2 FROM qiwi_pull_refunds WHERE status <> 'processing'},
	'the refunds change with no SQL call');
is(sql(q{SELECT string_agg(refund_id || ':' || status || ':' || error, ',' ORDER BY refund_id) FROM qiwi_pull_refunds}),
	'r1:success:0,r2:fail:300', 'success, and fail with its error');
is(sql(q{SELECT string_agg(object_id || ':' || old_status || '>' || new_status, ',' ORDER BY object_id)
         FROM qiwi_pull_events WHERE source = 'reconciler' AND object = 'refund'}),
	'paid/r1:processing>success,paid/r2:processing>fail', 'their events, from the reconciler');

# ---------- final items are not asked about ----------
# the waiting bill is the only followed item left: wait for a round to ask
# about it, then see that the requests between rounds are only its own
my $checks = sql(q{SELECT check_count FROM qiwi_pull_bills WHERE bill_id = 'waiting'});
wait_for(qq{SELECT check_count >= $checks + 1 FROM qiwi_pull_bills WHERE bill_id = 'waiting'},
	'the waiting bill is asked about again');
my $before = pull_requests();
$checks = sql(q{SELECT check_count FROM qiwi_pull_bills WHERE bill_id = 'waiting'});
wait_for(qq{SELECT check_count >= $checks + 2 FROM qiwi_pull_bills WHERE bill_id = 'waiting'},
	'and again');
my $after_checks = sql(q{SELECT check_count FROM qiwi_pull_bills WHERE bill_id = 'waiting'});
cmp_ok(pull_requests() - $before, '<=', $after_checks - $checks + 1,
	'a round asks only about the waiting bill');

# ---------- notifications, both modes, each sent twice ----------
my $src = $ENV{QIWI_SRC} or die "QIWI_SRC is not set";
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $receiver = IPC::Run::start(
	[ 'python3', "$src/test/notification_receiver.py", '--port', $port,
	  '--dbname', $node->connstr('postgres'), '--pull' ],
	'>', \my $out, '2>', \my $err);
my $up = 0;
for (1 .. 100)
{
	last if ($up = HTTP::Tiny->new->get("http://127.0.0.1:$port/")->{status} != 599);
	select(undef, undef, undef, 0.1);
}
ok($up, 'the receiver is up');
sandbox('/sandbox/pull/projects', qq{{"prv_id": "4103", "api_id": "8103", "api_password": "rec-pull-c",
	"notification_password": "rec-notify-c", "notification_url": "http://127.0.0.1:$port/pull/4103",
	"notification_auth": "signature", "duplicates": 1}});
sandbox('/sandbox/pull/projects', qq{{"prv_id": "4104", "api_id": "8104", "api_password": "rec-pull-d",
	"notification_password": "rec-notify-d", "notification_url": "http://127.0.0.1:$port/pull/4104",
	"notification_auth": "basic", "duplicates": 1}});
$node->safe_psql('postgres', qq{
CREATE SERVER pc FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '4103', pull_api_id '8103', pull_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pc OPTIONS (pull_api_password 'rec-pull-c', pull_notification_password 'rec-notify-c');
CREATE SERVER pd FOREIGN DATA WRAPPER qiwi OPTIONS (pull_prv_id '4104', pull_api_id '8104', pull_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pd OPTIONS (pull_api_password 'rec-pull-d', pull_notification_password 'rec-notify-d');
});
sql(q{SELECT qiwi_pull_create_bill('n-signed', '79161234567', 21.00, 'Заказ №21 + ещё', now() + interval '1 day', merchant => 'pc');
      SELECT qiwi_pull_create_bill('n-basic', '79161234567', 22.00, 'c', now() + interval '1 day', merchant => 'pd')});
control('4103', 'n-signed', 'pay');
control('4104', 'n-basic', 'reject');
wait_for(q{SELECT count(*) = 4 FROM qiwi_pull_notifications},
	'each notification arrives twice');
is(sql(q{SELECT string_agg(merchant || ':' || (body->>'bill_id') || ':' || verified, ',' ORDER BY merchant, id) FROM qiwi_pull_notifications}),
	'pc:n-signed:true,pc:n-signed:true,pd:n-basic:true,pd:n-basic:true', 'signed and Basic notifications verified, for their merchants');
cmp_ok(sql(q{SELECT count(*) FROM qiwi_pull_notifications WHERE applied}), '<=', 2,
	'each change applied at most once (the reconciler may have recorded it first)');
is(sql(q{SELECT string_agg(bill_id || ':' || status, ',' ORDER BY bill_id) FROM qiwi_pull_bills WHERE merchant IN ('pc', 'pd')}),
	'n-basic:rejected,n-signed:paid', 'the bills recorded final');
is(sql(q{SELECT count(*) FROM qiwi_pull_events WHERE merchant IN ('pc', 'pd') AND old_status = 'waiting'}), '2',
	'one event per change, whoever told first');
$receiver->kill_kill;

$node->stop;
done_testing();
