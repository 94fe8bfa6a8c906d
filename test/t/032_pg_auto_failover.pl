# qiwi_kassa under pg_auto_failover (Debian 12's postgresql-15-auto-failover),
# configured as README's "High availability" says: a monitor and two data
# nodes made and run by pg_autoctl, qiwi_kassa preloaded and the qiwi.*
# settings in each node's postgresql.conf, the Bill Payments key in a file
# at the same path.  A Wallet transfer and a Payin capture are in flight,
# held by QIWI, when the primary's keeper and Postgres stop at once; QIWI
# carries out what it got, `pg_autoctl perform failover` promotes the
# standby, and its reconciler asks before it sends: QIWI got each id once
# and every intent is resolved.  The old primary's keeper, started again,
# brings it back as a secondary, which sends nothing while items are due.
use strict;
use warnings;

use IPC::Run;
use IPC::SysV qw(IPC_RMID);
use JSON::PP;
use POSIX ();
use QiwiTest qw(:DEFAULT sandbox_get writes held poll_until wait_held);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $base = PostgreSQL::Test::Utils::tempdir;

# pg_autoctl keeps its configuration and state under the XDG directories:
# the test's own, not the user's home
$ENV{XDG_CONFIG_HOME} = "$base/config";
$ENV{XDG_DATA_HOME} = "$base/data";
$ENV{XDG_RUNTIME_DIR} = "$base/run";
mkdir $_, 0700 or die "$_: $!" foreach @ENV{qw(XDG_CONFIG_HOME XDG_DATA_HOME XDG_RUNTIME_DIR)};

# the PostgreSQL the tests run (its bin directory comes first on PATH)
my ($bindir) = grep { -x "$_/pg_ctl" } split /:/, $ENV{PATH};
my $pg_ctl = "$bindir/pg_ctl";

sandbox('/sandbox/reset');
sandbox('/sandbox/wallet/wallets', '{"number": "79280000011", "token": "af-token-1", "balance": "1000.00"}');
sandbox('/sandbox/wallet/wallets', '{"number": "79280000019", "token": "af-token-9"}');
sandbox('/sandbox/payin/sites', '{"siteId": "af-site", "apiKey": "af-payin-key", "notificationKey": "af-n"}');

# How many times QIWI got a request that may change something (writes, QiwiTest)
sub bill_puts { return writes("PUT /partner/bill/v1/bills/$_[0]"); }
sub transfer_posts { return writes("POST /sinap/api/v2/terms/99/payments id=$_[0]"); }
sub payin_puts { return writes("PUT /partner/payin/v1/sites/af-site/payments/$_[0]"); }

# Wait until a standby has replayed what its primary has written (the
# standbys' application names are pg_auto_failover's)
sub wait_replayed
{
	my ($primary, $standby) = @_;
	my $lsn = $primary->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
	$standby->poll_query_until('postgres', qq{SELECT pg_last_wal_replay_lsn() >= '$lsn'})
	  or die "the standby did not replay up to $lsn";
}

# ---------------------------------------------------------------------
# the keepers: processes of the test's own, each in a process group of its
# own, stopped by their ids at the end (on failure too)
# ---------------------------------------------------------------------

my %keeper;    # name => pid (= its process group)
my $failover;  # pg_autoctl perform failover, while it waits
my $test_pid = $$;

# Start `pg_autoctl ARGS...` in the background, output to $base/NAME.log
sub start_keeper
{
	my ($name, @args) = @_;
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		POSIX::setsid();
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', "$base/$name.log";
		open STDERR, '>&', \*STDOUT;
		exec('pg_autoctl', @args) or POSIX::_exit(127);
	}
	$keeper{$name} = $pid;
	return;
}

# Whether a keeper has exited (reaped)
sub keeper_gone
{
	my ($name) = @_;
	return 1 unless $keeper{$name};
	return 0 if waitpid($keeper{$name}, POSIX::WNOHANG()) == 0;
	delete $keeper{$name};
	return 1;
}

# Stop a keeper with a signal and wait until it has exited; its process
# group is killed if it does not
sub stop_keeper
{
	my ($name, $signal) = @_;
	return unless $keeper{$name};
	my $pid = $keeper{$name};
	kill $signal, $pid;
	return if poll_until(sub { keeper_gone($name) });
	kill 'KILL', -$pid;
	waitpid($pid, 0);
	delete $keeper{$name};
	return;
}

# a lane's cleanup stops the test with SIGTERM: the keepers too
$SIG{TERM} = $SIG{INT} = sub { exit 1 };

END
{
	if ($$ == $test_pid)
	{
		my $rc = $?;
		$failover->kill_kill if $failover && $failover->pumpable;
		stop_keeper($_, 'INT') foreach reverse sort keys %keeper;
		$? = $rc;
	}
}

# Whether every keeper started has run until the test stopped it
my $keeper_died = 0;
sub keepers_alive
{
	foreach my $name (keys %keeper)
	{
		next if waitpid($keeper{$name}, POSIX::WNOHANG()) == 0;
		delete $keeper{$name};
		$keeper_died = 1;
	}
	return !$keeper_died;
}

# A query's output, or '' if it fails (the server may not be there yet)
sub sql_value
{
	my ($node, $db, $sql) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-XAtq', '-d', $node->connstr($db), '-c', $sql ], '>', \$out, '2>', \$err)
	  or return '';
	chomp $out;
	return $out;
}

# Whether a process runs (a zombie does not)
sub running
{
	my ($pid) = @_;
	open my $stat, '<', "/proc/$pid/stat" or return 0;
	return <$stat> !~ /\) Z /;
}

# On failure, what the keepers said
sub show_keeper_logs
{
	foreach my $log (glob "$base/*.log")
	{
		diag("--- $log (last lines)");
		my @lines = split /\n/, slurp_file($log);
		diag($_) foreach @lines[ ($#lines > 40 ? $#lines - 40 : 0) .. $#lines ];
	}
}

# ---------------------------------------------------------------------
# the monitor and the two nodes
# ---------------------------------------------------------------------

my @autoctl_common = ('--hostname', '127.0.0.1', '--listen', '127.0.0.1', '--auth', 'trust',
	'--no-ssl', '--pgctl', $pg_ctl);

# the monitor: failover only when the test says (pg_autoctl perform
# failover), after QIWI carried out what it holds: a node is not taken for
# failed by itself within the test; health checks every second, and a short
# wait for the old primary to report that it stopped (it never will)
my $monitor = PostgreSQL::Test::Cluster->new('af_monitor');
$monitor->init;
$monitor->append_conf('postgresql.conf', q{
shared_buffers = '16MB'
pgautofailover.node_considered_unhealthy_timeout = '1h'
pgautofailover.health_check_period = '1s'
pgautofailover.primary_demote_timeout = '2s'
});
start_keeper('monitor', 'create', 'monitor', '--pgdata', $monitor->data_dir,
	'--pgport', $monitor->port, @autoctl_common, '--run');
ok(poll_until(sub { !keepers_alive() || sql_value($monitor, 'pg_auto_failover',
	q{SELECT count(*) FROM pg_extension WHERE extname = 'pgautofailover'}) eq '1' }) && keepers_alive(),
	'pg_autoctl made the monitor') or show_keeper_logs();
my $monitor_uri = 'postgres://autoctl_node@127.0.0.1:' . $monitor->port . '/pg_auto_failover?sslmode=disable';

# The nodes' states as the monitor has them: "name:reported/goal,..."
sub states
{
	return $monitor->safe_psql('pg_auto_failover', q{SELECT string_agg(nodename || ':' || reportedstate
		|| '/' || goalstate, ',' ORDER BY nodename) FROM pgautofailover.node});
}

# Wait until the monitor has the nodes in the given states
sub wait_states
{
	my ($want, $what) = @_;
	poll_until(sub { !keepers_alive() || states() eq $want });
	is(states(), $want, $what) or show_keeper_logs();
}

# the Bill Payments key: one file, at the same path for both nodes
my $key_file = "$base/qiwi.key";
open my $fh, '>', $key_file or die "$key_file: $!";
print $fh "$sandbox_secret\n";
close $fh;
chmod 0600, $key_file or die "$key_file: $!";

# node1, the first primary: an existing cluster pg_autoctl takes over.  Its
# rounds run only when woken (commits, qiwi_reconcile_now): no round of its
# own takes the faults meant for the calls below
my $node1 = PostgreSQL::Test::Cluster->new('af_node1');
$node1->init(allows_streaming => 1);
$node1->append_conf('postgresql.conf', qq{
shared_buffers = '16MB'
max_connections = 30
shared_preload_libraries = 'qiwi_kassa'
qiwi.api_url = '$sandbox_url'
qiwi.secret_key_file = '$key_file'
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1h'
qiwi.reconcile_max_interval = '1h'
qiwi.wallet_sync_interval = '1h'
qiwi.timeout = '10min'
qiwi.call_deadline = '10min'
});
start_keeper('node1', 'create', 'postgres', '--pgdata', $node1->data_dir, '--pgport', $node1->port,
	'--name', 'node1', '--monitor', $monitor_uri, @autoctl_common, '--run');
wait_states('node1:single/single', 'node1 is registered, alone');

# node2: pg_autoctl clones it from node1 with pg_basebackup
my $node2 = PostgreSQL::Test::Cluster->new('af_node2');
start_keeper('node2', 'create', 'postgres', '--pgdata', $node2->data_dir, '--pgport', $node2->port,
	'--name', 'node2', '--monitor', $monitor_uri, @autoctl_common, '--run');
wait_states('node1:primary/primary,node2:secondary/secondary', 'node2 follows node1 as a secondary');

# the clone copied node1's postgresql.conf: the preload and qiwi.* settings
# are in node2's; once promoted, it reconciles every second
my $node2_conf = slurp_file($node2->data_dir . '/postgresql.conf');
like($node2_conf, qr/^shared_preload_libraries = 'qiwi_kassa'$/m, 'node2\'s postgresql.conf preloads qiwi_kassa');
like($node2_conf, qr/^qiwi\.secret_key_file = '\Q$key_file\E'$/m, 'and names the same key file');
my $fast_rounds = q{
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
qiwi.wallet_sync_interval = '1s'
};
$node2->append_conf('postgresql.conf', $fast_rounds);
$node2->safe_psql('postgres', 'SELECT pg_reload_conf()');
# (pg_autoctl's postgresql-auto-failover.conf, included at the top of
# postgresql.conf, preloads pg_stat_statements: the line below it wins)
is($node2->safe_psql('postgres', q{SELECT pg_is_in_recovery() || ':' || current_setting('shared_preload_libraries')}),
	'true:qiwi_kassa', 'node2 is a hot standby with qiwi_kassa preloaded');

# the extension, created on the primary, and what the calls need
$node1->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE SERVER wa FOREIGN DATA WRAPPER qiwi OPTIONS (wallet_number '79280000011', wallet_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER wa OPTIONS (wallet_token 'af-token-1');
CREATE SERVER pa FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'af-site', payin_api_url '$sandbox_url');
CREATE USER MAPPING FOR PUBLIC SERVER pa OPTIONS (payin_api_key 'af-payin-key');
SELECT qiwi_create_bill('af-bill-1', 11.00, expires_at => now() + interval '1 day');
SELECT qiwi_payin_create_invoice('af-held', 8.00, capture => 'manual', merchant => 'pa');
});
my $payment = decode_json(sandbox('/sandbox/payin/sites/af-site/bills/af-held/pay',
		'{"pan": "4256000000000003", "expiry": "12/30", "cvv": "123"}'))->{paymentId};
is($node1->safe_psql('postgres', qq{SELECT status FROM qiwi_payin_payment('$payment', merchant => 'pa')}),
	'COMPLETED', 'the Payin payment holding money is recorded');
ok($node1->poll_query_until('postgres', q{SELECT running FROM qiwi_reconciler_status}),
	'node1\'s reconciler runs');
ok($node1->poll_query_until('postgres', q{SELECT string_agg(sync_state, ',') IN ('sync', 'quorum') FROM pg_stat_replication}),
	'node2 is a synchronous standby (pg_auto_failover\'s replication quorum)');
wait_replayed($node1, $node2);
is($node2->safe_psql('postgres', q{SELECT running FROM qiwi_reconciler_status}), 'f',
	'node2\'s reconciler does not run');

# ---------------------------------------------------------------------
# the primary stops at once with a transfer and a capture in flight
# ---------------------------------------------------------------------

my @calls;
# Start a SQL call in a session of node1's, and wait until QIWI holds n requests
sub call_in_flight
{
	my ($sql, $n, $what) = @_;
	my ($out, $err) = ('', '');
	push @calls, IPC::Run::start([ 'psql', '-XAtq', '-d', $node1->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$err);
	wait_held($n, $what);
}
sandbox('/sandbox/faults', '{"api": "wallet", "service": "sinap", "hold": true}');
call_in_flight(q{SELECT qiwi_wallet_transfer('79280000019', 20.00, 'af-sync', merchant => 'wa')}, 1,
	'a Wallet transfer is in flight');
sandbox('/sandbox/faults', qq{{"api": "payin", "payment": "$payment", "method": "PUT", "hold": true}});
call_in_flight(qq{SELECT qiwi_payin_capture('$payment', 'af-cap-1', merchant => 'pa')}, 2,
	'a Payin capture is in flight');

# node1 crashes: its keeper's process group (the keeper, its services and
# the postmaster) is killed at once, telling the monitor nothing; the other
# Postgres processes end on the postmaster's death
my @node1_pids = split /\n/, $node1->safe_psql('postgres', 'SELECT pid FROM pg_stat_activity');
my ($postmaster) = split /\n/, slurp_file($node1->data_dir . '/postmaster.pid');
kill 'KILL', -$keeper{node1};
ok(poll_until(sub { keeper_gone('node1') && !grep { running($_) } $postmaster, @node1_pids }),
	'node1 crashed: its keeper and every Postgres process are gone');
# the keeper's log semaphore (SysV) outlives it: its pid file names it (the
# fifth line), and pg_autoctl 2.0 removes a stale pid file before it reads
# the semaphore from it
my $pidfile = "$ENV{XDG_RUNTIME_DIR}/pg_autoctl" . $node1->data_dir . '/pg_autoctl.pid';
my $semid = (split /\n/, slurp_file($pidfile))[4];
ok($semid =~ /^\d+$/ && semctl($semid, 0, IPC_RMID, 0), 'the crashed keeper\'s semaphore is removed')
  or diag("$pidfile: " . slurp_file($pidfile));
$_->kill_kill foreach @calls;

# QIWI carries out what it got, though nobody hears the answers
sandbox('/sandbox/release');
ok(poll_until(sub {
	sandbox_get('/sandbox/wallet/wallets/79280000011')->{balance} eq '980.00'
	  && sandbox_get("/partner/payin/v1/sites/af-site/payments/$payment/captures/af-cap-1", 'af-payin-key')
}), 'QIWI made the transfer and the capture it got');

# pg_autoctl perform failover returns once a node reports "primary": node2
# stays "wait_primary" until it has a secondary again
my $failover_out = '';
$failover = IPC::Run::start([ 'pg_autoctl', 'perform', 'failover', '--monitor', $monitor_uri, '--wait', $timeout ],
	'>&', \$failover_out);
wait_states('node1:primary/demoted,node2:wait_primary/wait_primary', 'node2 is the primary, node1 demoted');
ok($node2->poll_query_until('postgres', q{SELECT running AND rounds >= 1 FROM qiwi_reconciler_status}),
	'node2\'s reconciler runs');

my $sync = $node2->safe_psql('postgres', q{SELECT client_txn_id FROM qiwi_wallet_transfers WHERE comment = 'af-sync'});
isnt($sync, '', 'node2 has the transfer\'s intent (committed at the synchronous standby)');
ok($node2->poll_query_until('postgres', q{SELECT
	(SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'af-sync')
	AND (SELECT status = 'COMPLETED' FROM qiwi_payin_captures WHERE capture_id = 'af-cap-1')}),
	'node2\'s reconciler records the transfer and the capture as QIWI has them');
is($node2->safe_psql('postgres', q{SELECT
	(SELECT count(*) FROM qiwi_wallet_transfers WHERE status NOT IN ('SUCCESS', 'ERROR'))
	+ (SELECT count(*) FROM qiwi_payin_captures WHERE status = 'sending')}), '0', 'no intent is left open');
my %posts = map { /^POST \/sinap\/.* id=(\d+)$/ ? ($1 => writes($_)) : () } keys %{ sandbox_get('/sandbox/writes') };
is(join(',', map { "$_:$posts{$_}" } sort keys %posts), "$sync:1", 'QIWI got one transfer, its id once');
is(payin_puts("$payment/captures/af-cap-1"), 1, 'and the capture once');

# the key file at the same path serves node2 too
is($node2->safe_psql('postgres', q{SELECT status FROM qiwi_create_bill('af-bill-2', 12.00, expires_at => now() + interval '1 day')}),
	'WAITING', 'node2 creates a bill with the key from the file');
is(bill_puts('af-bill-1') . ',' . bill_puts('af-bill-2'), '1,1', 'each bill once');

# ---------------------------------------------------------------------
# the old primary comes back as a secondary and sends nothing
# ---------------------------------------------------------------------

# (pg_rewind may copy node2's postgresql.conf over node1's: both have these)
$node1->append_conf('postgresql.conf', $fast_rounds);
start_keeper('node1', 'run', '--pgdata', $node1->data_dir);
wait_states('node1:secondary/secondary,node2:primary/primary', 'node1 comes back as node2\'s secondary');
ok($failover->finish, 'pg_autoctl perform failover is done') or diag($failover_out);

# node2's round is held by QIWI on the creation of a bill: the bill and a
# transfer queued behind it are due there, and on node1
sandbox('/sandbox/faults', '{"hold": true, "bill": "af-due"}');
$node2->safe_psql('postgres', q{SELECT qiwi_create_bill_after_commit('af-due', 41.00, expires_at => now() + interval '1 day')});
wait_held(1, 'node2\'s creation of the bill is in flight');
my $due = $node2->safe_psql('postgres',
	q{SELECT client_txn_id FROM qiwi_wallet_transfer_after_commit('79280000019', 2.00, 'af-due', merchant => 'wa')});
wait_replayed($node2, $node1);
is($node1->safe_psql('postgres', q{SELECT pg_is_in_recovery() || ':' ||
	(SELECT status FROM qiwi_bills WHERE bill_id = 'af-due') || ':' ||
	(SELECT status FROM qiwi_wallet_transfers WHERE comment = 'af-due') || ':' || current_setting('qiwi.reconcile_interval')}),
	'true:CREATING:queued:1s', 'node1 is a standby with a bill and a transfer due, reconciling every second');
ok($node1->poll_query_until('postgres', q{SELECT now() - created_at > interval '5 s' FROM qiwi_wallet_transfers WHERE comment = 'af-due'}),
	'the items have been due on node1 for five seconds');
is($node1->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'qiwi_kassa%'})
	. ':' . $node1->safe_psql('postgres', q{SELECT running FROM qiwi_reconciler_status}),
	'0:f', 'no launcher, reconciler or requester runs on node1');
is(bill_puts('af-due') . ',' . transfer_posts($due), '1,0', 'QIWI got nothing from node1: only node2\'s creation');

sandbox('/sandbox/release');
ok($node2->poll_query_until('postgres', q{SELECT
	(SELECT status = 'WAITING' FROM qiwi_bills WHERE bill_id = 'af-due')
	AND (SELECT status = 'SUCCESS' FROM qiwi_wallet_transfers WHERE comment = 'af-due')}),
	'node2 sends the due items');
is(bill_puts('af-due') . ',' . transfer_posts($due) . ',' . transfer_posts($sync), '1,1,1', 'QIWI got each once');

stop_keeper($_, 'INT') foreach qw(node1 node2 monitor);
ok(!%keeper, 'the keepers and the monitor stopped');
done_testing();
