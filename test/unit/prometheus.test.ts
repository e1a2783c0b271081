import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderMetrics } from '../../src/metrics/prometheus.js';

test('exposition text: HELP, TYPE, labels escaped, special values', () => {
  const text = renderMetrics([
    { name: 'borealis_x', help: 'a "help"\nline', type: 'gauge', samples: [{ labels: { a: 'q"uote\\back\nnl' }, value: 1.5 }, { value: NaN }] },
    { name: 'borealis_total', help: 'h', type: 'counter', samples: [{ value: Infinity }] },
  ]);
  assert.equal(
    text,
    ['# HELP borealis_x a "help"\\nline', '# TYPE borealis_x gauge', 'borealis_x{a="q\\"uote\\\\back\\nnl"} 1.5', 'borealis_x NaN', '# HELP borealis_total h', '# TYPE borealis_total counter', 'borealis_total +Inf', ''].join('\n'),
  );
  assert.throws(() => renderMetrics([{ name: 'bad-name', help: '', type: 'gauge', samples: [] }]), /invalid metric name/);
});
