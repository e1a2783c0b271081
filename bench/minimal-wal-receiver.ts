// The least a Node process can do as a synchronous WAL standby, as a
// reference point for the storage benchmark's set-up (d): one replication
// connection (trust auth), every XLogData written into one preallocated
// file, then, once a read's messages are written, one fdatasync on the main
// thread (WAL that arrives meanwhile waits in the socket for the next one)
// and a status update. No checks, no segments, no restart: a ceiling for
// Node, not a storage node. (An fdatasync on libuv's pool instead, with the
// main thread reading on, measured about 10% slower here.)
//
//   node --import tsx bench/minimal-wal-receiver.ts <port> <name> <file>
import fs from 'node:fs';
import net from 'node:net';

const [portArg, name, file] = process.argv.slice(2);
if (!portArg || !name || !file) throw new Error('usage: minimal-wal-receiver <port> <name> <file>');
const FILE_BYTES = 512 << 20;

const fd = fs.openSync(file, 'w+');
const zeros = Buffer.alloc(1 << 20);
for (let at = 0; at < FILE_BYTES; at += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, at);
fs.fsyncSync(fd);

function message(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const cstr = (s: string): Buffer => Buffer.from(s + '\0', 'utf8');

const socket = net.connect(Number(portArg), '127.0.0.1');
socket.setNoDelay(true);
const params = Buffer.concat([cstr('user'), cstr('postgres'), cstr('replication'), cstr('true'), cstr('application_name'), cstr(name), Buffer.from([0])]);
const startup = Buffer.alloc(8 + params.length);
startup.writeUInt32BE(startup.length, 0);
startup.writeUInt32BE(196608, 4);
params.copy(startup, 8);
socket.write(startup);

let base = -1n; // LSN at file offset 0
let written = 0n; // end of WAL written
let flushed = 0n;
let syncing = false;
let pending: Buffer = Buffer.alloc(0);
let phase: 'startup' | 'identify' | 'streaming' = 'startup';
let current = '';

function status(): void {
  const body = Buffer.alloc(34);
  body.write('r', 0, 'latin1');
  body.writeBigUInt64BE(written, 1);
  body.writeBigUInt64BE(flushed, 9);
  body.writeBigUInt64BE(flushed, 17);
  body.writeBigInt64BE(BigInt(Date.now() - 946_684_800_000) * 1000n, 25);
  socket.write(message('d', body));
}

/** After the rest of this turn's reads: they share the fdatasync. */
function sync(): void {
  if (syncing || written === flushed) return;
  syncing = true;
  setImmediate(() => {
    fs.fdatasyncSync(fd);
    syncing = false;
    flushed = written;
    status();
  });
}

socket.on('data', (chunk: Buffer) => {
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  while (pending.length >= 5) {
    const length = pending.readUInt32BE(1);
    if (pending.length < 1 + length) break;
    const code = String.fromCharCode(pending[0]!);
    const body = pending.subarray(5, 1 + length);
    pending = pending.subarray(1 + length);
    if (code === 'E') throw new Error(`server error: ${body.toString('utf8')}`);
    if (phase === 'startup' && code === 'Z') {
      phase = 'identify';
      socket.write(message('Q', cstr('IDENTIFY_SYSTEM')));
    } else if (phase === 'identify' && code === 'D') {
      // Row: systemid, timeline, xlogpos, dbname; start at xlogpos's segment.
      let at = 2;
      const fields: string[] = [];
      for (let i = 0; i < 3; i++) {
        const n = body.readInt32BE(at);
        fields.push(body.toString('utf8', at + 4, at + 4 + n));
        at += 4 + n;
      }
      const [hi, lo] = fields[2]!.split('/').map((h) => BigInt('0x' + h));
      current = `${(((hi! << 32n) | lo!) >> 24n) << 24n}`;
    } else if (phase === 'identify' && code === 'Z') {
      phase = 'streaming';
      const lsn = BigInt(current);
      socket.write(message('Q', cstr(`START_REPLICATION ${(lsn >> 32n).toString(16)}/${(lsn & 0xffffffffn).toString(16)}`)));
    } else if (phase === 'streaming' && code === 'd') {
      if (body[0] === 0x77) {
        // XLogData: start LSN, end LSN, send time, then WAL.
        const start = body.readBigUInt64BE(1);
        if (base < 0n) base = start;
        const data = body.subarray(25);
        fs.writeSync(fd, data, 0, data.length, Number(start - base));
        written = start + BigInt(data.length);
      } else if (body[0] === 0x6b && body[17] === 1) status();
    }
  }
  sync();
});
socket.on('error', (err) => {
  process.stderr.write(`minimal receiver ${name}: ${err.message}\n`);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
