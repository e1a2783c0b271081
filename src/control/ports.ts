// The ports Borealis listens on, checked before any set-up: a port in use is
// reported at once, naming the setting that chose it, and a port a user
// asked for is never quietly swapped for another.
import net from 'node:net';
import { settingSource, type Settings } from '../config/settings.js';

export class PortInUse extends Error {
  override readonly name = 'PortInUse';
}

/** Whether `port` can be bound on `host` now. */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

/** A port Borealis is to listen on, and what it is for. */
export interface WantedPort {
  readonly port: number;
  /** "the Data API", "the writer endpoint of cluster default". */
  readonly what: string;
  /** How a user chooses it (a flag and environment variable), when a setting does. */
  readonly setting?: keyof Settings;
}

/** The ports a start needs: the API's, the Data API's, and each recorded endpoint's (or, at first start, the default writer endpoint's). */
export function portsToCheck(settings: Settings, endpoints: ReadonlyArray<{ cluster: string; type: string; name: string; port: number }> | null): WantedPort[] {
  const wanted: WantedPort[] = [
    { port: settings.apiPort, what: 'the control API', setting: 'apiPort' },
    { port: settings.dataApiPort, what: 'the Data API', setting: 'dataApiPort' },
  ];
  if (endpoints === null) wanted.push({ port: settings.proxyPort, what: 'the default cluster\'s writer endpoint', setting: 'proxyPort' });
  else for (const e of endpoints) wanted.push({ port: e.port, what: `the ${e.type} endpoint${e.name ? ` ${e.name}` : ''} of cluster ${e.cluster}` });
  return wanted;
}

/** Throws PortInUse naming every wanted port that something else holds (or that two uses share). */
export async function checkPortsFree(host: string, wanted: readonly WantedPort[]): Promise<void> {
  const problems: string[] = [];
  const seen = new Map<number, string>();
  for (const w of wanted) {
    const hint = w.setting ? ` (choose another with ${settingSource(w.setting)})` : '';
    const other = seen.get(w.port);
    if (other) problems.push(`port ${w.port} is wanted by both ${other} and ${w.what}${hint}`);
    else if (!(await portIsFree(host, w.port))) problems.push(`port ${w.port} for ${w.what} is in use on ${host}${hint}`);
    seen.set(w.port, w.what);
  }
  if (problems.length > 0) throw new PortInUse(problems.join('; '));
}
