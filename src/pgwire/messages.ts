// Serializers and parsers for the typed messages the front door exchanges
// during authentication and session set-up. Everything else passes through
// as opaque frames.
import { Auth, Backend, ErrorField, Frontend } from './codes.js';
import { ProtocolViolation } from './frame-reader.js';

/** One typed message: the code, the length word, then the parts in order. */
export function typedMessage(code: number, ...parts: readonly Buffer[]): Buffer {
  let length = 4;
  for (const p of parts) length += p.length;
  const out = Buffer.allocUnsafe(1 + length);
  out[0] = code;
  out.writeInt32BE(length, 1);
  let at = 5;
  for (const p of parts) at += p.copy(out, at);
  return out;
}

const typed = (code: number, payload: Buffer): Buffer => typedMessage(code, payload);

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
}

export function authenticationOk(): Buffer {
  return typed(Backend.Authentication, int32(Auth.Ok));
}

export function authenticationCleartextPassword(): Buffer {
  return typed(Backend.Authentication, int32(Auth.CleartextPassword));
}

export function authenticationSasl(mechanisms: readonly string[]): Buffer {
  const names = mechanisms.map((m) => `${m}\0`).join('') + '\0';
  return typed(Backend.Authentication, Buffer.concat([int32(Auth.SASL), Buffer.from(names, 'utf8')]));
}

export function authenticationSaslContinue(data: Buffer): Buffer {
  return typed(Backend.Authentication, Buffer.concat([int32(Auth.SASLContinue), data]));
}

export function authenticationSaslFinal(data: Buffer): Buffer {
  return typed(Backend.Authentication, Buffer.concat([int32(Auth.SASLFinal), data]));
}

export function parameterStatus(name: string, value: string): Buffer {
  return typed(Backend.ParameterStatus, Buffer.from(`${name}\0${value}\0`, 'utf8'));
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return typed(Backend.BackendKeyData, Buffer.concat([int32(processId), int32(secretKey)]));
}

export type TransactionStatus = 'I' | 'T' | 'E';

export function readyForQuery(status: TransactionStatus): Buffer {
  return typed(Backend.ReadyForQuery, Buffer.from(status, 'latin1'));
}

export interface ErrorFields {
  readonly severity: 'ERROR' | 'FATAL' | 'PANIC';
  /** SQLSTATE, five characters. */
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

export function errorResponse(fields: ErrorFields): Buffer {
  const parts: string[] = [];
  const add = (field: number, value: string | undefined): void => {
    if (value !== undefined) parts.push(String.fromCharCode(field) + value + '\0');
  };
  add(ErrorField.Severity, fields.severity);
  add(ErrorField.SeverityNonLocalized, fields.severity);
  add(ErrorField.Code, fields.code);
  add(ErrorField.Message, fields.message);
  add(ErrorField.Detail, fields.detail);
  add(ErrorField.Hint, fields.hint);
  return typed(Backend.ErrorResponse, Buffer.from(parts.join('') + '\0', 'utf8'));
}

export function terminate(): Buffer {
  return typed(Frontend.Terminate, Buffer.alloc(0));
}

/** SASLInitialResponse body: mechanism name, int32 length (-1 = none), data. */
export function parseSaslInitialResponse(body: Buffer): { mechanism: string; data: Buffer } {
  const nameEnd = body.indexOf(0);
  if (nameEnd < 0 || body.length < nameEnd + 5) throw new ProtocolViolation('malformed SASLInitialResponse');
  const mechanism = body.toString('utf8', 0, nameEnd);
  const length = body.readInt32BE(nameEnd + 1);
  const data = body.subarray(nameEnd + 5);
  if (length === -1 ? data.length !== 0 : length !== data.length) {
    throw new ProtocolViolation('SASLInitialResponse length does not match its data');
  }
  return { mechanism, data };
}

export type AuthenticationRequest = { readonly code: number; readonly data: Buffer };

export function parseAuthentication(body: Buffer): AuthenticationRequest {
  if (body.length < 4) throw new ProtocolViolation('malformed Authentication message');
  return { code: body.readInt32BE(0), data: body.subarray(4) };
}

export function parseBackendKeyData(body: Buffer): { processId: number; secretKey: number } {
  if (body.length !== 8) throw new ProtocolViolation('malformed BackendKeyData');
  return { processId: body.readInt32BE(0), secretKey: body.readInt32BE(4) };
}

/** ErrorResponse / NoticeResponse body → field code → value. */
export function parseErrorFields(body: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  let at = 0;
  while (at < body.length && body[at] !== 0) {
    const end = body.indexOf(0, at + 1);
    if (end < 0) throw new ProtocolViolation('unterminated error field');
    fields.set(String.fromCharCode(body[at]!), body.toString('utf8', at + 1, end));
    at = end + 1;
  }
  return fields;
}

/** A column of a RowDescription. */
export interface RowColumn {
  readonly name: string;
  readonly dataTypeID: number;
  readonly dataTypeSize: number;
  readonly dataTypeModifier: number;
}

/** RowDescription ('T') → its columns (name, type OID, size, modifier). */
export function parseRowColumns(body: Buffer): RowColumn[] {
  if (body.length < 2) throw new ProtocolViolation('malformed RowDescription');
  const count = body.readInt16BE(0);
  const columns: RowColumn[] = [];
  let at = 2;
  for (let i = 0; i < count; i++) {
    const end = body.indexOf(0, at);
    if (end < 0 || end + 19 > body.length) throw new ProtocolViolation('malformed RowDescription');
    // After the name: table OID (4), column number (2), type OID (4), size (2), modifier (4), format (2).
    columns.push({ name: body.toString('utf8', at, end), dataTypeID: body.readInt32BE(end + 7), dataTypeSize: body.readInt16BE(end + 11), dataTypeModifier: body.readInt32BE(end + 13) });
    at = end + 19;
  }
  return columns;
}

/** RowDescription ('T') → column names. */
export function parseRowDescription(body: Buffer): string[] {
  return parseRowColumns(body).map((c) => c.name);
}

/** DataRow ('D') → column values as text; SQL NULL stays null. */
export function parseDataRow(body: Buffer): Array<string | null> {
  if (body.length < 2) throw new ProtocolViolation('malformed DataRow');
  const count = body.readInt16BE(0);
  const values: Array<string | null> = [];
  let at = 2;
  for (let i = 0; i < count; i++) {
    if (at + 4 > body.length) throw new ProtocolViolation('malformed DataRow');
    const length = body.readInt32BE(at);
    at += 4;
    if (length === -1) {
      values.push(null);
      continue;
    }
    if (length < 0 || at + length > body.length) throw new ProtocolViolation('malformed DataRow');
    values.push(body.toString('utf8', at, at + length));
    at += length;
  }
  return values;
}

/** SASLInitialResponse: mechanism name, then the client-first-message. */
export function saslInitialResponse(mechanism: string, data: string): Buffer {
  const payload = Buffer.from(data, 'utf8');
  return typedMessage(Frontend.Password, Buffer.from(`${mechanism}\0`, 'utf8'), int32(payload.length), payload);
}

/** SASLResponse and PasswordMessage share the 'p' code. */
export function passwordMessage(data: string, nulTerminated: boolean): Buffer {
  return typedMessage(Frontend.Password, Buffer.from(nulTerminated ? `${data}\0` : data, 'utf8'));
}

/**
 * Whether a NoticeResponse body is the warning PostgreSQL sends when a
 * commit stops waiting for synchronous replication (syncrep.c, on a cancel
 * or a statement timeout): "canceling wait for synchronous replication due
 * to user request", detail "The transaction has already committed locally,
 * but might not have been replicated to the standby." The commit is then
 * reported as done although only the writer holds it. Messages are in
 * English: Borealis runs PostgreSQL with lc_messages = C.
 */
export function isSyncRepCancelled(body: Buffer): boolean {
  if (body.indexOf('canceling wait for synchronous replication') < 0) return false;
  return parseErrorFields(body).get('M')?.startsWith('canceling wait for synchronous replication') ?? false;
}
