// Launches N sandboxes at once from this process, each payload printing `ready` and waiting for
// stdin to close, like the benchmarks' concurrency row; prints the time until all said ready.
//   ../../node_modules/.bin/vite-node --config vitest.config.ts scripts/measure-concurrency.ts [N] [mode]

import { launch, ProviderRegistry } from '@bulkhead/core';
import { createProcessProvider } from '@bulkhead/tier-process';
import { measureCapabilities } from './measure-capabilities.js';

const count = Number(process.argv[2] ?? 100);
const mode = (process.argv[3] ?? 'namespace') as 'namespace' | 'shim-only';
const capabilities = await measureCapabilities('measure-concurrency');
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
