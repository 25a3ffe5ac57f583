/**
 * Figures of the micro-VM tier on this host, with the accelerator named (the benchmarks package owns
 * the published, side-by-side figures): cold launch to payload exit of /bin/true, against a bare
 * spawn in the same run, and the VMM's memory (PSS, guest RAM included) while the guest idles in `sleep`.
 *
 *   npx vite-node packages/tier-microvm/scripts/measure.ts [runs]
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { run } from '@bulkhead/core';
import { defaultCapabilities } from '@bulkhead/manifest';
import { createMicrovmProvider } from '../src/index.js';

const runs = Number(process.argv[2] ?? 5);
const provider = createMicrovmProvider({ acceleration: 'any' });
const probe = await provider.probe();
if (!probe.available) throw new Error(`microvm tier unavailable: ${probe.reason}`);
const base = defaultCapabilities({
  cwd: '/tmp',
  workspace: '/tmp',
  home: '/nonexistent',
  env: {},
  policy: null,
});
const capabilities = { ...base, resources: { ...base.resources, memoryBytes: 256 * 1024 * 1024 }, env: {} };

function summary(values: number[]): string {
  const sorted = [...values].sort((left, right) => left - right);
  const median = sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
  return `median ${median.toFixed(1)} (min ${sorted[0]?.toFixed(1)}, max ${sorted.at(-1)?.toFixed(1)})`;
}

const bare: number[] = [];
const cold: number[] = [];
for (let index = 0; index < runs; index++) {
  let started = performance.now();
  spawnSync('/bin/true');
  bare.push(performance.now() - started);
  started = performance.now();
  const result = await run({ command: ['/bin/true'], capabilities, providers: [provider], tier: 'microvm' });
  cold.push(performance.now() - started);
  if (result.exitCode !== 0) throw new Error(`/bin/true failed in the guest: ${result.stderr}`);
}

function pssKibibytes(pid: number): number {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
}

function descendants(root: number): { pid: number; name: string }[] {
  const parents = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      parents.set(pid, Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]));
      names.set(pid, /^Name:\s+(.*)$/m.exec(status)?.[1] ?? '');
    } catch {
      // Gone.
    }
  }
  return [...parents.keys()]
    .filter((pid) => {
      for (
        let ancestor = parents.get(pid);
        ancestor !== undefined && ancestor > 1;
        ancestor = parents.get(ancestor)
      )
        if (ancestor === root) return true;
      return false;
    })
    .map((pid) => ({ pid, name: names.get(pid) ?? '' }));
}

// Warm launches: a pool of one booted VM per shape, refilled in the background between runs.
const pooled = createMicrovmProvider({ acceleration: 'any', pool: { size: 1 } });
const warm: number[] = [];
for (let index = 0; index <= runs; index++) {
  const started = performance.now();
  const sandbox = await pooled.launch({ command: ['/bin/true'], capabilities });
  sandbox.stdin.end();
  sandbox.stdout.resume();
  sandbox.stderr.resume();
  await sandbox.exited;
  const elapsed = performance.now() - started;
  await sandbox[Symbol.asyncDispose]();
  // The first launch of a shape is cold: it starts the pool.
  if (sandbox.startup === 'warm') warm.push(elapsed);
  // Let the pool's next VM finish booting, as it would between an agent's tool calls.
  await new Promise((resolve) => setTimeout(resolve, 4000));
}
await pooled.drainPool();

const sandbox = await provider.launch({ command: ['sleep', '30'], capabilities });
sandbox.stdout.resume();
sandbox.stderr.resume();
await new Promise((resolve) => setTimeout(resolve, 2000));
const processes = descendants(process.pid).filter(
  (entry) => entry.name === 'bwrap' || entry.name.startsWith('qemu-system'),
);
const memory = processes.map((entry) => ({ ...entry, pssKibibytes: pssKibibytes(entry.pid) }));
await sandbox[Symbol.asyncDispose]();

console.log(
  `accelerator: ${probe.facts.accelerator} (${probe.facts.kvmBootProbe}), VMM ${probe.facts.vmm} ${probe.facts.vmmVersion}`,
);
console.log(`bare spawn of /bin/true, ms: ${summary(bare)}`);
console.log(`cold launch to exit of /bin/true, ms: ${summary(cold)} over ${runs} runs`);
console.log(`warm-pool launch to exit of /bin/true, ms: ${summary(warm)} over ${warm.length} runs`);
for (const entry of memory)
  console.log(`idle sleep: ${entry.name} (${entry.pid}) PSS ${(entry.pssKibibytes / 1024).toFixed(1)} MiB`);
console.log(
  `idle sleep: VMM + guest + jail PSS ${(memory.reduce((sum, entry) => sum + entry.pssKibibytes, 0) / 1024).toFixed(1)} MiB`,
);
