// The same function as insert-order.mjs, written as a Lambda using the RDS
// Data API would be: no driver and no connection, an SDK client made when the
// container starts (cold), SQL over HTTPS signed with the function's
// credentials. `bench lambda --mode data-api` puts in the environment what a
// Lambda's configuration would: AWS credentials and region, the cluster's
// ARN, a secret's ARN, and the Data API's address (Borealis's, not AWS's).
import { ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';

const client = new RDSDataClient({ endpoint: process.env.BOREALIS_DATA_API_URL, maxAttempts: 1 });
const target = { resourceArn: process.env.BOREALIS_RESOURCE_ARN, secretArn: process.env.BOREALIS_SECRET_ARN };
let ready = false;

const sql = (text, parameters = []) => client.send(new ExecuteStatementCommand({ ...target, sql: text, parameters }));

export async function handler(event) {
  if (!ready) {
    try {
      await sql('CREATE TABLE IF NOT EXISTS lambda_orders (id bigserial PRIMARY KEY, customer int NOT NULL, cents int NOT NULL, at timestamptz NOT NULL DEFAULT now())');
      await sql('CREATE INDEX IF NOT EXISTS lambda_orders_customer ON lambda_orders (customer)');
    } catch (err) {
      // Cold starts race to create it: another container won.
      if (!/already exists|duplicate key/.test(err.message)) throw err;
    }
    ready = true;
  }
  const customer = event.sequence % 1000;
  await sql('INSERT INTO lambda_orders (customer, cents) VALUES (:customer, :cents)', [
    { name: 'customer', value: { longValue: customer } },
    { name: 'cents', value: { longValue: 100 + (event.sequence % 900) } },
  ]);
  const r = await sql('SELECT count(*)::int AS orders, sum(cents)::bigint AS cents FROM lambda_orders WHERE customer = :customer', [{ name: 'customer', value: { longValue: customer } }]);
  const [orders, cents] = r.records[0];
  return { statusCode: 200, body: JSON.stringify({ orders: orders.longValue, cents: cents.longValue }) };
}
