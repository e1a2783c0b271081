// Starts a server listening and settles once it is bound (or failed to be).
import type net from 'node:net';

export function listenOn(server: net.Server, port: number, host: string, backlog?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ...(backlog ? { backlog } : {}) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
