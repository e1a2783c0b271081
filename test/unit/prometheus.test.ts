import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatencyHistogram } from '../../src/metrics/histogram.js';
import { histogramSamples, renderMetrics } from '../../src/metrics/prometheus.js';

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

test('a latency histogram renders cumulative buckets with le, then sum and count', () => {
  const h = new LatencyHistogram();
  for (const s of [0.0001, 0.0007, 0.003, 0.003, 9]) h.observe(s);
  const text = renderMetrics([{ name: 'borealis_commit_latency_seconds', help: 'h', type: 'histogram', samples: histogramSamples([{ labels: { instance: 'i' }, histogram: h }]) }]);
  const lines = text.trim().split('\n');
  assert.equal(lines[1], '# TYPE borealis_commit_latency_seconds histogram');
  assert.equal(lines[2], 'borealis_commit_latency_seconds_bucket{instance="i",le="0.0005"} 1');
  assert.equal(lines[3], 'borealis_commit_latency_seconds_bucket{instance="i",le="0.001"} 2');
  assert.ok(lines.includes('borealis_commit_latency_seconds_bucket{instance="i",le="0.005"} 4'));
  assert.ok(lines.includes('borealis_commit_latency_seconds_bucket{instance="i",le="5"} 4'));
  assert.ok(lines.includes('borealis_commit_latency_seconds_bucket{instance="i",le="+Inf"} 5'));
  assert.ok(lines.includes('borealis_commit_latency_seconds_count{instance="i"} 5'));
  assert.match(lines.find((l) => l.startsWith('borealis_commit_latency_seconds_sum'))!, / 9\.0068/);
});
