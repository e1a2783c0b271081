// Renders docs/configuration.md from the settings tables, so the reference
// cannot drift from the code (a unit test compares the two).
import { PG_SETTINGS } from '../engine/pg-settings.js';
import { SETTINGS, UP_FLAGS, upFlagName, type UpFlagKey } from './settings.js';

export function renderConfigurationDoc(): string {
  const lines = [
    '# Configuration reference',
    '',
    'Generated from `src/config/settings.ts` and `src/engine/pg-settings.ts` by `npm run docs:config`; do not edit by hand.',
    '',
    '## Borealis settings',
    '',
    'Each setting is read from its environment variable; `borealis up` also takes these as flags:',
    `${['--home', ...(Object.keys(UP_FLAGS) as UpFlagKey[]).map(upFlagName)].map((f) => `\`${f}\``).join(', ')}.`,
    'Before it sets anything up, `up` checks that the ports it is to listen on are free; one in use fails the start with the flag and variable that choose it.',
    'Units are part of the names (`Ms` milliseconds, `Bytes`, `MiB`, `Acu`).',
    '',
    '| setting | environment variable | default | meaning |',
    '|---|---|---|---|',
  ];
  for (const s of SETTINGS) {
    const def = s.key === 'home' ? '`~/.borealis` (root: `/var/lib/borealis`)' : `\`${String(s.defaultValue()) || '(empty)'}\``;
    lines.push(`| \`${s.key}\` | \`${s.env}\` | ${def} | ${s.doc} |`);
  }
  lines.push(
    '',
    'Also read at cluster creation: `BOREALIS_PASSWORD`, the master password of the `default` cluster created by the first `borealis up` (generated when unset).',
    '',
    '## PostgreSQL settings Borealis manages',
    '',
    'Written to each instance\'s `postgresql.conf` at every start. `reload` settings may change while running (the autoscaler moves them with capacity); `restart` ones are fixed at start.',
    '',
    '| setting | context | unit | why |',
    '|---|---|---|---|',
  );
  for (const p of PG_SETTINGS) lines.push(`| \`${p.name}\` | ${p.context} | ${p.unit || '—'} | ${p.doc} |`);
  return lines.join('\n') + '\n';
}
