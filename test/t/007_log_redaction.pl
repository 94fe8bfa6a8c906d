# Statements that set qiwi.secret_key never reach the server log, however
# the name is spelt (case, quotes, spaces, set_config, a syntax error); nor
# does the key when QIWI echoes it in an error, and qiwi_bills.last_error
# keeps ******** in its place.
use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

# The postmaster logs its environment at DEBUG3 before any library is loaded:
# the harness's copy of the key must not be in it
delete $ENV{QIWI_SANDBOX_SECRET};

my $node = qiwi_node('log_redaction', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '1s'
qiwi.max_retries = 0
log_min_messages = debug5
log_min_error_statement = debug5
log_statement = all
});
sandbox('/sandbox/reset');
$node->safe_psql('postgres', 'CREATE EXTENSION qiwi_kassa');

# A query's single value; a test that a query comes to return t
sub sql { return query_value($node, @_); }
sub wait_for { wait_true($node, @_); }

# 1. Every spelling of ALTER SYSTEM SET qiwi.secret_key; each new value also
# goes through the postmaster's "parameter changed" line on reload
my @spellings = (
	[ q{ALTER SYSTEM SET QIWI.SECRET_KEY = 'upper-case-spelling-key'}, 'upper-case-spelling-key' ],
	[ q{ALTER SYSTEM SET "qiwi"."secret_key" = 'quoted-spelling-key'}, 'quoted-spelling-key' ],
	[ qq{alter system set Qiwi . Secret_Key\n\tTO 'spaced-spelling-key'}, 'spaced-spelling-key' ],
	[ q{ALTER SYSTEM SET "QIWI".secret_key = 'quoted-upper-spelling-key'}, 'quoted-upper-spelling-key' ],
);
for my $s (@spellings)
{
	my ($statement, $value) = @$s;
	sql($statement);
	$node->reload;
	my $md5 = md5_hex($value);
	ok($node->poll_query_until('postgres', qq{SELECT md5(current_setting('qiwi.secret_key')) = '$md5'}),
		"the key is set by: " . ($statement =~ s/\s+/ /gr));
}
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT set_config('QIWI.SECRET_KEY', 'set-config-spelling-key', false)});
is($ret, 0, 'set_config sets it for a session');
($ret, $stdout, $stderr) = $node->psql('postgres',
	qq{ALTER SYSTEM SET qiwi.secret_key = 'first-half'\t'syntax-error-key'});
like($stderr, qr/syntax error/, 'a statement with a syntax error fails');
unlike($stderr, qr/syntax-error-key/, 'and its error quotes no part of the key');
sql(q{ALTER SYSTEM RESET qiwi.secret_key});
$node->reload;
ok($node->poll_query_until('postgres', qq{SELECT md5(current_setting('qiwi.secret_key')) = '} . md5_hex($sandbox_secret) . q{'}),
	'the key of postgresql.conf is back');

# 2. An error text from QIWI that echoes the key reaches neither the client
# nor the log, and qiwi_bills.last_error keeps ******** instead
is(sql(q{SELECT bill_id || ' ' || status FROM qiwi_create_bill('lr-1', 1, expires_at => now() + interval '1 day')}),
	'lr-1 WAITING', 'a bill');
sandbox('/sandbox/faults',
	qq({"times": 1000, "status": 500, "body": "{\\"errorCode\\": \\"echo\\", \\"description\\": \\"bad key $sandbox_secret\\"}"}));
($ret, $stdout, $stderr) = $node->psql('postgres', q{SELECT qiwi_bill_status('lr-1')});
like($stderr, qr/bad key \*{8}/, 'a key echoed by QIWI reaches the client as ********');
sql('SELECT qiwi_reconcile_now()');
wait_for(q{SELECT last_error IS NOT NULL FROM qiwi_bills WHERE bill_id = 'lr-1'},
	'the reconciler records the failure');
my $last_error = sql(q{SELECT last_error FROM qiwi_bills WHERE bill_id = 'lr-1'});
like($last_error, qr/bad key \*{8}/, 'qiwi_bills.last_error holds ******** for the key');
ok(index($last_error, $sandbox_secret) < 0, 'and not the key');
HTTP::Tiny->new->delete("$sandbox_url/sandbox/faults");

# 3. The log holds none of them, at DEBUG5 with log_statement = all
my $log = slurp_file($node->logfile);
like($log, qr/statement: CREATE EXTENSION qiwi_kassa/, 'statements were logged');
like($log, qr/parameter "qiwi\.secret_key" changed to "\*{8}"/, 'the reload lines show ******** for the key');
ok(index($log, $sandbox_secret) < 0, 'the log does not hold the key');
for my $secret (map({ $_->[1] } @spellings), 'set-config-spelling-key', 'syntax-error-key')
{
	unlike($log, qr/\Q$secret\E/, "the log does not hold $secret");
}

$node->stop;
done_testing();
