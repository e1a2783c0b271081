// Where everything lives under the Borealis home.
import fs from 'node:fs';
import path from 'node:path';

export function homePaths(home: string) {
  return {
    home,
    stateDb: path.join(home, 'state.db'),
    secretKey: path.join(home, 'secrets.key'),
    runDir: path.join(home, 'run'),
    supervisorFile: path.join(home, 'run', 'supervisor.json'),
    apiTokenFile: path.join(home, 'run', 'api-token'),
    logDir: path.join(home, 'logs'),
    logFile: path.join(home, 'logs', 'borealis.log'),
    detachedLogFile: path.join(home, 'logs', 'supervisor.out'),
    tlsDir: path.join(home, 'tls'),
    engineDir: path.join(home, 'engine'),
    instancesDir: path.join(home, 'instances'),
    instanceDir: (id: string) => path.join(home, 'instances', id),
  };
}

export type HomePaths = ReturnType<typeof homePaths>;

/** What a running supervisor writes so the CLI can find it. */
export interface SupervisorInfo {
  readonly pid: number;
  readonly apiUrl: string;
  readonly startedAt: string;
}

/**
 * Creates the home and its log directory. The home must stay traversable
 * (not listable) by the unprivileged user that runs PostgreSQL.
 */
export function ensureHome(paths: HomePaths): void {
  fs.mkdirSync(paths.home, { recursive: true, mode: 0o711 });
  const mode = fs.statSync(paths.home).mode & 0o777;
  if ((mode & 0o011) !== 0o011) fs.chmodSync(paths.home, mode | 0o011);
  fs.mkdirSync(paths.logDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(paths.runDir, { recursive: true, mode: 0o700 });
}
