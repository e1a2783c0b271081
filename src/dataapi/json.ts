// JSON with exact 64-bit integers, as the Data API's wire format needs: a
// `longValue` of 9007199254740993 must arrive and leave with every digit,
// but JavaScript numbers stop being exact past 2^53. Integers beyond that
// parse as BigInt and BigInts serialize as bare digits. Everything else is
// JSON as JSON.parse and JSON.stringify see it. Pure.
// https://www.rfc-editor.org/rfc/rfc8259

/** Nesting deeper than this is refused (the Data API's shapes are a few levels deep). */
export const JSON_DEPTH_MAX = 64;

/** Fifteen digits always fit a double exactly; a longer integer literal may not. */
const MAYBE_UNSAFE_INTEGER = /\d{16}/;

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
}

/** Parses JSON; integer literals outside ±(2^53 − 1) become BigInt. */
export function parseJson(text: string): unknown {
  // The common case costs what JSON.parse costs.
  if (!MAYBE_UNSAFE_INTEGER.test(text)) {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new JsonSyntaxError((err as Error).message);
    }
  }
  const p = new Parser(text);
  const value = p.value(0);
  p.end();
  return value;
}

class Parser {
  private at = 0;
  constructor(private readonly text: string) {}

  private fail(what: string): never {
    throw new JsonSyntaxError(`${what} at position ${this.at}`);
  }

  private space(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.at);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.at++;
      else return;
    }
  }

  end(): void {
    this.space();
    if (this.at !== this.text.length) this.fail('unexpected text after the value');
  }

  value(depth: number): unknown {
    if (depth > JSON_DEPTH_MAX) this.fail(`nesting deeper than ${JSON_DEPTH_MAX}`);
    this.space();
    const c = this.text[this.at];
    switch (c) {
      case '{':
        return this.object(depth);
      case '[':
        return this.array(depth);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail(c === undefined ? 'unexpected end of input' : `unexpected character ${JSON.stringify(c)}`);
    }
  }

  private literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.at)) this.fail('invalid literal');
    this.at += word.length;
    return value;
  }

  private object(depth: number): Record<string, unknown> {
    this.at++; // {
    const out: Record<string, unknown> = {};
    this.space();
    if (this.text[this.at] === '}') {
      this.at++;
      return out;
    }
    for (;;) {
      this.space();
      if (this.text[this.at] !== '"') this.fail('expected a member name');
      const key = this.string();
      this.space();
      if (this.text[this.at] !== ':') this.fail("expected ':'");
      this.at++;
      const v = this.value(depth + 1);
      // As JSON.parse: a "__proto__" member is an own property, not the prototype.
      Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      this.space();
      const next = this.text[this.at++];
      if (next === '}') return out;
      if (next !== ',') this.fail("expected ',' or '}'");
    }
  }

  private array(depth: number): unknown[] {
    this.at++; // [
    const out: unknown[] = [];
    this.space();
    if (this.text[this.at] === ']') {
      this.at++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.space();
      const next = this.text[this.at++];
      if (next === ']') return out;
      if (next !== ',') this.fail("expected ',' or ']'");
    }
  }

  private string(): string {
    // Find the closing quote, honouring escapes; JSON.parse decodes the literal.
    const start = this.at;
    this.at++;
    for (;;) {
      const c = this.text.charCodeAt(this.at);
      if (Number.isNaN(c)) this.fail('unterminated string');
      if (c === 0x22) break; // "
      if (c === 0x5c) this.at++; // backslash: skip the escaped character
      this.at++;
    }
    this.at++;
    try {
      return JSON.parse(this.text.slice(start, this.at)) as string;
    } catch {
      return this.fail('invalid string');
    }
  }

  private number(): number | bigint {
    const m = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
    m.lastIndex = this.at;
    const found = m.exec(this.text);
    if (!found) return this.fail('invalid number');
    this.at += found[0].length;
    const n = Number(found[0]);
    if (found[1] === undefined && found[2] === undefined && !Number.isSafeInteger(n)) return BigInt(found[0]);
    return n;
  }
}

/** JSON.stringify, with BigInt written as its exact digits. */
export function stringifyJson(value: unknown): string {
  if (!containsBigInt(value, 0)) return JSON.stringify(value);
  const out: string[] = [];
  write(value, out);
  return out.join('');
}

function containsBigInt(v: unknown, depth: number): boolean {
  if (typeof v === 'bigint') return true;
  if (typeof v !== 'object' || v === null || depth > JSON_DEPTH_MAX) return false;
  if (Array.isArray(v)) return v.some((x) => containsBigInt(x, depth + 1));
  for (const x of Object.values(v)) if (containsBigInt(x, depth + 1)) return true;
  return false;
}

function write(v: unknown, out: string[]): void {
  if (typeof v === 'bigint') {
    out.push(v.toString());
    return;
  }
  if (typeof v !== 'object' || v === null) {
    out.push(JSON.stringify(v) ?? 'null');
    return;
  }
  if (Array.isArray(v)) {
    out.push('[');
    v.forEach((x, i) => {
      if (i > 0) out.push(',');
      write(x === undefined || typeof x === 'function' ? null : x, out);
    });
    out.push(']');
    return;
  }
  out.push('{');
  let first = true;
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined || typeof x === 'function') continue;
    if (!first) out.push(',');
    first = false;
    out.push(JSON.stringify(k), ':');
    write(x, out);
  }
  out.push('}');
}
