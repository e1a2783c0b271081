// A read-mostly function: a small report over the catalog, CPU on the
// database rather than on the function.
export async function handler(event, context) {
  const { rows } = await context.db.query('SELECT count(*)::int AS n FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid WHERE c.relkind = $1', ['r']);
  return { statusCode: 200, body: JSON.stringify({ columns: rows[0].n, request: event.sequence }) };
}
