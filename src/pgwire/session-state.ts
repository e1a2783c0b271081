// Which SQL leaves state in a server session that outlives its transaction.
// In transaction pooling such a client must keep its server ("pinning").
// Pure and conservative: a false positive costs pooling efficiency, a false
// negative would leak one client's state to another.

export type PinReason = 'set' | 'listen' | 'temp-table' | 'cursor-with-hold' | 'sql-prepare' | 'advisory-lock' | 'load' | 'statement-cache' | 'do-block';

/** Cheap pre-check: text without any of these words cannot pin. */
const MAYBE = /set|listen|temp|hold|prepare|advisory|load|deallocate|discard|\bdo\b/i;
const SESSION_ADVISORY = new Set(['pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared']);

export function pinReasons(sql: string): PinReason[] {
  if (!MAYBE.test(sql)) return [];
  const reasons = new Set<PinReason>();
  for (const words of statements(sql)) {
    const reason = classify(words);
    if (reason) reasons.add(reason);
    // A table or function in the session's temporary schema, named outright,
    // or SELECT … INTO TEMP: temporary objects without CREATE TEMP.
    if (words.includes('pg_temp')) reasons.add('temp-table');
    const into = words.indexOf('into');
    if (into >= 0 && ['temp', 'temporary'].includes(words[into + 1] ?? '')) reasons.add('temp-table');
    if (words.some((w) => SESSION_ADVISORY.has(w))) reasons.add('advisory-lock');
    const sc = words.indexOf('set_config');
    if (sc >= 0 && !isLocalSetConfig(words, sc)) reasons.add('set');
  }
  return [...reasons];
}

function classify(w: string[]): PinReason | null {
  switch (w[0]) {
    case 'set':
      // SET LOCAL, SET TRANSACTION and SET CONSTRAINTS end with the transaction.
      return w[1] === 'local' || w[1] === 'transaction' || w[1] === 'constraints' ? null : 'set';
    case 'listen':
      return 'listen';
    case 'prepare':
      // PREPARE TRANSACTION is two-phase commit, not a session statement.
      return w[1] === 'transaction' ? null : 'sql-prepare';
    case 'load':
      return 'load';
    // DEALLOCATE and DISCARD drop prepared statements of the whole server
    // session, the pooler's too: the client keeps that server, which is
    // reset (DISCARD ALL) before anyone else gets it.
    case 'deallocate':
    case 'discard':
      return 'statement-cache';
    // What a DO block runs (EXECUTE 'SET …', set_config) cannot be seen from here.
    case 'do':
      return 'do-block';
    case 'declare': {
      const forAt = w.indexOf('for');
      const head = forAt < 0 ? w : w.slice(0, forAt);
      return head.includes('with') && head.includes('hold') && !head.includes('without') ? 'cursor-with-hold' : null;
    }
    case 'create': {
      let i = 1;
      if (w[i] === 'or' && w[i + 1] === 'replace') i += 2;
      if (w[i] === 'global' || w[i] === 'local') i++;
      return w[i] === 'temp' || w[i] === 'temporary' ? 'temp-table' : null;
    }
    case 'select':
    case 'with':
    case 'values':
      return null;
    default:
      return null;
  }
}

/** set_config(name, value, true) is transaction-local. */
function isLocalSetConfig(words: string[], at: number): boolean {
  // Words after set_config: name literal and value literal become '?', then the flag.
  const flag = words.slice(at + 1, at + 6).find((x) => x === 'true' || x === 'false');
  return flag === 'true';
}

/**
 * Lower-cased word tokens per statement, with comments removed and every
 * string literal, quoted identifier and dollar-quoted body reduced to '?'.
 */
export function statements(sql: string): string[][] {
  const out: string[][] = [];
  let words: string[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === ';') {
      if (words.length) out.push(words);
      words = [];
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (c === "'" || ((c === 'e' || c === 'E') && sql[i + 1] === "'")) {
      const backslashes = c !== "'";
      i += backslashes ? 2 : 1;
      while (i < n) {
        if (backslashes && sql[i] === '\\') i += 2;
        else if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
        else if (sql[i] === "'") break;
        else i++;
      }
      i++;
      words.push('?');
    } else if (c === '"') {
      const end = sql.indexOf('"', i + 1);
      i = end < 0 ? n : end + 1;
      words.push('?');
    } else if (c === '$' && /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.test(sql.slice(i, i + 64))) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64))![0];
      const end = sql.indexOf(tag, i + tag.length);
      i = end < 0 ? n : end + tag.length;
      words.push('?');
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j]!)) j++;
      words.push(sql.slice(i, j).toLowerCase());
      i = j;
    } else i++;
  }
  if (words.length) out.push(words);
  return out;
}
