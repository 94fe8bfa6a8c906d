# The core's notification trigger shell (src/core/notification.c), through
# a toy API of the test module (test/modules/qiwi_core_test/trigger_shell.c):
# its notifications name their merchant in "shop" and sign "id|amount" with
# the merchant's bill_secret_key; a verified one is recorded once in
# qiwi_core_test_notified.  A forgery is stored unverified and never applied, a
# duplicate is not applied twice, an apply step that fails leaves the row
# stored with its error and the rest of the transaction intact, a
# notification naming no merchant is marked with the reason, an apply step
# that cannot go on now (a lock timeout) fails the INSERT, and the key
# shows nowhere.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use QiwiTest;
use Test::More;

my $key = 'toy-key-of-shop-a';
my $node = qiwi_node('core_trigger_shell', "qiwi.database = ''\n");
$node->safe_psql('postgres', qq{
CREATE EXTENSION qiwi_kassa;
CREATE EXTENSION qiwi_core_test;
CREATE SERVER shop_a FOREIGN DATA WRAPPER qiwi;
CREATE USER MAPPING FOR PUBLIC SERVER shop_a OPTIONS (bill_secret_key '$key');
CREATE SERVER shop_b FOREIGN DATA WRAPPER qiwi;
CREATE TABLE inbox (id serial, signature text, body jsonb, merchant text,
	verified boolean, applied boolean, error text);
CREATE TRIGGER verify BEFORE INSERT ON inbox
	FOR EACH ROW EXECUTE FUNCTION qiwi_core_test_notification_verify();
CREATE TABLE failing_inbox (LIKE inbox INCLUDING DEFAULTS);
CREATE TRIGGER verify BEFORE INSERT ON failing_inbox
	FOR EACH ROW EXECUTE FUNCTION qiwi_core_test_notification_verify_failing();
CREATE TABLE strict_inbox (LIKE inbox INCLUDING DEFAULTS);
CREATE TRIGGER verify BEFORE INSERT ON strict_inbox
	FOR EACH ROW EXECUTE FUNCTION qiwi_core_test_notification_verify('reject');
CREATE TABLE elsewhere (what text);
});

# A query's single value
sub sql { return query_value($node, @_); }

# Store a toy notification in table, signed by signer (SQL: a signature,
# or NULL for shop_a's own); the row as the trigger left it
sub store
{
	my ($table, $body, $signer) = @_;
	$signer //= qq{qiwi_core_test_sign_notification('$body', merchant => 'shop_a')};
	return sql(qq{INSERT INTO $table (signature, body) VALUES ($signer, '$body')
		RETURNING concat_ws(':', merchant, verified, applied, error)});
}

my $n1 = '{"shop": "shop_a", "id": "n1", "amount": "10.00"}';
is(store('inbox', $n1), 'shop_a:t:t', 'a notification signed with its merchant\'s key is verified and applied');
is(sql(q{SELECT amount || ':' || merchant FROM qiwi_core_test_notified WHERE id = 'n1'}), '10.00:shop_a',
	'its apply step recorded it for its merchant');

# ---------- forgeries ----------
my $n2 = '{"shop": "shop_a", "id": "n2", "amount": "20.00"}';
is(store('inbox', $n2, qq{qiwi_core_test_sign_notification('$n2', 'not-the-key-of-shop-a')}),
	'f:f:the signature does not match', 'a wrong signature is stored unverified');
is(store('inbox', '{"shop": "shop_a", "id": "n2", "amount": "2000.00"}',
		qq{qiwi_core_test_sign_notification('$n2', merchant => 'shop_a')}),
	'f:f:the signature does not match', 'so is a right signature of other fields');
is(store('inbox', $n2, q{'0a1b'}), 'f:f:the signature is not 64 hex digits',
	'a signature of the wrong length is refused as such');
is(sql(q{SELECT count(*) FROM qiwi_core_test_notified WHERE id = 'n2'}), '0', 'none of them was applied');
is(store('inbox', $n2, 'NULL'), 'f:f:the notification has no signature',
	'a notification without a signature is marked');

# ---------- the merchant a notification names ----------
is(store('inbox', '{"shop": "nobody", "id": "n3", "amount": "1.00"}', q{repeat('0', 64)}),
	'f:f:no merchant is named "nobody"', 'a notification naming an unknown merchant is marked with the reason');
is(store('inbox', '{"id": "n3", "amount": "1.00"}', q{repeat('0', 64)}),
	'f:f:field "shop" is missing', 'so is one naming none');
is(store('inbox', '{"shop": "shop_b", "id": "n3", "amount": "1.00"}', q{repeat('0', 64)}),
	'f:f:merchant "shop_b" has no bill_secret_key to verify with',
	'one naming a merchant without a key is marked');
is(sql(q{SELECT count(*) FROM qiwi_core_test_notified WHERE id = 'n3'}), '0', 'none of them was applied');

# ---------- duplicates ----------
is(store('inbox', $n1), 'shop_a:t:f:duplicate: notification "n1" is already recorded',
	'the same notification again is verified but not applied twice');
is(sql(q{SELECT count(*) FROM qiwi_core_test_notified WHERE id = 'n1'}), '1', 'it is recorded once');

# ---------- an apply step that fails ----------
my $n4 = '{"shop": "shop_a", "id": "n4", "amount": "40.00"}';
$node->safe_psql('postgres', qq{
BEGIN;
INSERT INTO elsewhere VALUES ('before');
INSERT INTO failing_inbox (signature, body) VALUES (qiwi_core_test_sign_notification('$n4', merchant => 'shop_a'), '$n4');
INSERT INTO elsewhere VALUES ('after');
COMMIT;
});
is(sql(q{SELECT concat_ws(':', merchant, verified, applied, error) FROM failing_inbox}),
	'shop_a:t:f:verified but not applied: the toy\'s apply step fails after writing',
	'a notification whose apply step fails is stored, verified, with the error');
is(sql(q{SELECT count(*) FROM qiwi_core_test_notified WHERE id = 'n4'}), '0',
	'what the apply step wrote before failing was rolled back');
is(sql(q{SELECT string_agg(what, ',' ORDER BY what) FROM elsewhere}), 'after,before',
	'the rest of the transaction committed');

# ---------- 'reject' ----------
my ($rc, $out, $err) = $node->psql('postgres',
	qq{INSERT INTO strict_inbox (signature, body) VALUES (qiwi_core_test_sign_notification('$n2', 'not-the-key-of-shop-a'), '$n2')});
like($err, qr/toy notification rejected: the signature does not match/,
	'with \'reject\', a forgery fails its INSERT');
is(sql(q{SELECT count(*) FROM strict_inbox}), '0', 'and is not stored');
is(store('strict_inbox', $n2), 'shop_a:t:t', 'with \'reject\', a verified one is stored and applied');

# ---------- an error of the moment ----------
# an apply step that cannot go on now (a lock timeout, a deadlock) fails
# the INSERT, so that QIWI sends the notification again: stored as not
# applied, it would never be applied
my $n5 = '{"shop": "shop_a", "id": "n5", "amount": "50.00"}';
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN;
INSERT INTO qiwi_core_test_notified (id, amount, merchant) VALUES ('n5', 50.00, 'shop_a');});
($rc, $out, $err) = $node->psql('postgres', qq{SET lock_timeout = '200ms';
INSERT INTO inbox (signature, body) VALUES (qiwi_core_test_sign_notification('$n5', merchant => 'shop_a'), '$n5')});
like($err, qr/canceling statement due to lock timeout/,
	'an apply step that times out waiting for a lock fails the INSERT');
is(sql(q{SELECT count(*) FROM inbox WHERE body->>'id' = 'n5'}), '0',
	'and nothing is stored as if it were handled');
$holder->query_safe('ROLLBACK');
$holder->quit;
is(store('inbox', $n5), 'shop_a:t:t', 'sent again once the lock is gone, it is applied');

# ---------- the key ----------
# read out, not searched for: a statement holding the key would be logged
my $errors = sql(q{SELECT string_agg(error, E'\n') FROM (SELECT error FROM inbox
	UNION ALL SELECT error FROM failing_inbox UNION ALL SELECT error FROM strict_inbox) e});
like($errors, qr/the signature does not match/, 'the error columns were read');
unlike($errors, qr/\Q$key\E/, 'no error column shows the key');
unlike(slurp_file($node->logfile), qr/\Q$key\E/, 'nor does the server log');

$node->stop;
done_testing();
