import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pinReasons } from '../../src/pgwire/session-state.js';

const cases: Array<[string, string[]]> = [
  ['SELECT abalance FROM pgbench_accounts WHERE aid = 1', []],
  ["SET search_path = app", ['set']],
  ['set session statement_timeout to 5', ['set']],
  ['SET ROLE other', ['set']],
  ['SET LOCAL statement_timeout = 5', []],
  ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', []],
  ['SET CONSTRAINTS ALL DEFERRED', []],
  ['LISTEN jobs', ['listen']],
  ['CREATE TEMP TABLE t (x int)', ['temp-table']],
  ['create temporary table t as select 1', ['temp-table']],
  ['CREATE GLOBAL TEMPORARY TABLE t (x int)', ['temp-table']],
  ['CREATE TABLE temp (x int)', []],
  ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', ['cursor-with-hold']],
  ['DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1', []],
  ['DECLARE c CURSOR FOR SELECT hold, with FROM t', []],
  ['PREPARE q AS SELECT 1', ['sql-prepare']],
  ["PREPARE TRANSACTION 'x'", []],
  ['SELECT pg_advisory_lock(42)', ['advisory-lock']],
  ['select pg_try_advisory_lock_shared(1, 2)', ['advisory-lock']],
  ['SELECT pg_advisory_xact_lock(42)', []],
  ["SELECT set_config('search_path', 'x', false)", ['set']],
  ["SELECT set_config('search_path', 'x', true)", []],
  ["LOAD 'auto_explain'", ['load']],
  // Words inside literals, identifiers and comments do not count.
  ["SELECT 'SET x = 1; LISTEN y'", []],
  ['SELECT "set" FROM t -- LISTEN x', []],
  ['SELECT 1 /* CREATE TEMP TABLE /* nested */ x */', []],
  ["SELECT $$ SET x $$, $tag$ LISTEN $tag$", []],
  ["SELECT E'it\\'s; SET x'", []],
  // Several statements in one Query.
  ['BEGIN; SET search_path = a; LISTEN b; COMMIT', ['set', 'listen']],
];

for (const [sql, expected] of cases) {
  test(`pins: ${sql}`, () => {
    assert.deepEqual(pinReasons(sql).sort(), [...expected].sort());
  });
}
