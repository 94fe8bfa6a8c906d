# make installcheck (test/with-sandbox.sh running pg_regress) against a
# server configured as README says for production: its qiwi.* settings
# (qiwi.site_id, qiwi.payin_site_id, qiwi.public_key, qiwi.max_retries, ...,
# in postgresql.conf and by ALTER ROLE) do not reach the test sessions, and
# the tests that read them pass; a server whose settings cannot be undone
# for a session (qiwi.secret_key_file, a qiwi.database naming the test
# database or '*') is refused up front, naming the setting.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

my $src = $ENV{QIWI_SRC} or die "QIWI_SRC is not set";
my $node = PostgreSQL::Test::Cluster->new('production_settings');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'qiwi_kassa'
qiwi.api_url = 'https://api.qiwi.com'
qiwi.payin_api_url = 'https://api.qiwi.com'
qiwi.site_id = 'prod-site-1'
qiwi.payin_site_id = 'prod-payin-1'
qiwi.public_key = 'prod-public-key'
qiwi.ca_file = '/etc/ssl/certs/ca-certificates.crt'
qiwi.timeout = '20s'
qiwi.connect_timeout = '5s'
qiwi.max_retries = 5
qiwi.database = 'postgres'
});
$node->start;
$node->safe_psql('postgres', q{ALTER ROLE CURRENT_USER SET qiwi.site_id = 'role-site'});

# Run a command through test/with-sandbox.sh against the node; its exit
# status, standard output and standard error
sub with_sandbox
{
	my @command = @_;
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'bash', "$src/test/with-sandbox.sh", @command ], '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

# A file's content, or nothing when it does not exist
sub slurp_file_if
{
	my ($path) = @_;
	return -e $path ? slurp_file($path) : '';
}

# What a session that make installcheck opens sees: only the sandbox's
# address and timeout differ from the library's built-in values, and
# qiwi.database, which no session can set (this server names postgres, not
# the test database: with-sandbox.sh refuses '*', the built-in value)
my ($status, $out, $err) = with_sandbox('psql', '-X', '-At', '-c',
	q{SELECT string_agg(name, ' ' ORDER BY name) FROM pg_settings
	   WHERE name LIKE 'qiwi.%' AND setting IS DISTINCT FROM boot_val});
is($status, 0, 'a session under with-sandbox.sh runs') or diag($err);
is($out, "qiwi.api_url qiwi.database qiwi.timeout\n",
	'a test session sees the built-in qiwi.* values, not the server\'s (postgresql.conf, ALTER ROLE)');
is($node->safe_psql('postgres', 'SHOW qiwi.site_id'), 'role-site',
	'a session of its own still sees the server\'s settings');

# The regression tests that read qiwi.site_id, qiwi.public_key,
# qiwi.connect_timeout and qiwi.ca_file pass against this server
my $outdir = $node->basedir . '/regress';
mkdir $outdir or die "$outdir: $!";
($status, $out, $err) = with_sandbox($ENV{PG_REGRESS}, "--inputdir=$src", "--outputdir=$outdir",
	'--bindir=', '--encoding=UTF8', 'qiwi_setup', 'qiwi_notifications', 'qiwi_payform');
is($status, 0, 'qiwi_setup, qiwi_notifications and qiwi_payform pass on a server configured for production')
	or diag($out . $err . slurp_file_if("$outdir/regression.diffs"));
like($out, qr/All 3 tests passed/, 'pg_regress ran the 3 tests');

# Settings a session cannot undo: refused before any sandbox starts
$node->append_conf('postgresql.conf', "qiwi.database = 'regression'\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('qiwi.database') = 'regression'})
	or die "the reload did not take qiwi.database";
($status, $out, $err) = with_sandbox('psql', '-X', '-At', '-c', 'SELECT 1');
isnt($status, 0, 'a server whose reconciler serves the test database is refused');
like($err, qr/qiwi\.database = 'regression', the test database/, 'the refusal names qiwi.database');
unlike($err . $out, qr/sandboxes on ports/, 'no sandbox was started');

$node->append_conf('postgresql.conf', "qiwi.database = '*'\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('qiwi.database') = '*'})
	or die "the reload did not take qiwi.database";
($status, $out, $err) = with_sandbox('psql', '-X', '-At', '-c', 'SELECT 1');
isnt($status, 0, "a server whose reconcilers serve every database ('*') is refused");
like($err, qr/qiwi\.database = '\*', which serves every database/, "the refusal names qiwi.database = '*'");

my $key_file = $node->basedir . '/qiwi.key';
open my $fh, '>', $key_file or die "$key_file: $!";
print $fh "a-production-key\n";
close $fh;
chmod 0600, $key_file or die "$key_file: $!";
$node->append_conf('postgresql.conf', "qiwi.database = 'postgres'\nqiwi.secret_key_file = '$key_file'\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('qiwi.secret_key_file') <> ''})
	or die "the reload did not take qiwi.secret_key_file";
($status, $out, $err) = with_sandbox('psql', '-X', '-At', '-c', 'SELECT 1');
isnt($status, 0, 'a server holding a key file is refused');
like($err, qr/qiwi\.secret_key_file set/, 'the refusal names qiwi.secret_key_file');
unlike($err . $out, qr/a-production-key/, 'the key is not shown');

$node->stop;
done_testing();
