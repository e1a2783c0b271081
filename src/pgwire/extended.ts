// Extended-query messages the pooler reads and rewrites: statement names
// are per client, but servers are shared, so the pooler renames them.
// https://www.postgresql.org/docs/17/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
import { ProtocolViolation } from './frame-reader.js';
import { typedMessage } from './messages.js';

function cstring(body: Buffer, at: number, what: string): [string, number] {
  const end = body.indexOf(0, at);
  if (end < 0) throw new ProtocolViolation(`unterminated ${what}`);
  return [body.toString('utf8', at, end), end + 1];
}

export interface ParseMessage {
  readonly statement: string;
  readonly query: string;
  /** Bytes after the query: int16 count and the parameter type oids. */
  readonly paramTypes: Buffer;
}

export function parseParse(body: Buffer): ParseMessage {
  const [statement, q] = cstring(body, 0, 'statement name');
  const [query, rest] = cstring(body, q, 'query string');
  if (body.length < rest + 2) throw new ProtocolViolation('malformed Parse message');
  // An Int16 on the wire that PostgreSQL reads unsigned (pq_getmsgint(msg, 2)).
  const count = body.readUInt16BE(rest);
  if (body.length !== rest + 2 + count * 4) throw new ProtocolViolation('malformed Parse parameter types');
  return { statement, query, paramTypes: body.subarray(rest) };
}

export function serializeParse(statement: string, query: string, paramTypes: Buffer): Buffer {
  return typedMessage(0x50 /* 'P' */, Buffer.from(statement + '\0' + query + '\0', 'utf8'), paramTypes);
}

export interface BindMessage {
  readonly portal: string;
  readonly statement: string;
  /** Everything after the statement name, unchanged. */
  readonly rest: Buffer;
}

export function parseBind(body: Buffer): BindMessage {
  const [portal, s] = cstring(body, 0, 'portal name');
  const [statement, rest] = cstring(body, s, 'statement name');
  return { portal, statement, rest: body.subarray(rest) };
}

export function serializeBind(portal: string, statement: string, rest: Buffer): Buffer {
  return typedMessage(0x42 /* 'B' */, Buffer.from(portal + '\0' + statement + '\0', 'utf8'), rest);
}

/** Describe ('D') and Close ('C') share a shape: 'S' or 'P', then a name. */
export interface TargetMessage {
  readonly target: 'S' | 'P';
  readonly name: string;
}

export function parseTarget(body: Buffer): TargetMessage {
  const target = String.fromCharCode(body[0] ?? 0);
  if (target !== 'S' && target !== 'P') throw new ProtocolViolation('Describe/Close must name a statement or a portal');
  const [name, end] = cstring(body, 1, 'name');
  if (end !== body.length) throw new ProtocolViolation('trailing bytes in Describe/Close');
  return { target, name };
}

export function serializeTarget(code: number, target: 'S' | 'P', name: string): Buffer {
  return typedMessage(code, Buffer.from(target + name + '\0', 'utf8'));
}

export const PARSE_COMPLETE = typedMessage(0x31); // '1'
export const CLOSE_COMPLETE = typedMessage(0x33); // '3'

export function queryMessage(sql: string): Buffer {
  return typedMessage(0x51 /* 'Q' */, Buffer.from(sql + '\0', 'utf8'));
}
