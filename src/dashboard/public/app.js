// Borealis dashboard: polls the control API (the token comes in the URL's
// fragment, never sent to the server as part of a URL) and draws clusters,
// a per-second chart of capacity against load for every instance, the
// storage map, endpoints, cost and events. Actions use the same API.

const POLL_MS = 1000;
const WINDOW_S = 300;
const token = (() => {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) sessionStorage.setItem('borealis-token', fromHash);
  return fromHash || sessionStorage.getItem('borealis-token') || '';
})();
const charts = new Map();

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.message || `${method} ${path}: HTTP ${res.status}`);
  return json;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function problem(message) {
  const p = document.getElementById('problem');
  p.hidden = !message;
  p.textContent = message || '';
}

function clusterSection(c) {
  let section = document.getElementById(`cluster-${c.name}`);
  if (!section) {
    section = el('section', { class: 'cluster', id: `cluster-${c.name}` });
    section.append(
      el('h2', {}, el('span', { class: 'title' })),
      el('div', { class: 'instances' }),
      clusterActions(c),
      el('div', { class: 'charts' }),
      el('h3', {}, 'Scaling'),
      scalingForm(c),
      el('h3', {}, 'Storage'),
      el('div', { class: 'storage' }),
      el('h3', {}, 'Endpoints'),
      el('div', { class: 'endpoints' }),
    );
    document.getElementById('clusters').append(section);
  }
  return section;
}

function scalingForm(c) {
  const field = (name, label, value, step) => el('label', {}, `${label} `, el('input', { type: 'number', name, value: String(value), step, min: '0' }));
  const form = el(
    'form',
    { class: 'scaling', 'data-cluster': c.name },
    field('minCapacity', 'min ACU', c.scaling.minCapacity, '0.5'),
    field('maxCapacity', 'max ACU', c.scaling.maxCapacity, '0.5'),
    field('secondsUntilAutoPause', 'auto-pause after (s)', c.scaling.secondsUntilAutoPause, '1'),
    el('button', { type: 'submit' }, 'Apply'),
    el('span', { class: 'result muted' }),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {};
    for (const key of ['minCapacity', 'maxCapacity', 'secondsUntilAutoPause']) body[key] = Number(data.get(key));
    api('PATCH', `/v1/clusters/${encodeURIComponent(c.name)}`, body).then(
      (after) => (form.querySelector('.result').textContent = `applied: ${after.scaling.minCapacity}–${after.scaling.maxCapacity} ACU`),
      (err) => (form.querySelector('.result').textContent = err.message),
    );
  });
  return form;
}

function clusterActions(c) {
  const holder = el('div', { class: 'cluster-actions' });
  const b = el('button', { type: 'button', 'data-action': `add-reader:${c.name}` }, 'add reader');
  const result = el('span', { class: 'result muted' });
  b.addEventListener('click', () => {
    b.disabled = true;
    result.textContent = ' cloning the writer…';
    api('POST', `/v1/clusters/${encodeURIComponent(c.name)}/instances`, { promotionTier: 1 }).then(
      (r) => (result.textContent = ` ${r.instance.id} added`),
      (err) => (result.textContent = ` ${err.message}`),
    ).finally(() => (b.disabled = false));
  });
  const failover = el('button', { type: 'button', 'data-action': `failover:${c.name}` }, 'failover');
  failover.addEventListener('click', () => {
    failover.disabled = true;
    result.textContent = ' failing over…';
    api('POST', `/v1/clusters/${encodeURIComponent(c.name)}/failover`, {}).then(
      (r) => (result.textContent = ` ${r.writer} is the writer (${r.tookMs} ms)`),
      (err) => (result.textContent = ` ${err.message}`),
    ).finally(() => (failover.disabled = false));
  });
  holder.append(b, ' ', failover, result);
  return holder;
}

function load(i) {
  const parts = [];
  if (i.metrics) parts.push(`CPU ${i.metrics.cpuUtilizationPercent}% · ${i.metrics.connections} conn · ${i.metrics.queuedClients} queued`);
  if (i.replicaLag) parts.push(`lag ${i.replicaLag.seconds.toFixed(3)} s`);
  return parts.length ? parts.join(' · ') : '—';
}

function renderCluster(c) {
  const s = clusterSection(c);
  const cost = c.instances.reduce((sum, i) => sum + i.estimatedCost, 0);
  const acuHours = c.instances.reduce((sum, i) => sum + i.acuSeconds, 0) / 3600;
  s.querySelector('.title').textContent = `${c.name} — ${c.status}, PostgreSQL ${c.engineVersion}, ${c.scaling.minCapacity}–${c.scaling.maxCapacity} ACU, ${acuHours.toFixed(3)} ACU-hours ($${cost.toFixed(4)})`;
  const rows = c.instances.map((i) =>
    el('tr', { 'data-instance': i.id },
      el('td', {}, i.id), el('td', {}, i.role), el('td', {}, i.kind), el('td', { class: 'state' }, i.state),
      el('td', { class: 'capacity' }, `${i.capacityAcu} ACU`),
      el('td', { class: 'load' }, load(i)),
      el('td', {}, action(i, 'pause', i.state === 'available'), ' ', action(i, 'resume', i.state === 'paused'), i.role === 'reader' ? ' ' : null, i.role === 'reader' ? action(i, 'delete', true) : null),
    ),
  );
  s.querySelector('.instances').replaceChildren(el('table', {}, el('tr', {}, ...['instance', 'role', 'kind', 'state', 'capacity', 'load', ''].map((h) => el('th', {}, h))), ...rows));
  const zones = new Map();
  for (const n of c.storage.nodes) {
    if (!zones.has(n.zone)) zones.set(n.zone, []);
    zones.get(n.zone).push(n);
  }
  const storage = s.querySelector('.storage');
  if (c.storage.nodes.length === 0) storage.replaceChildren(el('span', { class: 'muted' }, 'no storage nodes (local storage only)'));
  else {
    storage.replaceChildren(
      el('div', { class: 'muted' }, `term ${c.storage.term}, commits need ${c.storage.writeQuorum} of ${c.storage.nodes.length}, ${c.storage.backups} base backups${c.storage.writeQuorumLost ? ' — write quorum LOST: commits wait' : ''}`),
      el('div', { class: 'zones' }, ...[...zones].map(([zone, nodes]) =>
        el('div', { class: 'zone' }, el('strong', {}, `zone ${zone}`), ...nodes.map((n) => {
          const healthy = n.state === 'streaming';
          const cls = !healthy ? 'node down' : (n.lagBytes ?? 0) > 16 * 1024 * 1024 ? 'node behind' : 'node';
          return el('div', { class: cls, 'data-node': n.name }, `${n.name}: ${n.state ?? n.process} · flush ${n.flushLsn ?? '—'} · lag ${n.lagBytes ?? '—'} B · ${Math.round((n.diskBytes ?? 0) / 1048576)} MiB`);
        })),
      )),
    );
  }
  s.querySelector('.endpoints').replaceChildren(
    el('table', {}, ...c.endpoints.map((e) => {
      const url = `${e.url}?sslmode=require`;
      return el('tr', {}, el('td', {}, e.type + (e.name ? ` ${e.name}` : '')), el('td', {}, el('code', {}, url)),
        el('td', {}, el('button', { type: 'button', onclick: () => navigator.clipboard?.writeText(url).catch(() => undefined) }, 'copy')));
    })),
  );
  for (const i of c.instances) ensureChart(s, i.id);
  // Instances that are gone lose their charts.
  for (const holder of s.querySelectorAll('[data-chart]')) {
    const id = holder.getAttribute('data-chart');
    if (!c.instances.some((i) => i.id === id)) {
      charts.get(id)?.chart.destroy();
      charts.delete(id);
      holder.remove();
    }
  }
}

function action(instance, verb, enabled) {
  const b = el('button', { type: 'button', 'data-action': `${verb}:${instance.id}` }, verb);
  b.disabled = !enabled;
  b.addEventListener('click', () => {
    b.disabled = true;
    const request = verb === 'delete' ? api('DELETE', `/v1/instances/${encodeURIComponent(instance.id)}`) : api('POST', `/v1/instances/${encodeURIComponent(instance.id)}/${verb}`, {});
    request.catch((err) => problem(err.message));
  });
  return b;
}

function ensureChart(section, id) {
  if (charts.has(id)) return;
  const holder = el('div', { class: 'chart', 'data-chart': id }, el('div', { class: 'muted' }, `${id}: capacity against load, last ${WINDOW_S / 60} minutes`));
  section.querySelector('.charts').append(holder);
  const opts = {
    width: Math.min(1100, document.body.clientWidth - 40),
    height: 240,
    scales: { x: { time: true }, acu: { range: (_u, _min, max) => [0, Math.max(1, max)] }, load: { range: (_u, _min, max) => [0, Math.max(10, max)] } },
    axes: [{}, { scale: 'acu', label: 'ACU' }, { scale: 'load', side: 1, label: 'load', grid: { show: false } }],
    series: [
      {},
      { label: 'capacity (ACU)', scale: 'acu', stroke: '#2b6cb0', width: 2, fill: 'rgba(43,108,176,0.08)' },
      { label: 'transactions/s', scale: 'load', stroke: '#dd6b20', width: 1 },
      { label: 'connections', scale: 'load', stroke: '#38a169', width: 1 },
      { label: 'CPU %', scale: 'load', stroke: '#805ad5', width: 1, dash: [4, 4] },
    ],
  };
  const chart = new uPlot(opts, [[], [], [], [], []], holder);
  charts.set(id, { chart, points: 0 });
}

async function refreshCharts() {
  for (const [id, entry] of charts) {
    const { series } = await api('GET', `/v1/instances/${encodeURIComponent(id)}/series?seconds=${WINDOW_S}`);
    const data = [
      series.map((p) => p.at / 1000),
      series.map((p) => p.capacityAcu),
      series.map((p) => Math.round(p.transactionsPerSecond)),
      series.map((p) => p.connections),
      series.map((p) => Math.round(p.cpuUtilizationPercent)),
    ];
    entry.chart.setData(data);
    entry.points = series.length;
    entry.chart.root.setAttribute('data-points', String(series.length));
  }
}

async function refreshEvents() {
  const { events } = await api('GET', '/v1/events?limit=40');
  document.getElementById('events').replaceChildren(
    ...events.map((e) => el('li', {}, el('span', { class: 'muted' }, new Date(e.time).toLocaleTimeString()), ` ${e.sourceId} `, el('strong', {}, e.kind), ` ${e.message}`)),
  );
}

async function tick() {
  try {
    const status = await api('GET', '/v1/status');
    document.getElementById('summary').textContent = `${status.clusters.length} cluster(s) · engine ${status.engine.version} · capacity ${status.capacity.enforcement}`;
    for (const c of status.clusters) renderCluster(c);
    await refreshCharts();
    await refreshEvents();
    problem('');
  } catch (err) {
    problem(token ? err.message : 'no API token: open the URL printed by `borealis dashboard`');
  }
}

void tick();
setInterval(() => void tick(), POLL_MS);
