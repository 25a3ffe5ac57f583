import { cpSync, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { defineConfig } from 'tsup';

const shared = {
  format: ['esm'],
  sourcemap: true,
  target: 'node20',
} as const;

/** The outputs of the binary's configs, which the library's build must not clean away. */
const BINARY_OUTPUTS = ['cli.js', 'cli.js.map', 'cli-bundle.cjs', 'cli-bundle.cjs.map', 'linux/**'];

/** Where the bundle's copy of @bulkhead/linux finds its exec shim: `dist/linux/dist/native/`. */
const LINUX_FILES = 'linux';

/**
 * The exec shim (prebuilt, and its C source to rebuild it) belongs with the @bulkhead/linux code the
 * bundle carries, the same version: copied from that package's build, times kept. A copied source
 * newer than the copied binary is built here, as the package's own ensureShim() would at first use.
 */
async function copyLinuxShim(): Promise<void> {
  const linuxRoot = dirname(createRequire(import.meta.url).resolve('@bulkhead/linux/package.json'));
  const native = join(linuxRoot, 'dist', 'native');
  if (!existsSync(join(native, 'bulkhead-shim.c'))) {
    throw new Error(
      `${native} has no exec shim: build @bulkhead/linux first (npx turbo run build --filter=bulkhead...)`,
    );
  }
  const copy = join('dist', LINUX_FILES, 'dist', 'native');
  cpSync(native, copy, { recursive: true, preserveTimestamps: true });
  const source = join(copy, 'bulkhead-shim.c');
  const output = join(copy, 'bulkhead-shim');
  if (!existsSync(output) || statSync(output).mtimeMs < statSync(source).mtimeMs) {
    const { buildShim } = await import('@bulkhead/linux');
    await buildShim({ source, output });
  }
}

export default defineConfig([
  // The library (main(), createProgram()...). The configs build at once: this one cleans everything but
  // the binary's outputs. Tiers are packages found at run time here.
  {
    ...shared,
    entry: ['src/index.ts'],
    dts: true,
    external: [/^@bulkhead\//],
    clean: BINARY_OUTPUTS.map((output) => `!${output}`),
  },
  // The binary: a small ES module that compiles the bundle below with V8's code cache.
  {
    ...shared,
    entry: ['src/cli.ts'],
    banner: { js: '#!/usr/bin/env node' },
  },
  // Everything `bulkhead run` loads on the process tier, in one CommonJS file: Node 20 can cache the
  // compiled code of a script, not of ES modules, and resolving and compiling a dozen packages afresh
  // was most of the CLI's start-up. Native and optional pieces stay packages: koffi, yaml and the
  // libraries the manifest loads only when asked, OpenTelemetry, and every tier but the process tier
  // (plugins, imported through the binary's own import()).
  {
    ...shared,
    entry: ['src/cli-bundle.ts'],
    format: ['cjs'],
    outExtension: () => ({ js: '.cjs' }),
    // import.meta.url, as the bundled packages use it to find files and to require, is the bundle's.
    shims: true,
    noExternal: [
      /^@bulkhead\/(core|manifest|tier-process|linux|egress)$/,
      'commander',
      'picocolors',
      'valibot',
    ],
    external: [
      'koffi',
      'yaml',
      '@opentelemetry/api',
      '@valibot/to-json-schema',
      'fastest-levenshtein',
      /^@bulkhead\/tier-(session|microvm|wsl)$/,
    ],
    esbuildOptions(options) {
      // A script compiled by vm has no import(): bundled modules load through require, and the tiers
      // that are packages through the importer the binary hands in.
      options.supported = { ...options.supported, 'dynamic-import': false };
    },
    // The bundled @bulkhead/linux reads this to find its files (see its ensure-shim.ts).
    banner: {
      js: `const __BULKHEAD_LINUX_PACKAGE_ROOT__ = require("node:path").join(__dirname, ${JSON.stringify(LINUX_FILES)});`,
    },
    onSuccess: copyLinuxShim,
  },
]);
