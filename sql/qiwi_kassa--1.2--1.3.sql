-- qiwi_kassa 1.2 -> 1.3: the rest of the Payin API (see debian/changelog).
-- Every object added here is also in sql/ext, so an upgraded install
-- equals a fresh 1.3 (test/t/008_upgrade_and_cluster.pl).
\echo Use "ALTER EXTENSION qiwi_kassa UPDATE TO '1.3'" to load this file. \quit
