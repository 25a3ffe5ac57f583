// Measures what the session tier adds to the process tier on this host (run as root):
//   ../../node_modules/.bin/vite-node --config vitest.config.ts scripts/measure-session.ts [runs]
// Launch to exit of /bin/true, interleaved A B A B so that drift hits both; the private display's
// start; the resident memory (PSS) of what a session adds. Figures are printed, never asserted.
import { chmod, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Capabilities, type IsolationProvider, run } from '@bulkhead/core';
import { createProcessProvider } from '@bulkhead/tier-process';
import { createSessionProvider } from '../src/index.js';
import { startPrivateDisplay } from '../src/private-display.js';

const runs = Number(process.argv[2] ?? 40);
const workspace = await mkdtemp(join(tmpdir(), 'bulkhead-session-measure-'));
const capabilities = (display: boolean): Capabilities => ({
  filesystem: { read: ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/etc'], write: [workspace], deny: [] },
  network: { mode: 'none', allow: [] },
  process: { spawn: true, maxProcesses: 64 },
  resources: { memoryBytes: 512 * 1024 * 1024, timeoutMs: 30_000, gpus: 'none' },
  devices: { clipboard: false, audio: false, webcam: false, display, input: false },
  env: {},
  workdir: workspace,
});

async function timed(provider: IsolationProvider, display = false, command = ['/bin/true']): Promise<number> {
  const started = performance.now();
  const result = await run({
    providers: [provider],
    tier: provider.tier,
    capabilities: capabilities(display),
    command,
  });
  if (result.exitCode !== 0) throw new Error(`${provider.tier}: ${result.stderr}`);
  return performance.now() - started;
}

function summary(samples: number[]) {
  const sorted = [...samples].sort((left, right) => left - right);
  const at = (fraction: number) => sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
  return {
    median: +at(0.5).toFixed(2),
    p95: +at(0.95).toFixed(2),
    min: +sorted[0]!.toFixed(2),
    max: +sorted.at(-1)!.toFixed(2),
  };
}

async function pss(pid: number): Promise<number> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  return Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
}

/** Live processes whose command line mentions Xvfb: the X server and the bubblewrap around it. */
async function displayProcesses(): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    const commandLine = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    if (commandLine.includes('Xvfb') && uid >= 2_000_000_000 && !/^State:\s+Z/m.test(status))
      found.push(Number(entry));
  }
  return found;
}

const processTier = createProcessProvider({ mode: 'namespace' });
const sessionTier = createSessionProvider({ auditLog: join(workspace, 'audit.jsonl') });
const privateDisplay = createSessionProvider({ display: 'private', auditLog: false });
for (let warm = 0; warm < 5; warm++) {
  await timed(processTier);
  await timed(sessionTier);
  await timed(privateDisplay, true);
}
const process_: number[] = [];
const session: number[] = [];
const display: number[] = [];
for (let index = 0; index < runs; index++) {
  process_.push(await timed(processTier));
  session.push(await timed(sessionTier));
  display.push(await timed(privateDisplay, true));
}

// Memory: a session sandbox that sleeps, with and without its display; what it adds beyond the
// process tier is the X server (and its bubblewrap), since the account switch leaves no process behind.
const sleeping = await privateDisplay.launch({ command: ['sleep', '5'], capabilities: capabilities(true) });
await new Promise((resolve) => setTimeout(resolve, 1000));
const xProcesses = await displayProcesses();
const perProcess: number[] = [];
for (const pid of xProcesses) perProcess.push(await pss(pid));
const displayKilobytes = perProcess.reduce((total, value) => total + value, 0);
await sleeping.kill();
await sleeping[Symbol.asyncDispose]();

// The X server alone: from spawning its bubblewrap to its socket accepting connections.
const xvfbStart: number[] = [];
const displayFolder = join(workspace, 'display');
await mkdir(displayFolder, { mode: 0o711 });
await chmod(workspace, 0o711);
for (let index = 0; index < Math.min(runs, 20); index++) {
  const started = await startPrivateDisplay({
    sandboxId: `measure-${process.pid}-${index}`,
    memoryBytes: 512 * 1024 * 1024,
    directory: displayFolder,
    uid: 2_100_004_000,
    gid: 2_100_004_000,
    switching: 'root',
    bubblewrapPath: 'bwrap',
    xvfbPath: 'Xvfb',
  });
  xvfbStart.push(started.startMs);
  await started.stop();
}

console.log(
  JSON.stringify(
    {
      runs,
      launchToExitMs: {
        processNamespace: summary(process_),
        session: summary(session),
        sessionPrivateDisplay: summary(display),
      },
      sessionMinusProcessMedianMs: +(summary(session).median - summary(process_).median).toFixed(2),
      xvfbStartMs: summary(xvfbStart),
      privateDisplayMinusSessionMedianMs: +(summary(display).median - summary(session).median).toFixed(2),
      privateDisplayPssKilobytes: {
        total: displayKilobytes,
        perProcess,
      },
    },
    null,
    2,
  ),
);
await rm(workspace, { recursive: true, force: true });
