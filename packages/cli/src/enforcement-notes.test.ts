import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { capturedIo } from './captured-io.js';
import { isInformationalNote } from './enforcement-notes.js';
import { main } from './main.js';
import { standInImporter, standInProvider } from './stand-in-tier.js';

// Worded as @bulkhead/linux's Landlock planner and the tiers word them today.
const SPLIT_READ =
  'the read grant of /etc was split into 143 entries to keep /etc/gshadow denied: entries added later directly in the directories from /etc down to /etc are not readable';
const SPLIT_WRITE =
  'the write grant of /work was split into 4 entries to keep /work/.env denied: entries cannot be created, removed or renamed directly in the directories from /work down to /work';
const SPLIT_MISSING =
  '/work/secret/key does not exist yet, so the grant of /work was split only down to /work/secret (3 entries): /work/secret/key stays denied, but nothing new can be created in /work/secret';
const UNLISTABLE =
  '/work/private could not be listed (EACCES) to split the grant of /work around the denied /work/private/key: nothing in it is granted';
const WEAKENINGS = [
  'Swap is not capped (cgroup v1 without swap accounting; boot with swapaccount=1): the memory cap counts RAM only.',
  "No writable memory cgroup: RLIMIT_AS (1073741824 bytes) caps each process's address space, not the sandbox's total.",
  '/work/.env is denied but does not exist inside a writable grant: the payload could create it there',
  '/etc/link is denied but is a symbolic link: deny its target instead',
  'Landlock ABI 2: truncate() of files in read-only grants is not refused',
  'The exec shim failed before the payload ran: something',
  // A split note worded so that it no longer says the deny is kept: printed, not guessed at.
  'the read grant of /etc was split into 143 entries',
];

describe('which notes a default run keeps quiet', () => {
  it.each([SPLIT_READ, SPLIT_WRITE, SPLIT_MISSING, UNLISTABLE])('narrowing only: %s', (note) => {
    expect(isInformationalNote(note)).toBe(true);
  });

  it.each(WEAKENINGS)('a setting honoured only partly, always printed: %s', (warning) => {
    expect(isInformationalNote(warning)).toBe(false);
  });
});

describe('bulkhead run with a tier that leaves notes', () => {
  let directory: string;
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'bulkhead-cli-notes-'));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const swap = WEAKENINGS[0] ?? '';
  async function run(flags: string[]) {
    const importer = standInImporter({
      '@bulkhead/tier-process': {
        createProcessProvider: () => standInProvider('process', { warnings: [SPLIT_READ, swap] }),
      },
    });
    const io = capturedIo({ cwd: directory });
    const status = await main(['run', ...flags, '--', 'true'], io, { importModule: importer });
    return { status, stderr: io.errors() };
  }

  it('prints a weakening plainly on a default run, and not the notes that weaken nothing', async () => {
    const result = await run([]);
    expect(result.status).toBe(0);
    expect(result.stderr).toBe(`bulkhead: warning: ${swap}\n`);
  });

  it('lists every note with --verbose', async () => {
    const result = await run(['--verbose']);
    expect(result.stderr).toContain(`bulkhead: warning: ${swap}`);
    expect(result.stderr).toContain(`bulkhead: warning: ${SPLIT_READ}`);
  });

  it('keeps every note in the --json result, and still says the weakening', async () => {
    const result = await run(['--json']);
    const lines = result.stderr.trim().split('\n');
    expect(JSON.parse(lines.at(-1) ?? '').warnings).toEqual([SPLIT_READ, swap]);
    expect(lines.slice(0, -1)).toEqual([`bulkhead: warning: ${swap}`]);
  });
});
