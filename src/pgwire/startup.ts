// Startup-phase packets: what a client sends before the first typed message.
import { CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, PROTOCOL_VERSION_3, SSL_REQUEST_CODE } from './codes.js';
import { ProtocolViolation } from './frame-reader.js';

export type StartupPacket =
  | { readonly type: 'ssl-request' }
  | { readonly type: 'gssenc-request' }
  | { readonly type: 'cancel-request'; readonly processId: number; readonly secretKey: number }
  | { readonly type: 'startup'; readonly params: ReadonlyMap<string, string> };

/** Parses the body of a startup-framed packet (after its length word). */
export function parseStartupPacket(body: Buffer): StartupPacket {
  if (body.length < 4) throw new ProtocolViolation('startup packet too short');
  const code = body.readInt32BE(0);
  switch (code) {
    case SSL_REQUEST_CODE:
      if (body.length !== 4) throw new ProtocolViolation('malformed SSLRequest');
      return { type: 'ssl-request' };
    case GSSENC_REQUEST_CODE:
      if (body.length !== 4) throw new ProtocolViolation('malformed GSSENCRequest');
      return { type: 'gssenc-request' };
    case CANCEL_REQUEST_CODE:
      if (body.length !== 12) throw new ProtocolViolation('malformed CancelRequest');
      return { type: 'cancel-request', processId: body.readInt32BE(4), secretKey: body.readInt32BE(8) };
    case PROTOCOL_VERSION_3:
      return { type: 'startup', params: parseStartupParams(body.subarray(4)) };
    default: {
      const major = code >>> 16;
      const minor = code & 0xffff;
      throw new ProtocolViolation(`unsupported frontend protocol ${major}.${minor}: server supports 3.0`);
    }
  }
}

/** Name/value pairs as NUL-terminated strings, closed by an empty name. */
function parseStartupParams(bytes: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  let at = 0;
  for (;;) {
    const nameEnd = bytes.indexOf(0, at);
    if (nameEnd < 0) throw new ProtocolViolation('startup packet parameters are not terminated');
    if (nameEnd === at) {
      if (nameEnd !== bytes.length - 1) throw new ProtocolViolation('bytes after the startup packet terminator');
      break;
    }
    const name = bytes.toString('utf8', at, nameEnd);
    const valueEnd = bytes.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) throw new ProtocolViolation(`startup parameter "${name}" has no value`);
    params.set(name, bytes.toString('utf8', nameEnd + 1, valueEnd));
    at = valueEnd + 1;
  }
  if (!params.has('user')) throw new ProtocolViolation('no PostgreSQL user name specified in startup packet');
  return params;
}

export function serializeStartupMessage(params: ReadonlyMap<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of params) parts.push(Buffer.from(`${name}\0${value}\0`, 'utf8'));
  parts.push(Buffer.from([0]));
  const payload = Buffer.concat(parts);
  const out = Buffer.allocUnsafe(8 + payload.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(PROTOCOL_VERSION_3, 4);
  payload.copy(out, 8);
  return out;
}

export function serializeCancelRequest(processId: number, secretKey: number): Buffer {
  const out = Buffer.allocUnsafe(16);
  out.writeInt32BE(16, 0);
  out.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  out.writeInt32BE(processId, 8);
  out.writeInt32BE(secretKey, 12);
  return out;
}

export function serializeSslRequest(): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeInt32BE(8, 0);
  out.writeInt32BE(SSL_REQUEST_CODE, 4);
  return out;
}
