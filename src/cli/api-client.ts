// How CLI commands reach a running supervisor: its address and token are in
// the home, readable only by the user who started it.
import fs from 'node:fs';
import { homePaths, type SupervisorInfo } from '../control/paths.js';

export class NotRunning extends Error {
  override readonly name = 'NotRunning';
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function readSupervisorInfo(home: string): SupervisorInfo | null {
  try {
    const info = JSON.parse(fs.readFileSync(homePaths(home).supervisorFile, 'utf8')) as SupervisorInfo;
    return isAlive(info.pid) ? info : null;
  } catch {
    return null;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class ApiClient {
  private constructor(
    readonly info: SupervisorInfo,
    private readonly token: string,
  ) {}

  /** The dashboard's address, with the token in the fragment (never sent in a request line). */
  dashboardUrl(): string {
    return `${this.info.apiUrl}/dashboard#token=${encodeURIComponent(this.token)}`;
  }

  static connect(home: string): ApiClient {
    const info = readSupervisorInfo(home);
    if (!info) throw new NotRunning(`Borealis is not running for home ${home} (start it with \`borealis up\`)`);
    const token = fs.readFileSync(homePaths(home).apiTokenFile, 'utf8').trim();
    return new ApiClient(info, token);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.info.apiUrl + path, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(300_000),
    });
    const payload = (await res.json()) as { error?: { code: string; message: string } };
    if (!res.ok) throw new ApiError(res.status, payload.error?.code ?? 'Error', payload.error?.message ?? `HTTP ${res.status}`);
    return payload as T;
  }
}
