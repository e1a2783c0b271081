// Prometheus text exposition format, version 0.0.4. Pure: families in, text out.
// https://prometheus.io/docs/instrumenting/exposition_formats/

import type { LatencyHistogram } from './histogram.js';

export type MetricType = 'gauge' | 'counter' | 'histogram';

export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  /** A histogram's samples carry their suffix: _bucket (with an le label), _sum, _count. */
  readonly samples: ReadonlyArray<{ readonly labels?: Readonly<Record<string, string>>; readonly value: number; readonly suffix?: '_bucket' | '_sum' | '_count' }>;
}

/** A histogram family's samples, one set per labelled histogram. */
export function histogramSamples(series: ReadonlyArray<{ readonly labels: Readonly<Record<string, string>>; readonly histogram: LatencyHistogram }>): MetricFamily['samples'] {
  return series.flatMap(({ labels, histogram }) => [
    ...histogram.cumulative().map((b) => ({ labels: { ...labels, le: formatValue(b.le) }, value: b.count, suffix: '_bucket' as const })),
    { labels, value: histogram.sumSeconds, suffix: '_sum' as const },
    { labels, value: histogram.count, suffix: '_count' as const },
  ]);
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export function renderMetrics(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(f.name)) throw new Error(`invalid metric name ${f.name}`);
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      const text = labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
      lines.push(`${f.name}${s.suffix ?? ''}${text} ${formatValue(s.value)}`);
    }
  }
  return lines.join('\n') + '\n';
}
