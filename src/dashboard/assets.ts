// The dashboard's files: Borealis's own page, script and style, and uPlot
// from its npm package. Everything the page loads comes from here, so it
// makes no request outside Borealis. Read once, kept in memory.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));
const UPLOT_DIR = path.join(path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');

const FILES: Record<string, { file: string; type: string }> = {
  '/dashboard': { file: path.join(PUBLIC_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/dashboard/': { file: path.join(PUBLIC_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/dashboard/app.js': { file: path.join(PUBLIC_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/dashboard/app.css': { file: path.join(PUBLIC_DIR, 'app.css'), type: 'text/css; charset=utf-8' },
  '/dashboard/uplot.js': { file: path.join(UPLOT_DIR, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/dashboard/uplot.css': { file: path.join(UPLOT_DIR, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

const cache = new Map<string, Asset>();

export function dashboardAsset(pathname: string): Asset | null {
  const spec = FILES[pathname];
  if (!spec) return null;
  let asset = cache.get(pathname);
  if (!asset) cache.set(pathname, (asset = { type: spec.type, body: fs.readFileSync(spec.file) }));
  return asset;
}
