import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { cacheDirectory } from './cache-directory.js';
import type { runBundledCli } from './cli-bundle.js';
import { compileWithCodeCache } from './code-cache.js';

// The run command says in its own words when a tier gives no isolation; Node's copy of that
// warning would only repeat it. Every other warning is printed as Node would.
const [printNodeWarning] = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning: Error & { code?: string }) => {
  if (warning.code === 'BULKHEAD_NO_ISOLATION') return;
  printNodeWarning?.(warning);
});

// A reader that went away (`| head -1`) is handled by the run command like SIGPIPE; it must never
// crash the CLI with an unhandled EPIPE from a last line written afterwards.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

// Everything else is one CommonJS file, compiled with V8's code cache: Node 20 caches no ES module's
// code, and compiling the CLI, the manifest, the process tier and their libraries afresh is a good part
// of every start (see cli-bundle.ts).
const filename = fileURLToPath(new URL('./cli-bundle.cjs', import.meta.url));
const compiled = compileWithCodeCache({
  source: readFileSync(filename, 'utf8'),
  filename,
  directory: cacheDirectory(process.env),
});
const bundle = { exports: {} as { runBundledCli: typeof runBundledCli } };
compiled.script
  .runInThisContext()
  .call(
    bundle.exports,
    bundle.exports,
    createRequire(filename),
    bundle,
    filename,
    fileURLToPath(new URL('.', import.meta.url)),
  );

const status = await bundle.exports.runBundledCli(process.argv.slice(2), (specifier) => import(specifier));
compiled.save();
// Whatever still holds the event loop (a terminal on stdin) must not keep a finished CLI alive; on
// Linux, writes to pipes and files are synchronous, so nothing written is lost.
process.exit(status);
