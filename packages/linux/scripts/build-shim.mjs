// Runs after tsup (which keeps dist/native): ships the native programs' sources beside their binaries,
// so an installed package can rebuild them on demand, then compiles them through the same code path
// tiers use.
import { copyFileSync, mkdirSync } from 'node:fs';

const root = new URL('../', import.meta.url);
mkdirSync(new URL('dist/native/', root), { recursive: true });
for (const name of ['bulkhead-shim', 'bulkhead-spawner'])
  copyFileSync(new URL(`native/${name}.c`, root), new URL(`dist/native/${name}.c`, root));
const { ensureShim, ensureSpawner } = await import(new URL('dist/index.js', root).href);
console.log(`bulkhead-shim: ${await ensureShim()}`);
console.log(`bulkhead-spawner: ${await ensureSpawner()}`);
