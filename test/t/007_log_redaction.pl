# Statements that set qiwi.secret_key never reach the server log, however
# the name is spelt (case, quotes, spaces, set_config, a syntax error); nor
# does the key when QIWI echoes it in an error, and qiwi_bills.last_error
# keeps ******** in its place.  Only statements that give a key are hidden:
# words in a comment or a string hide nothing; a key given by a statement
# that is rolled back never becomes a secret; a key too short to be hidden
# is refused.
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

# 4. Only what gives a key is hidden: words in comments and strings hide
# nothing, the STATEMENT line of an error included
my $offset = -s $node->logfile;
sql(q{CREATE TABLE audit_me (i int)});
sql(q{DROP TABLE audit_me /* mapping */});
($ret, $stdout, $stderr) = $node->psql('postgres', q{SELECT 'server options' AS words, 1/0 AS fails});
like($stderr, qr/division by zero/, 'a statement naming server and options fails');
($ret, $stdout, $stderr) = $node->psql('postgres', q{DROP TABLE no_such_table /* user mapping, server options, secret */});
like($stderr, qr/does not exist/, 'a DROP with such a comment fails');
# the statements that give a key, for the check below that hides them
sql(q{CREATE SERVER payin_shop FOREIGN DATA WRAPPER qiwi OPTIONS (payin_site_id 'lr-site')});
sql(q{CREATE USER MAPPING FOR PUBLIC SERVER payin_shop OPTIONS (payin_api_key 'committed-payin-key-7')});
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER USER MAPPING FOR PUBLIC SERVER no_such_server OPTIONS (SET bill_secret_key 'failed-mapping-key')});
like($stderr, qr/server "no_such_server" does not exist/, 'a statement giving a key fails');
# an old script giving a key under its name before 1.4: refused, and the
# statement with the key is hidden all the same
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER USER MAPPING FOR PUBLIC SERVER payin_shop OPTIONS (ADD secret_key 'old-name-mapping-key')});
like($stderr, qr/option "secret_key" is now "bill_secret_key"\n.*\nHINT:  .*OPTIONS \(DROP secret_key, ADD bill_secret_key '\.\.\.'\)/,
	'a key option under its old name is refused, with the new name and how to rename it');
unlike($stderr, qr/old-name-mapping-key/, 'the error does not show the key');
$log = slurp_file($node->logfile, $offset);
like($log, qr{statement: DROP TABLE audit_me /\* mapping \*/}, 'a statement with "mapping" in a comment is logged in full');
like($log, qr{statement: SELECT 'server options' AS words, 1/0 AS fails},
	'a statement naming server and options is logged in full');
like($log, qr{ERROR:  division by zero\n[^\n]*STATEMENT:  SELECT 'server options' AS words, 1/0 AS fails},
	'and so is its STATEMENT line on error');
like($log, qr{ERROR:  table "no_such_table" does not exist\n[^\n]*STATEMENT:  DROP TABLE no_such_table /\* user mapping, server options, secret \*/},
	'the STATEMENT line of a failed DROP whose comment names them');
like($log, qr{statement: CREATE SERVER payin_shop}, 'a server without a key is logged in full');
is(() = $log =~ /statement hidden by qiwi_kassa: it gives or holds a key/g, 3,
	'the statements that give a key are hidden: the mapping and the failed ones');
unlike($log, qr/STATEMENT:  ALTER USER MAPPING/, 'and so is the STATEMENT line of its error');
unlike($log, qr/committed-payin-key-7|failed-mapping-key|old-name-mapping-key/, 'and no key they give is in the log');

# 5. A key becomes a secret when it is committed, not when it is validated
$offset = -s $node->logfile;
($ret, $stdout, $stderr) = $node->psql('postgres', q{
ALTER USER MAPPING FOR PUBLIC SERVER payin_shop OPTIONS (ADD payin_notification_key 'second-committed-key');
DO $$BEGIN RAISE NOTICE 'echo of %', 'second-committed-key'; END$$;
DO $$BEGIN RAISE NOTICE 'echo of %', 'committed-payin-key-7'; END$$;
});
like($stderr, qr/NOTICE:  echo of \*{8}\n.*NOTICE:  echo of \*{8}/s,
	'a committed key is redacted in the session that gave it (the check below can fail)');
sql(q{CREATE ROLE regress_usage LOGIN; GRANT USAGE ON FOREIGN SERVER payin_shop TO regress_usage});
($ret, $stdout, $stderr) = $node->psql('postgres', q{
SET ROLE regress_usage;
BEGIN;
CREATE USER MAPPING FOR CURRENT_USER SERVER payin_shop OPTIONS (payin_api_key 'qiwi_payin_refund');
ROLLBACK;
DO $$BEGIN RAISE NOTICE 'echo of %', 'qiwi_payin_refund'; END$$;
SELECT 'qiwi_payin_refund' AS word;
});
is($stdout, 'qiwi_payin_refund', 'a role with USAGE gave a key in a transaction it rolled back');
like($stderr, qr/NOTICE:  echo of qiwi_payin_refund/, 'the word it gave is no secret in its session');
$log = slurp_file($node->logfile, $offset);
like($log, qr/NOTICE:  echo of \*{8}/, 'the log redacts the committed keys');
unlike($log, qr/second-committed-key|committed-payin-key-7/, 'and holds none of them');
like($log, qr/NOTICE:  echo of qiwi_payin_refund/, 'the rolled-back one is no secret in the log');
like($log, qr/statement: SELECT 'qiwi_payin_refund' AS word/, 'and statements holding it are logged in full');

# 6. A key too short to be hidden is refused, and the error does not show it
($ret, $stdout, $stderr) = $node->psql('postgres', q{ALTER SYSTEM SET qiwi.secret_key = 'e'});
like($stderr, qr/qiwi\.secret_key must be at least 8 bytes long/, 'a one-letter key is refused, naming the setting and the minimum');
unlike($stderr, qr/'e'|"e"/, 'the error does not show it');
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER USER MAPPING FOR PUBLIC SERVER payin_shop OPTIONS (SET payin_api_key 'e')});
like($stderr, qr/invalid value for option "payin_api_key"\nDETAIL:  The key must be at least 8 bytes long/,
	'and so is a merchant\'s, naming the option and the minimum');
is(sql(q{SELECT 'existing'}), 'existing', 'ordinary words stay whole');
like(slurp_file($node->logfile, $offset), qr/statement: SELECT 'existing'/, 'in the log too');

$node->stop;
done_testing();
