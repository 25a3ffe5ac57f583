// Measures what an allow-list adds to the process tier in namespace mode. Figures are printed, never
// asserted (run as root or not):
//   ../../node_modules/.bin/vite-node --config vitest.config.ts scripts/measure-allowlist.ts [runs]
// 1. launch to exit of /bin/true, network 'none' against an allow-list, interleaved (A B A B ...);
// 2. the caller's memory with 50 allow-listed sandboxes running (each made one request through the
//    proxy) against 50 network-'none' sandboxes: the difference is the proxy and its channels.

import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Capabilities, launch, run, type Sandbox } from '@bulkhead/core';
import { createEgressProxy, createStaticResolver } from '@bulkhead/egress';
import { defaultCapabilities } from '@bulkhead/manifest';
import { createProcessProvider } from '../src/index.js';

const runs = Number(process.argv[2] ?? 30);
const workspace = await mkdtemp(join(tmpdir(), 'bulkhead-measure-allowlist-'));
await chmod(workspace, 0o777);
const server = createServer((_request, response) => response.end('ok\n'));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as { port: number }).port;
const proxy = createEgressProxy({ resolver: createStaticResolver(['api.test:127.0.0.1']) });
const provider = createProcessProvider({ mode: 'namespace', egress: { proxy } });
const base = defaultCapabilities({ cwd: workspace, workspace, home: '/nonexistent', env: {}, policy: null });
const none: Capabilities = { ...base, network: { mode: 'none', allow: [] } };
const allowlist: Capabilities = {
  ...base,
  network: {
    mode: 'allowlist',
    allow: [
      { host: 'api.test', port },
      { host: '127.0.0.1', port },
    ],
  },
};

async function launchMs(capabilities: Capabilities): Promise<number> {
  const started = performance.now();
  const result = await run({ providers: [provider], tier: 'process', capabilities, command: ['/bin/true'] });
  if (result.exitCode !== 0) throw new Error(`exit ${result.exitCode}: ${result.stderr}`);
  return performance.now() - started;
}

function summary(values: number[]): string {
  const sorted = [...values].sort((left, right) => left - right);
  const median = sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
  return `median ${median.toFixed(1)} ms (min ${sorted[0]?.toFixed(1)}, max ${sorted.at(-1)?.toFixed(1)})`;
}

function median(values: number[]): number {
  return [...values].sort((left, right) => left - right)[Math.floor(values.length / 2)] ?? Number.NaN;
}

try {
  // Warm up: the probe, the shim build, the first channel and the proxy's socket folder.
  await launchMs(none);
  await launchMs(allowlist);
  const times = { none: [] as number[], allowlist: [] as number[] };
  for (let index = 0; index < runs; index++) {
    times.none.push(await launchMs(none));
    times.allowlist.push(await launchMs(allowlist));
  }
  console.log(`launch, network none:      ${summary(times.none)}`);
  console.log(`launch, network allowlist: ${summary(times.allowlist)}`);
  console.log(
    `difference of medians: ${(median(times.allowlist) - median(times.none)).toFixed(1)} ms (n=${runs})`,
  );

  const gc = (globalThis as { gc?: () => void }).gc;
  async function callerMemoryWith(capabilities: Capabilities, count: number) {
    const command =
      capabilities.network.mode === 'allowlist'
        ? ['sh', '-c', `curl -sS -o /dev/null http://api.test:${port}/ && echo ready; sleep 60`]
        : ['sh', '-c', 'echo ready; sleep 60'];
    const sandboxes: Sandbox[] = [];
    for (let index = 0; index < count; index++) {
      sandboxes.push(await launch({ providers: [provider], tier: 'process', capabilities, command }));
    }
    // Every sandbox made its request (or is at least running) before the reading.
    await Promise.all(
      sandboxes.map(
        (sandbox) =>
          new Promise<void>((resolve) => {
            sandbox.stdout.on('data', (chunk: Buffer) => chunk.includes('ready') && resolve());
            sandbox.exited.then(() => resolve());
          }),
      ),
    );
    gc?.();
    const memory = process.memoryUsage();
    for (const sandbox of sandboxes) await sandbox[Symbol.asyncDispose]();
    return memory;
  }
  const count = 50;
  const withNone = await callerMemoryWith(none, count);
  const withAllowlist = await callerMemoryWith(allowlist, count);
  const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  console.log(
    `caller with ${count} sandboxes running: none rss ${megabytes(withNone.rss)} heap ${megabytes(withNone.heapUsed)}; allowlist rss ${megabytes(withAllowlist.rss)} heap ${megabytes(withAllowlist.heapUsed)}`,
  );
  console.log(
    `proxy and ${count} channels (allowlist minus none): rss ${megabytes(withAllowlist.rss - withNone.rss)}, heap ${megabytes(withAllowlist.heapUsed - withNone.heapUsed)}${gc ? '' : ' (no --expose-gc: heap figures include garbage)'}`,
  );
} finally {
  await proxy.close();
  server.close();
  await rm(workspace, { recursive: true, force: true });
}
