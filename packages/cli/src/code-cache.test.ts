import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compileWithCodeCache } from './code-cache.js';

const SOURCE = 'module.exports = function greet(name) { return "hello " + name; };';

let directory: string;
beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'bulkhead-code-cache-'));
});
afterEach(() => rmSync(directory, { recursive: true, force: true }));

let loads = 0;

/**
 * Compiles and runs `source` as the binary does, and returns what it exported. Each load names its
 * own file, as V8 would otherwise answer a second compile in this process from its in-memory cache
 * without looking at the cache file, which is what these tests are about.
 */
function load(source: string, cacheDirectory = directory) {
  loads += 1;
  const compiled = compileWithCodeCache({
    source,
    filename: join(directory, `bundle-${loads}.cjs`),
    directory: cacheDirectory,
  });
  const module = { exports: {} as unknown };
  compiled.script
    .runInThisContext()
    .call(module.exports, module.exports, createRequire(import.meta.url), module, 'bundle.cjs', directory);
  return { compiled, exports: module.exports as (name: string) => string };
}

const entries = () => readdirSync(directory).filter((name) => name.startsWith('cli-code-cache-'));

describe('the V8 code cache of the bulkhead binary', () => {
  it('compiles afresh the first time, keeps the cache for the caller only, and uses it the next time', () => {
    const first = load(SOURCE);
    expect(first.exports('world')).toBe('hello world');
    expect(first.compiled.fromCache).toBe(false);
    first.compiled.save();
    expect(entries()).toHaveLength(1);
    expect(statSync(join(directory, entries()[0] ?? '')).mode & 0o777).toBe(0o600);

    const second = load(SOURCE);
    expect(second.compiled.fromCache).toBe(true);
    expect(second.exports('again')).toBe('hello again');
  });

  it('never meets an edited source with the old entry', () => {
    load(SOURCE).compiled.save();
    const edited = load(SOURCE.replace('hello', 'howdy'));
    expect(edited.compiled.fromCache).toBe(false);
    expect(edited.exports('world')).toBe('howdy world');
  });

  it('keeps the four newest entries (one per Node flag set in use), not every old one', () => {
    const written: string[] = [];
    for (let version = 0; version < 6; version++) {
      const before = new Set(entries());
      load(SOURCE.replace('hello', `hello v${version}`)).compiled.save();
      const [name] = entries().filter((entry) => !before.has(entry));
      written.push(name ?? '');
      // Entries written within one clock tick would tie: each is made older than the next.
      utimesSync(join(directory, name ?? ''), new Date(), new Date(Date.now() - (6 - version) * 60_000));
    }
    expect(entries().sort()).toEqual(written.slice(2).sort());
  });

  it('ignores a damaged cache file (V8 rejects it) and replaces it', () => {
    load(SOURCE).compiled.save();
    const [name] = entries();
    writeFileSync(join(directory, name ?? ''), 'not V8 code', { mode: 0o600 });
    const damaged = load(SOURCE);
    expect(damaged.compiled.fromCache).toBe(false);
    expect(damaged.exports('world')).toBe('hello world');
    damaged.compiled.save();
    expect(load(SOURCE).compiled.fromCache).toBe(true);
  });

  it('ignores a cache file others may write, and a link in its place', () => {
    load(SOURCE).compiled.save();
    const path = join(directory, entries()[0] ?? '');
    chmodSync(path, 0o666);
    expect(load(SOURCE).compiled.fromCache).toBe(false);

    // A link to a genuine entry is not followed either: whoever made the link chose the file.
    chmodSync(path, 0o600);
    const genuine = join(directory, 'genuine.bin');
    renameSync(path, genuine);
    symlinkSync(genuine, path);
    expect(load(SOURCE).compiled.fromCache).toBe(false);
  });

  // Only root can give a file to another user; as anyone else there is no such file to test with.
  it.skipIf(process.getuid?.() !== 0)('ignores a cache file another user owns', () => {
    load(SOURCE).compiled.save();
    chownSync(join(directory, entries()[0] ?? ''), 65534, 65534);
    expect(load(SOURCE).compiled.fromCache).toBe(false);
  });

  it('runs the same when the cache folder cannot be made (the compile is all it costs)', () => {
    const file = join(directory, 'a-file');
    writeFileSync(file, '');
    const unwritable = join(file, 'bulkhead');
    const loaded = load(SOURCE, unwritable);
    expect(loaded.exports('world')).toBe('hello world');
    expect(() => loaded.compiled.save()).not.toThrow();
    expect(existsSync(unwritable)).toBe(false);
    expect(readdirSync(directory)).toEqual(['a-file']);
  });
});
