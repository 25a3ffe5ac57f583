// Runs after tsup (which keeps dist/native): ships the shim's source beside the binary, so an installed
// package can rebuild it on demand, then compiles it through the same code path tiers use.
import { copyFileSync, mkdirSync } from 'node:fs';

const root = new URL('../', import.meta.url);
mkdirSync(new URL('dist/native/', root), { recursive: true });
copyFileSync(new URL('native/bulkhead-shim.c', root), new URL('dist/native/bulkhead-shim.c', root));
const { ensureShim } = await import(new URL('dist/index.js', root).href);
console.log(`bulkhead-shim: ${await ensureShim()}`);
