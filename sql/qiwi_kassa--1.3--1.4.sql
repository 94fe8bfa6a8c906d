-- qiwi_kassa 1.3 -> 1.4: money safety, second pass (see CHANGELOG).
-- Every object added here is also in sql/ext, so an upgraded install
-- equals a fresh 1.4 (test/t/008_upgrade_and_cluster.pl).
\echo Use "ALTER EXTENSION qiwi_kassa UPDATE TO '1.4'" to load this file. \quit
