# Money guards.  A call that only the reconciler completes
# (qiwi_create_bill_after_commit, qiwi_reconcile_now) works in the database
# it serves and is refused, naming qiwi.database, in any other (names
# compared exactly) and when it is off, before anything is recorded.
# Dropping the extension while its tables hold rows is refused with their
# counts, whatever command drops it (DROP EXTENSION, DROP SCHEMA ...
# CASCADE, DROP OWNED BY), unless qiwi.drop_ledger is on by SET LOCAL in
# that transaction; a session-wide SET does not count and the setting cannot
# be stored; an empty ledger drops without a word.
use strict;
use warnings;

use QiwiTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = qiwi_node('guards', q{
qiwi.database = 'postgres'
qiwi.reconcile_interval = '1s'
qiwi.reconcile_max_interval = '2s'
});
sandbox('/sandbox/reset');

sub sql_in { my ($db, $q) = @_; return $node->safe_psql($db, $q); }
sub sql { return sql_in('postgres', @_); }
sub wait_for { wait_true($node, @_); }

# The stderr of a statement run with the SQLSTATE shown; (exit code, stderr)
sub run_in
{
	my ($db, $q) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$q");
	$err =~ s/^LOCATION: .*\n//mg;
	return ($ret, $err);
}

# ---------- the reconciler's database ----------

sql('CREATE EXTENSION qiwi_kassa');
wait_for(q{SELECT running AND database = 'postgres' FROM qiwi_reconciler_status}, 'the reconciler serves postgres');

# in the database it serves, both work
is(sql(q{SELECT status FROM qiwi_create_bill_after_commit('g-1', 10, expires_at => now() + interval '1 day')}),
	'CREATING', 'served database: qiwi_create_bill_after_commit records the bill');
wait_for(q{SELECT status = 'WAITING' AND pay_url IS NOT NULL FROM qiwi_bills WHERE bill_id = 'g-1'},
	'served database: the reconciler creates it at QIWI');
like(sql(q{SELECT qiwi_reconcile_now()}), qr/^[01]$/, 'served database: qiwi_reconcile_now answers');

# What qiwi_reconcile_now makes due (in a transaction rolled back, so the
# reconciler never sees these rows; alone in their tables): the open bills
# and the followed invoices (CREATED, PAID with money held), as
# qiwi_reconciler_health counts them, without writing any of them
is(sql(q{BEGIN;
TRUNCATE qiwi_bills, qiwi_payin_invoices CASCADE;
INSERT INTO qiwi_bills (bill_id, amount, currency, status, checked_at, next_check_at, failures, last_error)
VALUES ('rd-1', 1, 'RUB', 'WAITING', now(), now() + interval '1 hour', 3, 'QKNET: connection refused'),
       ('rd-2', 1, 'RUB', 'CREATING', now(), now() + interval '1 hour', 1, NULL),
       ('rd-3', 1, 'RUB', 'PAID', now(), now() + interval '1 hour', 7, NULL);
INSERT INTO qiwi_payin_invoices (merchant, bill_id, amount, currency, status, capture, checked_at, next_check_at, failures)
VALUES ('rd', 'rd-i-1', 1, 'RUB', 'CREATED', 'auto', now(), now() + interval '1 hour', 2),
       ('rd', 'rd-i-2', 2, 'RUB', 'PAID', 'manual', now(), now() + interval '1 hour', 0),
       ('rd', 'rd-i-4', 4, 'RUB', 'PAID', 'manual', now(), now() + interval '1 hour', 5),
       ('rd', 'rd-i-5', 5, 'RUB', 'EXPIRED', 'auto', now(), now() + interval '1 hour', 4);
INSERT INTO qiwi_payin_payments (merchant, payment_id, bill_id, status, amount, currency, captured_amount,
                                 capture_deadline, checked_at)
VALUES ('rd', 'rd-p-2', 'rd-i-2', 'COMPLETED', 2, 'RUB', 0, now() + interval '3 days', now()),
       ('rd', 'rd-p-4', 'rd-i-4', 'COMPLETED', 4, 'RUB', 4, now() + interval '3 days', now());
CREATE TEMP TABLE rd_before AS SELECT ctid::text AS x, bill_id FROM qiwi_bills UNION ALL SELECT ctid::text, bill_id FROM qiwi_payin_invoices;
SELECT due_bills || '/' || payin_due_invoices FROM qiwi_reconciler_health;
SELECT qiwi_reconcile_now();
SELECT due_bills || '/' || payin_due_invoices FROM qiwi_reconciler_health;
SELECT count(*) FROM rd_before b WHERE b.x <> coalesce((SELECT ctid::text FROM qiwi_bills WHERE bill_id = b.bill_id),
                                                       (SELECT ctid::text FROM qiwi_payin_invoices WHERE bill_id = b.bill_id));
ROLLBACK}), "0/0\n4\n2/2\n0",
	'served database: qiwi_reconcile_now makes the open bills and the followed invoices due, and only them, writing none');

# The SQL both run as the extension's owner calls nothing planted in the
# caller's search_path
sql(q{CREATE SCHEMA mal;
CREATE TABLE mal.hits (fn text);
CREATE FUNCTION mal.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
$$BEGIN INSERT INTO mal.hits VALUES ('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END$$;
CREATE FUNCTION mal.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN INSERT INTO mal.hits VALUES ('='); RETURN pg_catalog.texteq($1, $2); END$$;
CREATE OPERATOR mal.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mal.text_eq)});
is(sql(q{SET search_path = mal, pg_catalog, public;
	SELECT clock_timestamp() IS NOT NULL AND 'a' = 'a';
	SELECT count(*) FROM mal.hits}), "t\n2", 'the planted function and operator fire when the caller uses them');
sql(q{TRUNCATE mal.hits});
is(sql(q{SET search_path = mal, pg_catalog, public;
	SELECT status FROM qiwi_create_bill_after_commit('sp-later', 8, expires_at => pg_catalog.now() + interval '1 day');
	SELECT qiwi_reconcile_now() >= 1;
	SELECT count(*) FROM mal.hits}), "CREATING\nt\n0", 'not through qiwi_create_bill_after_commit and qiwi_reconcile_now');
sql(q{DROP SCHEMA mal CASCADE});

# a database whose name differs from qiwi.database only in case is not served
sql('CREATE DATABASE "Postgres"');
sql_in('Postgres', 'CREATE EXTENSION qiwi_kassa');
my ($ret, $err) = run_in('Postgres',
	q{SELECT qiwi_create_bill_after_commit('g-2', 10, expires_at => now() + interval '1 day')});
like($err, qr/ERROR:  55000: qiwi_create_bill_after_commit cannot be used in database "Postgres": the reconciler serves database "postgres" \(qiwi\.database\)/,
	'unserved database: qiwi_create_bill_after_commit is refused, naming qiwi.database and both databases');
like($err, qr/DETAIL:  qiwi\.database lets reconcilers serve that database only \('\*' serves every database with the extension\); here the bill would stay CREATING, never created at QIWI\. Nothing was changed\./,
	'saying what would have happened');
like($err, qr/HINT:  Call it in database "postgres", or set qiwi\.database = 'Postgres' in postgresql\.conf \(or with ALTER SYSTEM\) and reload the configuration/,
	'and what to do');
is(sql_in('Postgres', q{SELECT count(*) FROM qiwi_bills}), '0', 'nothing was recorded');
($ret, $err) = run_in('Postgres', q{SELECT qiwi_reconcile_now()});
like($err, qr/ERROR:  55000: qiwi_reconcile_now cannot be used in database "Postgres": the reconciler serves database "postgres" \(qiwi\.database\)/,
	'unserved database: qiwi_reconcile_now is refused');

# qiwi.database empty: the reconciler is off, nothing is served
sql(q{ALTER SYSTEM SET qiwi.database = ''});
sql(q{SELECT pg_reload_conf()});
wait_for(q{SELECT current_setting('qiwi.database') = '' AND NOT running FROM qiwi_reconciler_status},
	'qiwi.database emptied: the reconciler stops');
($ret, $err) = run_in('postgres',
	q{SELECT qiwi_create_bill_after_commit('g-3', 10, expires_at => now() + interval '1 day')});
like($err, qr/ERROR:  55000: qiwi_create_bill_after_commit cannot be used: the reconciler is off \(qiwi\.database is empty\)/,
	'reconciler off: qiwi_create_bill_after_commit is refused');
like($err, qr/HINT:  Set qiwi\.database = 'postgres' in postgresql\.conf/, 'with the setting to give');
($ret, $err) = run_in('postgres', q{SELECT qiwi_reconcile_now()});
like($err, qr/ERROR:  55000: qiwi_reconcile_now cannot be used: the reconciler is off/, 'and so is qiwi_reconcile_now');
is(sql(q{SELECT count(*) FROM qiwi_bills WHERE bill_id = 'g-3'}), '0', 'nothing was recorded');
sql(q{ALTER SYSTEM RESET qiwi.database});
sql(q{SELECT pg_reload_conf()});
wait_for(q{SELECT running AND database = 'postgres' FROM qiwi_reconciler_status}, 'the reconciler is back');

# ---------- dropping the ledger ----------

# the ledger: g-1 and sp-later WAITING (open), g-paid PAID, and their events
wait_for(q{SELECT status = 'WAITING' FROM qiwi_bills WHERE bill_id = 'sp-later'}, 'the reconciler created sp-later');
sql(q{SELECT qiwi_create_bill('g-paid', 20, expires_at => now() + interval '1 day')});
sandbox('/sandbox/bills/g-paid/pay');
is(sql(q{SELECT status FROM qiwi_bill_status('g-paid')}), 'PAID', 'a paid bill');
my $events = sql(q{SELECT count(*) FROM qiwi_bill_events});
my $rows = $events + 3;
my $refusal = qr/ERROR:  2BP01: dropping extension qiwi_kassa would delete its ledger \(rows: $rows, tables: 2, open items: 2\)\nDETAIL:  qiwi_bill_events: $events rows, qiwi_bills: 3 rows \(2 open\)\. Open items are rows whose status can still change\./;
my $hint = qr/HINT:  Dump the tables first \(pg_dump -t 'public\.qiwi_\*' postgres, or the whole database\), then drop deliberately, in one transaction: BEGIN; SET LOCAL qiwi\.drop_ledger = on; DROP EXTENSION qiwi_kassa; COMMIT;/;
my $still_there = sub {
	my ($db, $what) = @_;
	is(sql_in($db, q{SELECT count(*) FROM pg_extension WHERE extname = 'qiwi_kassa'}), '1', "$what: the extension is still there");
};

($ret, $err) = run_in('postgres', 'DROP EXTENSION qiwi_kassa');
like($err, $refusal, 'DROP EXTENSION with rows is refused with the counts');
like($err, $hint, 'and says how to drop deliberately');
$still_there->('postgres', 'DROP EXTENSION');
is(sql(q{SELECT count(*) FROM qiwi_bills}), '3', 'the bills are kept');
($ret, $err) = run_in('postgres', 'DROP EXTENSION qiwi_kassa CASCADE');
like($err, $refusal, 'DROP EXTENSION ... CASCADE too');
($ret, $err) = run_in('postgres', 'DROP SCHEMA public CASCADE');
like($err, $refusal, 'DROP SCHEMA of its schema ... CASCADE too');
$still_there->('postgres', 'DROP SCHEMA');

# a session-wide SET does not count, in or out of a transaction block
($ret, $err) = run_in('postgres', 'SET qiwi.drop_ledger = on; DROP EXTENSION qiwi_kassa;');
like($err, qr/qiwi\.drop_ledger is on, but not by SET LOCAL in this transaction, so it does not count\./,
	'SET qiwi.drop_ledger for the session does not let it through');
($ret, $err) = run_in('postgres', 'BEGIN; SET qiwi.drop_ledger = on; DROP EXTENSION qiwi_kassa; COMMIT;');
like($err, $refusal, 'nor a plain SET inside the transaction');
$still_there->('postgres', 'session-wide SET');
# and it cannot be stored where every session would get it
($ret, $err) = run_in('postgres', q{ALTER SYSTEM SET qiwi.drop_ledger = on});
like($err, qr/ERROR:  55P02: parameter "qiwi\.drop_ledger" cannot be changed/, 'ALTER SYSTEM cannot set it');
($ret, $err) = run_in('postgres', q{ALTER DATABASE postgres SET qiwi.drop_ledger = on});
like($err, qr/ERROR:  55P02: qiwi\.drop_ledger can only be set with SET LOCAL, for one transaction/,
	'nor ALTER DATABASE ... SET');

# the deliberate route
($ret, $err) = run_in('postgres', 'BEGIN; SET LOCAL qiwi.drop_ledger = on; DROP EXTENSION qiwi_kassa; COMMIT;');
is($ret, 0, 'SET LOCAL qiwi.drop_ledger = on lets DROP EXTENSION through');
like($err, qr/WARNING:  01000: dropping extension qiwi_kassa deletes its ledger, as qiwi\.drop_ledger allows \(rows: $rows, tables: 2, open items: 2\)\nDETAIL:  qiwi_bill_events: $events rows, qiwi_bills: 3 rows \(2 open\)\./,
	'with a warning that counts what went');
is(sql(q{SELECT count(*) FROM pg_extension WHERE extname = 'qiwi_kassa'}), '0', 'the extension is gone');
like(slurp_file($node->logfile), qr/WARNING:  dropping extension qiwi_kassa deletes its ledger, as qiwi\.drop_ledger allows \(rows: $rows, tables: 2, open items: 2\)/,
	'the server log says so, with the counts');

# an empty ledger drops without a word
sql('CREATE EXTENSION qiwi_kassa');
($ret, $err) = run_in('postgres', 'DROP EXTENSION qiwi_kassa');
is($ret . $err, '0', 'an empty install drops silently');
($ret, $err) = run_in('Postgres', 'DROP EXTENSION qiwi_kassa');
is($ret . $err, '0', 'so does the empty ledger of the unserved database');

# DROP OWNED BY the role that owns the extension, in a schema of its own
sql('CREATE DATABASE owned');
sql_in('owned', q{CREATE ROLE regress_shop_owner SUPERUSER;
	SET ROLE regress_shop_owner;
	CREATE SCHEMA shop;
	CREATE EXTENSION qiwi_kassa SCHEMA shop;
	SELECT shop.qiwi_create_bill('o-1', 5, expires_at => now() + interval '1 day')});
my $owned_refusal = qr/ERROR:  2BP01: dropping extension qiwi_kassa would delete its ledger \(rows: 2, tables: 2, open items: 1\)\nDETAIL:  qiwi_bill_events: 1 row, qiwi_bills: 1 row \(1 open\)\./;
($ret, $err) = run_in('owned', 'DROP OWNED BY regress_shop_owner');
like($err, $owned_refusal, 'DROP OWNED BY its owner is refused with the counts');
like($err, qr/pg_dump -t 'shop\.qiwi_\*' owned/, 'naming its schema and database for the dump');
$still_there->('owned', 'DROP OWNED');
($ret, $err) = run_in('owned', 'DROP SCHEMA shop CASCADE');
like($err, $owned_refusal, 'DROP SCHEMA shop CASCADE is refused');
($ret, $err) = run_in('owned', 'BEGIN; SET LOCAL qiwi.drop_ledger = on; DROP OWNED BY regress_shop_owner; COMMIT;');
is($ret, 0, 'DROP OWNED BY goes through deliberately');
is(sql_in('owned', q{SELECT count(*) FROM pg_extension WHERE extname = 'qiwi_kassa'}), '0', 'and drops the extension');
sql_in('owned', 'DROP ROLE regress_shop_owner');

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no process crashed');
$node->stop;
done_testing();
