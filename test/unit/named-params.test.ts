import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rewriteNamedParameters } from '../../src/dataapi/named-params.js';

test(':name placeholders become $n, reused names share a number', () => {
  assert.deepEqual(rewriteNamedParameters('SELECT * FROM t WHERE a = :a AND b = :b OR a = :a'), { sql: 'SELECT * FROM t WHERE a = $1 AND b = $2 OR a = $1', names: ['a', 'b'] });
});

test('literals, identifiers, comments, dollar quotes and casts are left alone', () => {
  const sql = `SELECT ':x', ":y", $$ :z $$, $t$ :w $t$, a::int, :real -- :comment\n/* :block */ FROM t`;
  assert.deepEqual(rewriteNamedParameters(sql), { sql: `SELECT ':x', ":y", $$ :z $$, $t$ :w $t$, a::int, $1 -- :comment\n/* :block */ FROM t`, names: ['real'] });
  assert.deepEqual(rewriteNamedParameters("SELECT 'it''s :not'"), { sql: "SELECT 'it''s :not'", names: [] });
});

test('a renderer can add casts', () => {
  assert.equal(rewriteNamedParameters('SELECT :d', (i) => `($${i}::date)`).sql, 'SELECT ($1::date)');
});
