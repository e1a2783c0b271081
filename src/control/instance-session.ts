// A session on an instance's private socket as the cluster's superuser.
import pg from 'pg';
import type { LocalInstance } from '../compute/local-instance.js';
import { INTERNAL_SESSION_OPTIONS } from '../engine/postgres-server.js';

/** Runs fn in a session on the instance's private socket, closed afterwards. */
export async function withInstanceSession<T>(instance: LocalInstance, superuser: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ host: instance.server.options.socketDir, port: instance.options.record.enginePort, user: superuser, database: 'postgres', options: INTERNAL_SESSION_OPTIONS });
  // A server that dies between two queries (killed, crashed) sends its FATAL
  // to an idle client: unheard, that 'error' event would end the supervisor.
  // The next query on the dead session fails instead, and fn sees that.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
