// The experiment's chart as a self-contained SVG: invocations per second
// (bars), capacity in ACUs (line, right axis) and concurrency (dashed).
import type { LambdaRecord } from './lambda-run.js';

export function lambdaChart(rows: readonly LambdaRecord[], title: string): string {
  const w = 860;
  const h = 340;
  const pad = { left: 56, right: 56, top: 40, bottom: 40 };
  const plotW = w - pad.left - pad.right;
  const plotH = h - pad.top - pad.bottom;
  const maxRate = Math.max(1, ...rows.map((r) => r.invocations));
  const maxConc = Math.max(1, ...rows.map((r) => r.inFlight));
  const maxCap = Math.max(1, ...rows.map((r) => r.capacityAcu));
  const x = (i: number): number => pad.left + (rows.length <= 1 ? 0 : (i / (rows.length - 1)) * plotW);
  const y = (v: number, max: number): number => pad.top + plotH - (v / max) * plotH;
  const barW = Math.max(1, plotW / Math.max(1, rows.length) - 1);
  const bars = rows.map((r, i) => `<rect x="${(x(i) - barW / 2).toFixed(1)}" y="${y(r.invocations, maxRate).toFixed(1)}" width="${barW.toFixed(1)}" height="${(pad.top + plotH - y(r.invocations, maxRate)).toFixed(1)}" fill="#9ecae1"/>`).join('');
  const path = (value: (r: LambdaRecord) => number, max: number): string => rows.map((r, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(value(r), max).toFixed(1)}`).join(' ');
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">
<rect width="${w}" height="${h}" fill="white"/>
<text x="${pad.left}" y="20" font-size="14">${esc(title)}</text>
${bars}
<path d="${path((r) => r.inFlight, maxConc)}" fill="none" stroke="#2ca02c" stroke-width="1.5" stroke-dasharray="5,4"/>
<path d="${path((r) => r.capacityAcu, maxCap)}" fill="none" stroke="#d62728" stroke-width="2.5"/>
<line x1="${pad.left}" y1="${pad.top + plotH}" x2="${pad.left + plotW}" y2="${pad.top + plotH}" stroke="black"/>
<text x="4" y="${pad.top + 10}" fill="#3182bd">${maxRate}/s</text>
<text x="${w - pad.right + 4}" y="${pad.top + 10}" fill="#d62728">${maxCap} ACU</text>
<text x="${pad.left}" y="${h - 12}">0 s</text><text x="${pad.left + plotW - 30}" y="${h - 12}">${rows.length} s</text>
<text x="${pad.left + 60}" y="${h - 12}" fill="#3182bd">bars: invocations/s (max ${maxRate})</text>
<text x="${pad.left + 300}" y="${h - 12}" fill="#d62728">line: capacity (max ${maxCap} ACU)</text>
<text x="${pad.left + 520}" y="${h - 12}" fill="#2ca02c">dashed: concurrency (max ${maxConc})</text>
</svg>
`;
}
