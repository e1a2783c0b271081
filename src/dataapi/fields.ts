// PostgreSQL values ↔ the Data API's Field shapes, as AWS maps them for
// Aurora PostgreSQL. Pure.
// https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_Field.html
import { parse as parseArray } from 'postgres-array';

export type Field =
  | { isNull: true }
  | { booleanValue: boolean }
  /** bigint where the value lies beyond ±(2^53 − 1): JSON carries it exactly (dataapi/json.ts). */
  | { longValue: number | bigint }
  | { doubleValue: number }
  | { stringValue: string }
  | { blobValue: string }
  | { arrayValue: ArrayValue };

export type ArrayValue =
  | { booleanValues: boolean[] }
  | { longValues: Array<number | bigint> }
  | { doubleValues: number[] }
  | { stringValues: string[] }
  | { arrayValues: ArrayValue[] };

export interface ResultOptions {
  readonly decimalReturnType: 'STRING' | 'DOUBLE_OR_LONG';
  readonly longReturnType: 'LONG' | 'STRING';
}

type Kind = 'bool' | 'long' | 'double' | 'decimal' | 'bytes' | 'timestamp' | 'timestamptz' | 'string';

interface TypeInfo {
  readonly name: string;
  readonly kind: Kind;
  /** java.sql.Types code, as the Data API reports it. */
  readonly jdbc: number;
  /** For array types: the element type's oid. */
  readonly element?: number;
}

const TYPES = new Map<number, TypeInfo>([
  [16, { name: 'bool', kind: 'bool', jdbc: -7 }],
  [17, { name: 'bytea', kind: 'bytes', jdbc: -2 }],
  [18, { name: 'char', kind: 'string', jdbc: 1 }],
  [19, { name: 'name', kind: 'string', jdbc: 12 }],
  [20, { name: 'int8', kind: 'long', jdbc: -5 }],
  [21, { name: 'int2', kind: 'long', jdbc: 5 }],
  [23, { name: 'int4', kind: 'long', jdbc: 4 }],
  [25, { name: 'text', kind: 'string', jdbc: 12 }],
  [26, { name: 'oid', kind: 'long', jdbc: -5 }],
  [114, { name: 'json', kind: 'string', jdbc: 1111 }],
  [700, { name: 'float4', kind: 'double', jdbc: 7 }],
  [701, { name: 'float8', kind: 'double', jdbc: 8 }],
  [1042, { name: 'bpchar', kind: 'string', jdbc: 1 }],
  [1043, { name: 'varchar', kind: 'string', jdbc: 12 }],
  [1082, { name: 'date', kind: 'string', jdbc: 91 }],
  [1083, { name: 'time', kind: 'string', jdbc: 92 }],
  [1114, { name: 'timestamp', kind: 'timestamp', jdbc: 93 }],
  [1184, { name: 'timestamptz', kind: 'timestamptz', jdbc: 93 }],
  [1186, { name: 'interval', kind: 'string', jdbc: 1111 }],
  [1700, { name: 'numeric', kind: 'decimal', jdbc: 2 }],
  [2950, { name: 'uuid', kind: 'string', jdbc: 1111 }],
  [3802, { name: 'jsonb', kind: 'string', jdbc: 1111 }],
  [1000, { name: '_bool', kind: 'string', jdbc: 2003, element: 16 }],
  [1005, { name: '_int2', kind: 'string', jdbc: 2003, element: 21 }],
  [1007, { name: '_int4', kind: 'string', jdbc: 2003, element: 23 }],
  [1009, { name: '_text', kind: 'string', jdbc: 2003, element: 25 }],
  [1014, { name: '_bpchar', kind: 'string', jdbc: 2003, element: 1042 }],
  [1015, { name: '_varchar', kind: 'string', jdbc: 2003, element: 1043 }],
  [1016, { name: '_int8', kind: 'string', jdbc: 2003, element: 20 }],
  [1021, { name: '_float4', kind: 'string', jdbc: 2003, element: 700 }],
  [1022, { name: '_float8', kind: 'string', jdbc: 2003, element: 701 }],
  [1231, { name: '_numeric', kind: 'string', jdbc: 2003, element: 1700 }],
  [2951, { name: '_uuid', kind: 'string', jdbc: 2003, element: 2950 }],
  [1182, { name: '_date', kind: 'string', jdbc: 2003, element: 1082 }],
  [1115, { name: '_timestamp', kind: 'string', jdbc: 2003, element: 1114 }],
]);

const OTHER: TypeInfo = { name: 'unknown', kind: 'string', jdbc: 1111 };

export function typeInfo(oid: number): TypeInfo {
  return TYPES.get(oid) ?? OTHER;
}

/** AWS's text form of timestamps: "YYYY-MM-DD HH:MM:SS[.fff]", in UTC without an offset. */
function awsTimestamp(text: string, withZone: boolean): string {
  if (!withZone) return text;
  const d = new Date(text.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
  if (Number.isNaN(d.getTime())) return text;
  const iso = d.toISOString(); // 2024-01-02T03:04:05.678Z
  const fraction = /\.(\d+)/.exec(text)?.[1];
  return iso.slice(0, 10) + ' ' + iso.slice(11, 19) + (fraction ? `.${fraction}` : '');
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** An integer's text as a number when that is exact, else as a bigint. */
export function exactInteger(text: string): number | bigint {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

function scalar(kind: Kind, text: string, options: ResultOptions): Field {
  switch (kind) {
    case 'bool':
      return { booleanValue: text === 't' || text === 'true' };
    case 'long':
      return options.longReturnType === 'STRING' ? { stringValue: text } : { longValue: exactInteger(text) };
    case 'double':
      return { doubleValue: Number(text) };
    case 'decimal':
      if (options.decimalReturnType === 'STRING' || !Number.isFinite(Number(text))) return { stringValue: text };
      if (/^-?\d+$/.test(text)) {
        const big = BigInt(text);
        if (big >= INT64_MIN && big <= INT64_MAX) return { longValue: exactInteger(text) };
      }
      return { doubleValue: Number(text) };
    case 'bytes':
      return { blobValue: Buffer.from(text.startsWith('\\x') ? text.slice(2) : text, text.startsWith('\\x') ? 'hex' : 'utf8').toString('base64') };
    case 'timestamp':
      return { stringValue: awsTimestamp(text, false) };
    case 'timestamptz':
      return { stringValue: awsTimestamp(text, true) };
    case 'string':
      return { stringValue: text };
  }
}

function toArrayValue(items: unknown[], element: TypeInfo, options: ResultOptions): ArrayValue {
  if (items.some((x) => Array.isArray(x))) return { arrayValues: items.map((x) => toArrayValue(x as unknown[], element, options)) };
  // postgres-array yields strings (and null) for the leaves.
  const strings = items.map((x) => (typeof x === 'string' ? x : ''));
  switch (element.kind) {
    case 'bool':
      return { booleanValues: strings.map((s) => s === 't' || s === 'true') };
    case 'long':
      return options.longReturnType === 'STRING' ? { stringValues: strings } : { longValues: strings.map(exactInteger) };
    case 'double':
      return { doubleValues: strings.map(Number) };
    default:
      return { stringValues: strings };
  }
}

/** One column value in PostgreSQL's text format → a Field. */
export function toField(oid: number, text: string | null, options: ResultOptions): Field {
  if (text === null) return { isNull: true };
  const info = typeInfo(oid);
  if (info.element !== undefined) return { arrayValue: toArrayValue(parseArray(text), typeInfo(info.element), options) };
  return scalar(info.kind, text, options);
}

/** The value formattedRecords (formatRecordsAs: JSON) shows for a Field. */
export function jsonValue(field: Field): unknown {
  if ('isNull' in field) return null;
  if ('booleanValue' in field) return field.booleanValue;
  if ('longValue' in field) return field.longValue;
  if ('doubleValue' in field) return field.doubleValue;
  if ('stringValue' in field) return field.stringValue;
  if ('blobValue' in field) return field.blobValue;
  return arrayJson(field.arrayValue);
}

function arrayJson(a: ArrayValue): unknown[] {
  if ('arrayValues' in a) return a.arrayValues.map(arrayJson);
  if ('booleanValues' in a) return a.booleanValues;
  if ('longValues' in a) return a.longValues;
  if ('doubleValues' in a) return a.doubleValues;
  return a.stringValues;
}

/** Standard base64 (RFC 4648 §4) with its padding. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export class ParameterError extends Error {
  override readonly name = 'ParameterError';
}

const TYPE_HINT_CASTS: Record<string, string> = { DATE: 'date', TIME: 'time', TIMESTAMP: 'timestamp', DECIMAL: 'numeric', JSON: 'json', UUID: 'uuid' };

/** A request parameter → the value pg binds and the cast its placeholder gets. */
export function bindParameter(p: { name?: unknown; value?: unknown; typeHint?: unknown }): { value: string | null | boolean | Buffer; cast: string | null } {
  const v = p.value;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ParameterError(`parameter ${String(p.name)} has no value`);
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length !== 1) throw new ParameterError(`parameter ${String(p.name)} must set exactly one value member`);
  const [kind, x] = entries[0]!;
  if (p.typeHint !== undefined && (typeof p.typeHint !== 'string' || !(p.typeHint in TYPE_HINT_CASTS))) throw new ParameterError(`unknown typeHint ${JSON.stringify(p.typeHint)}`);
  const hint = p.typeHint === undefined ? null : p.typeHint;
  const cast = hint ? TYPE_HINT_CASTS[hint]! : null;
  switch (kind) {
    case 'isNull':
      return { value: null, cast };
    case 'booleanValue':
      if (typeof x !== 'boolean') break;
      return { value: x, cast: cast ?? 'boolean' };
    case 'longValue':
      // Exact integers only: a bigint from the JSON (dataapi/json.ts) or a safe number.
      if (typeof x === 'bigint') {
        if (x < INT64_MIN || x > INT64_MAX) throw new ParameterError(`parameter ${String(p.name)}: longValue ${x} is outside the 64-bit range`);
        return { value: x.toString(), cast: cast ?? 'bigint' };
      }
      if (typeof x !== 'number' || !Number.isSafeInteger(x)) break;
      return { value: String(x), cast: cast ?? 'bigint' };
    case 'doubleValue':
      if (typeof x !== 'number') break;
      return { value: String(x), cast: cast ?? 'double precision' };
    case 'stringValue':
      if (typeof x !== 'string') break;
      return { value: x, cast };
    case 'blobValue':
      if (typeof x !== 'string') break;
      // Buffer.from(…, 'base64') skips what it cannot decode; AWS refuses it.
      if (!BASE64.test(x)) throw new ParameterError(`parameter ${String(p.name)}: blobValue is not valid base64`);
      return { value: Buffer.from(x, 'base64'), cast: 'bytea' };
    case 'arrayValue':
      throw new ParameterError('array parameters are not supported');
  }
  throw new ParameterError(`parameter ${String(p.name)}: ${kind} has the wrong type`);
}
