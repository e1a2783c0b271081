// A serverless function as Borealis's `bench lambda` runs it (Lambda's
// handler signature): records an order and reads back the customer's total.
// context.db is the container's connection (opened at its cold start, reused
// while warm), or a fresh one per invocation with --mode fresh.
let ready = false;

export async function handler(event, context) {
  if (!ready) {
    try {
      await context.db.query('CREATE TABLE IF NOT EXISTS lambda_orders (id bigserial PRIMARY KEY, customer int NOT NULL, cents int NOT NULL, at timestamptz NOT NULL DEFAULT now())');
      await context.db.query('CREATE INDEX IF NOT EXISTS lambda_orders_customer ON lambda_orders (customer)');
    } catch (err) {
      // Cold starts race to create it: another container won.
      if (err.code !== '42P07' && err.code !== '23505') throw err;
    }
    ready = true;
  }
  const customer = event.sequence % 1000;
  await context.db.query('INSERT INTO lambda_orders (customer, cents) VALUES ($1, $2)', [customer, 100 + (event.sequence % 900)]);
  const { rows } = await context.db.query('SELECT count(*)::int AS orders, sum(cents)::bigint AS cents FROM lambda_orders WHERE customer = $1', [customer]);
  return { statusCode: 200, body: JSON.stringify(rows[0]) };
}
