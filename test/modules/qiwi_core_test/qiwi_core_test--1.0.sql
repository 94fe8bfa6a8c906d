-- qiwi_core_test: each section is one mechanism of qiwi_kassa's core
\echo Use "CREATE EXTENSION qiwi_core_test" to load this file. \quit
