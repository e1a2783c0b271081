// The zones-as-hosts harness of the reliability scenarios (test/reliability/zones.ts):
// its faults cut what they say and nothing else, heal undoes them, and its
// namespaces go when it ends, also when the process that made them was killed.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ZoneNetwork, ZonesUnavailable } from '../reliability/zones.js';

const ZONES = ['a', 'b'];
const PORT = 40_999;

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

/** A UDP listener inside a zone's namespace that prints every datagram it gets. */
async function listenIn(net: ZoneNetwork, zone: string): Promise<{ child: ChildProcess; got: string[] }> {
  const code = `const s=require('node:dgram').createSocket('udp4');s.on('message',(m)=>console.log(String(m)));s.bind(${PORT},'${net.address(zone)}',()=>console.log('ready'));setTimeout(()=>process.exit(0),60000);`;
  const child = spawn('ip', ['netns', 'exec', net.netns(zone), process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => got.push(...d.split('\n').filter(Boolean)));
  for (let i = 0; i < 100 && !got.includes('ready'); i++) await sleep(50);
  assert.ok(got.includes('ready'), 'the listener in the namespace started');
  return { child, got };
}

/** Sends one datagram from a zone's namespace to an address. */
function sendFrom(net: ZoneNetwork, zone: string, address: string, port: number, text: string): Promise<void> {
  const code = `const s=require('node:dgram').createSocket('udp4');s.send('${text}',${port},'${address}',()=>s.close());`;
  return new Promise((resolve, reject) => execFile('ip', ['netns', 'exec', net.netns(zone), process.execPath, '-e', code], { timeout: 10_000 }, (err) => (err ? reject(new Error(err.message)) : resolve())));
}

function sendFromCompute(address: string, text: string): Promise<void> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => s.send(text, PORT, address, () => s.close(() => resolve())));
}

async function makeOrSkip(t: { skip: (why: string) => void }): Promise<ZoneNetwork | null> {
  try {
    return await ZoneNetwork.create(ZONES);
  } catch (err) {
    if (err instanceof ZonesUnavailable) {
      t.skip(err.message);
      return null;
    }
    throw err;
  }
}

test('a zone is reached at its address; isolate and drop cut only what they name; heal undoes them; destroy removes the namespaces', async (t) => {
  const net = await makeOrSkip(t);
  if (!net) return;
  let listener: ChildProcess | null = null;
  try {
    assert.ok(ZONES.every((z) => namespaces().includes(net.netns(z))), 'one namespace per zone');
    const a = await listenIn(net, 'a');
    listener = a.child;
    const arrived = async (text: string): Promise<boolean> => {
      for (let i = 0; i < 20; i++) {
        if (a.got.includes(text)) return true;
        await sleep(50);
      }
      return false;
    };

    await sendFromCompute(net.address('a'), 'plain');
    assert.ok(await arrived('plain'), 'compute reaches zone a');
    await sendFrom(net, 'b', net.address('a'), PORT, 'from-b');
    assert.ok(await arrived('from-b'), 'zone b reaches zone a');

    await net.drop('compute', 'a');
    await sendFromCompute(net.address('a'), 'dropped');
    await sendFrom(net, 'b', net.address('a'), PORT, 'b-during-drop');
    assert.ok(await arrived('b-during-drop'), 'a drop from compute leaves zone b -> a alone');
    assert.ok(!a.got.includes('dropped'), 'compute -> a is dropped');

    await net.heal();
    await sendFromCompute(net.address('a'), 'healed');
    assert.ok(await arrived('healed'), 'heal restores compute -> a');

    await net.isolate('a');
    await sendFromCompute(net.address('a'), 'isolated');
    await sendFrom(net, 'b', net.address('a'), PORT, 'b-isolated');
    await sleep(300);
    assert.ok(!a.got.includes('isolated') && !a.got.includes('b-isolated'), 'nothing reaches an isolated zone');
    await net.heal();
    await sendFromCompute(net.address('a'), 'back');
    assert.ok(await arrived('back'), 'an isolated zone is reached again after heal');
  } finally {
    listener?.kill('SIGKILL');
    await net.destroy();
  }
  assert.ok(ZONES.every((z) => !namespaces().includes(net.netns(z))), 'destroy removed the namespaces');
});

test('namespaces left by a killed run are removed by the next one', async (t) => {
  const probe = await makeOrSkip(t);
  if (!probe) return;
  await probe.destroy();
  const zones = fileURLToPath(new URL('../reliability/zones.ts', import.meta.url));
  // A process that makes a network, says which, and waits to be killed: its exit handler never runs.
  const code = `const { ZoneNetwork } = await import(${JSON.stringify(zones)}); const n = await ZoneNetwork.create(['a']); console.log(n.netns('a')); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  for (let i = 0; i < 200 && !out.includes('\n'); i++) await sleep(50);
  const left = out.trim();
  assert.match(left, /^bz\d+-1-a$/, 'the child made a namespace');
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.ok(namespaces().includes(left), 'a killed run leaves its namespace');
  const next = await ZoneNetwork.create(['a']);
  try {
    assert.ok(!namespaces().includes(left), 'the next run removed it');
  } finally {
    await next.destroy();
  }
});
