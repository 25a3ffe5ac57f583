import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

const PREFIX = 'cli-code-cache-';

export interface CachedScript {
  /** The compiled script: running it in this context returns the CommonJS wrapper function. */
  script: Script;
  /** True when V8 took its code from the cache instead of compiling the source. */
  fromCache: boolean;
  /**
   * Writes the cache when none was used, best after the script did its work: V8 then keeps the
   * functions it compiled along the way, not only the top level. Never throws.
   */
  save(): void;
}

/**
 * The cache is V8's compiled form of exactly this source under exactly this Node and these flags, so
 * it can never change what the code does, only how soon it starts; V8 rejects it on its own when its
 * version or flags differ, and the content hash keeps an edited file from meeting an old entry.
 */
function cacheKey(source: string): string {
  return createHash('sha256')
    .update(source)
    .update(`\0${process.version}\0${process.arch}\0${process.execArgv.join(' ')}`)
    .digest('hex')
    .slice(0, 32);
}

/** The cache file's bytes, or undefined: a missing file, a link, or one another user could have written is never used. */
function readOwnFile(path: string): Buffer | undefined {
  let descriptor: number | undefined;
  try {
    descriptor = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    const status = fstatSync(descriptor);
    // Compiled code runs as the caller: only the caller may have written it.
    const ownUid = process.getuid?.() ?? status.uid;
    if (!status.isFile() || status.uid !== ownUid || (status.mode & 0o022) !== 0) return undefined;
    return readFileSync(descriptor);
  } catch {
    return undefined;
  } finally {
    if (descriptor !== undefined) closeSync(descriptor);
  }
}

/**
 * How many entries stay: one per Node flag set in use (a benchmark with --cpu-prof beside plain runs),
 * so that alternating ones do not evict each other; older ones, from earlier versions of the file,
 * would only take space.
 */
const KEPT_ENTRIES = 4;

function removeOldEntries(directory: string): void {
  const entries = readdirSync(directory)
    .filter((name) => name.startsWith(PREFIX) && name.endsWith('.bin'))
    .map((name) => ({ path: join(directory, name), modified: statSync(join(directory, name)).mtimeMs }))
    .sort((left, right) => right.modified - left.modified);
  for (const entry of entries.slice(KEPT_ENTRIES)) rmSync(entry.path, { force: true });
}

/**
 * Makes the cache folder, and at most its parent (a new account's `~/.cache`). Never `recursive`:
 * Node's recursive mkdir loops forever where the kernel answers ENOENT under a folder that exists
 * (an XDG_RUNTIME_DIR under /proc, say), and a cache is not worth a hang.
 */
function makeFolder(directory: string): void {
  try {
    mkdirSync(directory, { mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT') throw error;
    mkdirSync(dirname(directory), { mode: 0o700 });
    mkdirSync(directory, { mode: 0o700 });
  }
}

/**
 * Compiles a CommonJS file's `source` as Node would wrap it, with V8's code cache from `directory`
 * when one for this source is there (a cold compile otherwise). Anything wrong with the cache (missing,
 * stale, rejected, unreadable, unwritable) costs only the compile it would have saved.
 */
export function compileWithCodeCache(options: {
  source: string;
  filename: string;
  directory: string;
}): CachedScript {
  const key = cacheKey(options.source);
  const path = join(options.directory, `${PREFIX}${key}.bin`);
  const cachedData = readOwnFile(path);
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${options.source}\n})`,
    { filename: options.filename, ...(cachedData ? { cachedData } : {}) },
  );
  const fromCache = cachedData !== undefined && script.cachedDataRejected === false;
  return {
    script,
    fromCache,
    save: () => {
      if (fromCache) return;
      const temporary = `${path}.${process.pid}.tmp`;
      try {
        makeFolder(options.directory);
        writeFileSync(temporary, script.createCachedData(), { mode: 0o600, flag: 'wx' });
        renameSync(temporary, path);
        removeOldEntries(options.directory);
      } catch {
        try {
          rmSync(temporary, { force: true });
        } catch {
          // There was no folder to write it in.
        }
      }
    },
  };
}
