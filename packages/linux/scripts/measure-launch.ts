// Measures launch to exit of /bin/true through the process tier, in both modes, against a bare
// spawn measured in the same run (interleaved A B C A B C ... so that drift hits all), and times
// the steps of the launch path on their own. Figures are printed, never asserted (run as root or not):
//   ../../node_modules/.bin/vite-node --config vitest.config.ts scripts/measure-launch.ts [runs]
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { type IsolationProvider, run } from '@bulkhead/core';
// By package name, like the tier, so that a vite alias can point both at another copy to compare.
import {
  buildBubblewrapArguments,
  createSandboxCgroup,
  ensureShim,
  planShim,
  probeBubblewrap,
} from '@bulkhead/linux';
import { createProcessProvider } from '@bulkhead/tier-process';
import { measureCapabilities } from './measure-capabilities.js';

const runs = Number(process.argv[2] ?? 200);
const capabilities = await measureCapabilities('measure-launch');
const workspace = capabilities.workdir;

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

function exited(argv: string[], options: Parameters<typeof spawn>[2] = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', ...options });
    child.once('error', reject);
    child.once('exit', () => resolve());
  });
}

async function timed(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  return performance.now() - started;
}

const bare = () => exited(['/bin/true']);
const tier = (provider: IsolationProvider) => async () => {
  const result = await run({ providers: [provider], tier: 'process', capabilities, command: ['/bin/true'] });
  if (result.exitCode !== 0) throw new Error(`process tier: exit ${result.exitCode}: ${result.stderr}`);
};
// Warm: from the sandbox the tier prepared after the previous launch; cold: without one.
const namespace = createProcessProvider({ mode: 'namespace' });
const shimOnly = createProcessProvider({ mode: 'shim-only' });
const namespaceCold = createProcessProvider({ mode: 'namespace', preparedSandboxes: 0 });
const shimOnlyCold = createProcessProvider({ mode: 'shim-only', preparedSandboxes: 0 });
const bubblewrap = (await probeBubblewrap()).path ?? 'bwrap';
const bubblewrapAlone = () =>
  exited([
    bubblewrap,
    '--unshare-user',
    '--unshare-pid',
    '--unshare-net',
    '--ro-bind',
    '/',
    '/',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--',
    '/bin/true',
  ]);
const shim = await ensureShim();
const shimAlone = async () => {
  const plan = planShim({ capabilities, workdir: workspace });
  const child = spawn(shim, [...plan.args, '--', '/bin/true'], {
    stdio: Array.from({ length: plan.statusFd + 1 }, () => 'pipe' as const),
    env: { PATH: '/usr/bin:/bin' },
  });
  for (const [index, data] of plan.fds.entries()) (child.stdio[3 + index] as Writable).end(data);
  (child.stdio[plan.statusFd] as Readable).resume();
  await new Promise((resolve) => child.once('exit', resolve));
};
const cgroupCycle = async () => {
  const cgroup = await createSandboxCgroup({
    sandboxId: `measure-${Math.random().toString(36).slice(2)}`,
    limits: { memoryBytes: capabilities.resources.memoryBytes, maxProcesses: 64 },
  });
  await cgroup.remove();
};

const compared: Record<string, () => Promise<unknown>> = {
  bare,
  'namespace mode': tier(namespace),
  'namespace mode, cold': tier(namespaceCold),
  'shim-only mode': tier(shimOnly),
  'shim-only mode, cold': tier(shimOnlyCold),
  'bwrap alone': bubblewrapAlone,
  'shim alone (plan + spawn)': shimAlone,
};
const steps: Record<string, () => Promise<unknown>> = {
  planShim: async () => planShim({ capabilities, workdir: workspace }),
  buildBubblewrapArguments: async () =>
    buildBubblewrapArguments({
      capabilities,
      command: ['/bin/true'],
      pathKinds: Object.fromEntries(capabilities.filesystem.read.map((path) => [path, 'directory'])),
      sandboxUid: 65534,
      sandboxGid: 65534,
      deniedFile: '/run/bulkhead/denied',
    }),
  'cgroup create + remove': cgroupCycle,
};

const warmUp = Math.min(10, runs);
for (let index = 0; index < warmUp; index++)
  for (const action of [...Object.values(compared), ...Object.values(steps)]) await action();
const samples: Record<string, number[]> = {};
for (let index = 0; index < runs; index++) {
  for (const [name, action] of [...Object.entries(compared), ...Object.entries(steps)]) {
    samples[name] ??= [];
    // Launches seconds apart, as an agent's are: what one left preparing is done before the next.
    await new Promise((resolve) => setTimeout(resolve, 10));
    samples[name].push(await timed(action));
  }
}
const baseline = summary(samples.bare!).median;
const rows = Object.entries(samples).map(([name, values]) => {
  const figures = summary(values);
  return {
    name,
    ...figures,
    ...(name in compared ? { overBare: +(figures.median - baseline).toFixed(2) } : {}),
  };
});
console.log(JSON.stringify({ runs, uid: process.getuid?.(), node: process.version, results: rows }, null, 2));
await rm(workspace, { recursive: true, force: true });
