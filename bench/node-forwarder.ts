// The least a Node process can do in the path of a PostgreSQL client, as a
// reference point for the front-door benchmark: every client connection
// gets its own connection to PostgreSQL and bytes are relayed as they come
// ('data' → write), with no parsing and no pooling. Its CPU per transaction
// is the floor for any pooler built on Node's sockets.
//
//   node --import tsx bench/node-forwarder.ts <listen port> <postgres socket dir> <postgres port>
import net from 'node:net';
import path from 'node:path';

const [listenArg, socketDir, pgPortArg] = process.argv.slice(2);
if (!listenArg || !socketDir || !pgPortArg) throw new Error('usage: node-forwarder <listen port> <postgres socket dir> <postgres port>');

const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect(path.join(socketDir, `.s.PGSQL.${pgPortArg}`));
  client.on('data', (chunk: Buffer) => upstream.write(chunk));
  upstream.on('data', (chunk: Buffer) => client.write(chunk));
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  for (const s of [client, upstream]) {
    s.on('error', close);
    s.on('close', close);
  }
});
server.listen(Number(listenArg), '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
