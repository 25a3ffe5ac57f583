// Launches N sandboxes at once from this process, each payload printing `ready` and waiting for
// stdin to close, like the benchmarks' concurrency row; prints the time until all said ready.
//   ../../node_modules/.bin/vite-node --config vitest.config.ts scripts/measure-concurrency.ts [N] [mode]

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Capabilities, launch, ProviderRegistry } from '@bulkhead/core';
import { createProcessProvider } from '@bulkhead/tier-process';

const workspace = mkdtempSync(join(tmpdir(), 'bulkhead-measure-concurrency-'));

const count = Number(process.argv[2] ?? 100);
const mode = (process.argv[3] ?? 'namespace') as 'namespace' | 'shim-only';
const capabilities: Capabilities = {
  filesystem: { read: ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/etc'], write: [workspace], deny: [] },
  network: { mode: 'none', allow: [] },
  process: { spawn: true, maxProcesses: 64 },
  resources: { memoryBytes: 512 * 1024 * 1024, timeoutMs: 30_000, gpus: 'none' },
  devices: { clipboard: false, audio: false, webcam: false, display: false, input: false },
  env: {},
  workdir: workspace,
};
const providers = new ProviderRegistry([createProcessProvider({ mode })]);
const hold = ['/bin/sh', '-c', 'echo ready; read line'];
const started = performance.now();
const readyAt: number[] = [];
const sandboxes = await Promise.all(
  Array.from({ length: count }, async () => {
    const sandbox = await launch({ command: hold, capabilities, providers, tier: 'process' });
    sandbox.stderr.resume();
    await new Promise<void>((resolve) => sandbox.stdout.once('data', () => resolve()));
    readyAt.push(performance.now() - started);
    return sandbox;
  }),
);
readyAt.sort((a, b) => a - b);
console.log(
  `${mode} ${count} at once: all ready ${readyAt.at(-1)!.toFixed(0)} ms; p50 ${readyAt[Math.floor(count / 2)]!.toFixed(0)} ms; first ${readyAt[0]!.toFixed(0)} ms`,
);
for (const sandbox of sandboxes) sandbox.stdin.end();
await Promise.all(
  sandboxes.map(async (sandbox) => {
    await sandbox.exited;
    await sandbox[Symbol.asyncDispose]();
  }),
);
process.exit(0);
