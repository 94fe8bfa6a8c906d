# qiwi.secret_key_file: the key is read from a file only the server's user
# can read, at start and on reload, by the backends and the reconciler; no
# SHOW, settings view or log line shows it; a file others can read is
# refused; a key in the file wins over qiwi.secret_key.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

# The postmaster logs its environment at DEBUG3 before any library is loaded:
# the harness's copy of the key must not be in it
delete $ENV{QIWI_SANDBOX_SECRET};

my $node = PostgreSQL::Test::Cluster->new('secret_file');
$node->init;
my $key_file = $node->basedir . '/qiwi.key';

# Write the key file with the given content and permissions
sub write_key_file
{
	my ($content, $mode) = @_;
	open my $fh, '>', $key_file or die "$key_file: $!";
	print $fh $content;
	close $fh;
	chmod $mode, $key_file or die "$key_file: $!";
}

write_key_file("$sandbox_secret\n", 0600);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'qiwi_kassa'
qiwi.api_url = '$sandbox_url'
qiwi.secret_key_file = '$key_file'
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '1s'
qiwi.max_retries = 0
log_min_messages = debug5
log_min_error_statement = debug5
log_statement = all
});
$node->start;
sandbox('/sandbox/reset');

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# Everything a role can see of the settings, as one text
sub visible_settings
{
	my (@connect_as) = @_;
	my $text = '';
	for my $q ('SHOW ALL', 'SHOW qiwi.secret_key', 'SHOW qiwi.secret_key_file',
		q{SELECT current_setting('qiwi.secret_key', true)},
		q{SELECT string_agg(name || '=' || coalesce(setting, ''), ' ') FROM pg_settings},
		q{SELECT string_agg(name || '=' || coalesce(setting, ''), ' ') FROM pg_file_settings})
	{
		my ($stdout, $stderr) = ('', '');
		$node->psql('postgres', $q, stdout => \$stdout, stderr => \$stderr,
			extra_params => \@connect_as);
		$text .= "$stdout\n$stderr\n";
	}
	return $text;
}

$node->safe_psql('postgres', q{
CREATE EXTENSION qiwi_kassa;
CREATE ROLE plain LOGIN;
-- 'accepted' if QIWI accepts the key in effect, else the error's SQLSTATE
CREATE FUNCTION key_state() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM qiwi_bill_status('sf-1');
	RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
});

# 1. The key in the file is used by the backends and by the reconciler
is(sql(q{SELECT bill_id || ' ' || status FROM qiwi_create_bill('sf-1', 1, expires_at => now() + interval '1 day')}),
	'sf-1 WAITING', 'a bill is created with the key read from the file');
sandbox('/sandbox/bills/sf-1/pay');
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT status = 'PAID' FROM qiwi_bills WHERE bill_id = 'sf-1'},
	'the reconciler checks it with the same key');

# 2. Nobody can read it: neither a superuser nor a plain role
unlike(visible_settings(), qr/\Q$sandbox_secret\E/, 'no setting shown to a superuser holds the key');
unlike(visible_settings('-U', 'plain'), qr/\Q$sandbox_secret\E/, 'nor to a plain role');
is(sql('SHOW qiwi.secret_key'), '', 'for a superuser qiwi.secret_key is empty: the key is no setting value');
is(sql('SHOW qiwi.secret_key_file'), $key_file, 'qiwi.secret_key_file shows the path');
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'SHOW qiwi.secret_key_file', extra_params => [ '-U', 'plain' ]);
like($stderr, qr/must be superuser or have privileges of pg_read_all_settings/,
	'a plain role cannot even read the path');

# 3. A reload reads the file again, in every process
write_key_file("wrong-key-from-the-file\n", 0600);
$node->reload;
ok($node->poll_query_until('postgres', 'SELECT key_state()', 'QK401'),
	'after a reload a changed key in the file is used');
write_key_file($sandbox_secret, 0600);
$node->reload;
ok($node->poll_query_until('postgres', 'SELECT key_state()', 'accepted'),
	'and so is the right one again (a file without a final newline too)');
is(sql(q{SELECT bill_id || ' ' || status FROM qiwi_create_bill('sf-2', 1, expires_at => now() + interval '1 day')}),
	'sf-2 WAITING', 'a bill is created with it');
sandbox('/sandbox/bills/sf-2/pay');
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT status = 'PAID' FROM qiwi_bills WHERE bill_id = 'sf-2'},
	'the reconciler uses the reloaded key');

# 4. A file others may read is refused, naming the file but not its content
my $offset = -s $node->logfile;
write_key_file("group-readable-key\n", 0640);
$node->reload;
$node->wait_for_log(qr/invalid value for parameter "qiwi\.secret_key_file".*\n.*File "\Q$key_file\E" has group or world access/,
	$offset);
pass('a group-readable file is refused on reload, and the log names it');
is(sql('SELECT key_state()'), 'accepted', 'the key read before stays in effect');

write_key_file("$sandbox_secret\n", 0644);
$node->restart;
like(slurp_file($node->logfile, $offset), qr/File "\Q$key_file\E" has group or world access/,
	'a world-readable file is refused at start');
is(sql('SELECT key_state()'), '55000', 'then no key is in effect, and nothing is sent');
chmod 0600, $key_file;
$node->reload;
ok($node->poll_query_until('postgres', 'SELECT key_state()', 'accepted'),
	'once the file is private, a reload makes its key the key in effect');

# A key too short to be hidden in the logs is refused, naming the file and
# the minimum; the key read before stays in effect
$offset = -s $node->logfile;
write_key_file("short\n", 0600);
$node->reload;
$node->wait_for_log(qr/invalid value for parameter "qiwi\.secret_key_file".*\n.*File "\Q$key_file\E" holds a key shorter than 8 bytes/,
	$offset);
pass('a key shorter than 8 bytes in the file is refused on reload, and the log says so');
is(sql('SELECT key_state()'), 'accepted', 'the key read before stays in effect');
write_key_file("$sandbox_secret\n", 0600);
$node->reload;
ok($node->poll_query_until('postgres', 'SELECT key_state()', 'accepted'), 'the right key again');

# 5. With both set, the file wins, and the postmaster says so
$offset = -s $node->logfile;
sql(q{ALTER SYSTEM SET qiwi.secret_key = 'ignored-setting-key'});
$node->reload;
$node->wait_for_log(qr/qiwi\.secret_key is ignored: the key read from qiwi\.secret_key_file "\Q$key_file\E" is used/,
	$offset);
pass('with qiwi.secret_key set too, the log says the file wins');
is(sql('SELECT key_state()'), 'accepted', 'and the key in the file is the one sent');
sql(q{ALTER SYSTEM RESET qiwi.secret_key});

# 6. The log never held any of the keys, at DEBUG5 with log_statement = all
my $log = slurp_file($node->logfile);
like($log, qr/statement: CREATE EXTENSION qiwi_kassa/, 'statements were logged');
like($log, qr/statement hidden by qiwi_kassa/, 'but not those naming the key');
unlike($log, qr/\Q$sandbox_secret\E/, 'the log does not hold the key of the file');
for my $secret ('wrong-key-from-the-file', 'group-readable-key', 'ignored-setting-key')
{
	unlike($log, qr/\Q$secret\E/, "the log does not hold $secret");
}

$node->stop;
done_testing();
