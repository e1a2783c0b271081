// The Data API's `:name` placeholders become PostgreSQL's `$n` — never
// spliced values. Literals, quoted identifiers, comments, dollar-quoted
// bodies and `::` casts are left alone. Pure.

export interface Rewritten {
  readonly sql: string;
  /** Parameter names in `$n` order. */
  readonly names: readonly string[];
}

/** `render` writes each placeholder (default `$n`); it may add a cast. */
export function rewriteNamedParameters(sql: string, render: (index: number, name: string) => string = (index) => `$${index}`): Rewritten {
  const names: string[] = [];
  let out = '';
  let i = 0;
  const n = sql.length;
  const copyUntil = (end: number): void => {
    out += sql.slice(i, end);
    i = end;
  };
  while (i < n) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < n) {
        if (sql[j] === c && sql[j + 1] === c) j += 2;
        else if (sql[j] === c) break;
        else j++;
      }
      copyUntil(Math.min(n, j + 1));
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      copyUntil(end < 0 ? n : end + 1);
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      copyUntil(end < 0 ? n : end + 2);
    } else if (c === '$' && /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.test(sql.slice(i, i + 64))) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64))![0];
      const end = sql.indexOf(tag, i + tag.length);
      copyUntil(end < 0 ? n : end + tag.length);
    } else if (c === ':' && sql[i + 1] === ':') {
      copyUntil(i + 2);
    } else if (c === ':' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
      let j = i + 2;
      while (j < n && /[A-Za-z0-9_]/.test(sql[j]!)) j++;
      const name = sql.slice(i + 1, j);
      let index = names.indexOf(name);
      if (index < 0) index = names.push(name) - 1;
      out += render(index + 1, name);
      i = j;
    } else {
      copyUntil(i + 1);
    }
  }
  return { sql: out, names };
}
