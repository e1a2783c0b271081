// `borealis bench lambda` for 15 seconds against a real cluster: records and
// chart are written, the series are not empty, capacity rises under the ramp,
// and no invocation fails. Bad ramps are refused before any load starts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Borealis } from '../helpers/borealis.js';

let b: Borealis;
before(async () => {
  b = await Borealis.start({ BOREALIS_DEFAULT_MIN_CAPACITY_ACU: '0.5', BOREALIS_DEFAULT_MAX_CAPACITY_ACU: '8' });
});
after(async () => {
  await b?.destroy();
});

test('a 15-second ramp of simulated functions: records, chart, rising capacity, no errors', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'borealis-lambda-'));
  const before = (await b.status()).clusters[0]!.instances[0]!.capacityAcu;
  const r = await b.cli(['bench', 'lambda', '--ramp', '0:1,8:24,12:24,15:0', '--out', out], 120_000);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /\d+ invocations, \d+ cold starts, 0 errors/);
  // The live progress line went to stderr, a line a second when not a terminal.
  assert.ok(r.stderr.split('\n').filter((l) => /concurrency \d+\/\d+/.test(l)).length >= 10);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'records.json'), 'utf8')) as {
    summary: { invocations: number; errors: number; coldStarts: number };
    records: Array<{ second: number; invocations: number; inFlight: number; capacityAcu: number; coldStarts: number; latencyP50Ms: number | null }>;
  };
  const rec = json.records;
  assert.ok(rec.length >= 14, `${rec.length} seconds recorded`);
  assert.equal(json.summary.errors, 0);
  assert.ok(json.summary.invocations > 100);
  assert.ok(json.summary.coldStarts >= 24, 'each container started cold once');
  assert.ok(json.summary.coldStarts < json.summary.invocations / 4, 'warm containers are reused');
  assert.ok(rec.every((x) => x.invocations > 0), 'every second has invocations');
  assert.ok(Math.max(...rec.map((x) => x.inFlight)) >= 20, 'concurrency followed the ramp');
  assert.ok(Math.max(...rec.map((x) => x.capacityAcu)) > before, `capacity rose above ${before} ACU`);
  const csv = fs.readFileSync(path.join(out, 'records.csv'), 'utf8').trim().split('\n');
  assert.equal(csv.length, rec.length + 1);
  assert.match(csv[0]!, /^second,target_concurrency,in_flight/);
  const svg = fs.readFileSync(path.join(out, 'chart.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  assert.ok((svg.match(/<rect /g) ?? []).length > rec.length, 'one bar a second');
  fs.rmSync(out, { recursive: true, force: true });
});

test('the same experiment through the Data API (AWS SDK in every function): no errors, and its access key is gone after', async () => {
  const keysBefore = (await b.cli(['access-key', 'list', '--json'])).stdout;
  // No --out: the run goes under the home (never into the current directory), and says where.
  const r = await b.cli(['bench', 'lambda', '--mode', 'data-api', '--ramp', '0:1,4:8,6:8,7:0'], 120_000);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const out = /records and the chart go to (\S+)/.exec(r.stderr)?.[1] ?? '';
  assert.equal(path.dirname(out), path.join(b.home, 'bench'), r.stderr);
  assert.match(r.stdout, /\d+ invocations, \d+ cold starts, 0 errors/);
  const json = JSON.parse(fs.readFileSync(path.join(out, 'records.json'), 'utf8')) as { mode: string; summary: { invocations: number; errors: number; coldStarts: number } };
  assert.equal(json.mode, 'data-api');
  assert.equal(json.summary.errors, 0);
  assert.ok(json.summary.invocations > 20, `${json.summary.invocations} invocations`);
  assert.ok(json.summary.coldStarts >= 8 && json.summary.coldStarts < json.summary.invocations);
  assert.equal((await b.cli(['access-key', 'list', '--json'])).stdout, keysBefore, 'the run\'s access key was deleted');
  fs.rmSync(out, { recursive: true, force: true });
});

test('a bad ramp or handler is refused before any load', async () => {
  for (const [args, message] of [
    [['--ramp', '5:10,10:20'], /starts at second 0/],
    [['--ramp', '0:1,10:99999'], /limited to 5000/],
    [['--ramp', 'fast'], /not seconds:concurrency/],
    [['--handler', '/nonexistent/handler.mjs', '--ramp', '0:1,2:1'], /no handler module/],
    [['--mode', 'psychic'], /--mode is pooled, fresh or data-api/],
  ] as const) {
    const r = await b.cli(['bench', 'lambda', ...args, '--out', path.join(os.tmpdir(), 'borealis-lambda-never')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, message);
  }
});
