// `npm run reliability [-- --seconds 30 --clients 6 --seed 1 --only a,b --write-doc]`:
// every scenario of scenarios.ts in turn, then the table (markdown) of what
// each one cost: acknowledged writes lost, phantom writes, other anomalies,
// time without writes and reads, time to recover. Exits non-zero when any
// scenario shows an anomaly. --write-doc replaces the table in
// docs/reliability.md.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describeAnomalies } from './checker.js';
import { runScenario, SCENARIOS, type ScenarioResult } from './scenarios.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    clients: { type: 'string', default: '6' },
    seed: { type: 'string', default: '1' },
    only: { type: 'string' },
    'write-doc': { type: 'boolean', default: false },
  },
});

const log = (line: string): void => void process.stderr.write(line + '\n');
const only = values.only ? new Set(values.only.split(',')) : null;
const chosen = SCENARIOS.filter((s) => !only || only.has(s.name));
if (chosen.length === 0) {
  log(`no scenario matches --only ${values.only}; scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  process.exit(2);
}

const results: ScenarioResult[] = [];
for (const [i, s] of chosen.entries()) {
  log(`[${i + 1}/${chosen.length}] ${s.name}: ${s.description}`);
  const r = await runScenario(s, { durationMs: Number(values.seconds) * 1000, clients: Number(values.clients), seed: Number(values.seed) + i, log });
  results.push(r);
  if (r.skipped) {
    log(`[${i + 1}/${chosen.length}] ${s.name}: skipped: ${r.skipped}`);
    continue;
  }
  for (const note of r.notes ?? []) log(`[${i + 1}/${chosen.length}] ${s.name}: note: ${note}`);
  log(`[${i + 1}/${chosen.length}] ${s.name}: ${r.check.counts.acknowledgedWrites} acknowledged writes, ${r.check.anomalies.length} anomalies${r.error ? `, ${r.error}` : ''}`);
  if (r.check.anomalies.length > 0) log(describeAnomalies(r.check.anomalies));
}

const count = (r: ScenarioResult, kind: string): number => r.check.anomalies.filter((a) => a.kind === kind).length;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const table = [
  '| scenario | fault | ops ok / failed / unknown | acknowledged writes | lost | phantom | other anomalies | longest time without writes | without reads | writes back for good after |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...results.map((r) => {
    if (r.skipped) return `| ${r.name} | ${r.description} (skipped: ${r.skipped}) | | | | | | | | |`;
    const other = r.check.anomalies.filter((a) => a.kind !== 'lost-write' && a.kind !== 'phantom-write').map((a) => a.kind);
    const notes = [...new Set(other)].join(', ') || (r.finalReadsDone ? '0' : 'final reads failed');
    const said = [r.error, ...(r.notes ?? [])].filter(Boolean).join('; ');
    return `| ${r.name} | ${r.description}${said ? ` (${said})` : ''} | ${r.check.counts.ok} / ${r.check.counts.fail} / ${r.check.counts.unknown} | ${r.check.counts.acknowledgedWrites} | ${count(r, 'lost-write')} | ${count(r, 'phantom-write')} | ${notes} | ${seconds(r.writeUnavailableMs)} | ${seconds(r.readUnavailableMs)} | ${seconds(r.recoveryMs)} |`;
  }),
].join('\n');
process.stdout.write(table + '\n');

if (values['write-doc']) {
  const doc = fileURLToPath(new URL('../../docs/reliability.md', import.meta.url));
  const text = fs.readFileSync(doc, 'utf8');
  const begin = '<!-- table:begin -->';
  const end = '<!-- table:end -->';
  const stamp = `Run ${new Date().toISOString().slice(0, 10)}: \`npm run reliability -- --seconds ${values.seconds} --clients ${values.clients} --seed ${values.seed}\` on this machine (2 cores).`;
  fs.writeFileSync(doc, text.slice(0, text.indexOf(begin) + begin.length) + `\n${stamp}\n\n${table}\n` + text.slice(text.indexOf(end)));
}
process.exitCode = results.some((r) => !r.skipped && (r.check.anomalies.length > 0 || !r.finalReadsDone)) ? 1 : 0;
