import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reapStaleSessions, recordLeftovers } from './stale-sessions.js';

const sessions = await mkdtemp(join(tmpdir(), 'bulkhead-stale-sessions-'));
afterAll(() => rm(sessions, { recursive: true, force: true }));

const noActions = { remove: async () => {}, returnOwnership: async () => {} };

describe('reapStaleSessions', () => {
  it('removes a dead owner’s session whose note was torn (killed while writing it), and fails nothing', async () => {
    const dead = Number(spawnSync('/bin/sh', ['-c', 'echo $$']).stdout.toString().trim());
    const torn = join(sessions, `${dead}-prepared-0011223344556677`);
    await mkdir(join(torn, 'runtime'), { recursive: true });
    await writeFile(join(torn, 'leftovers.json'), '');
    const mine = join(sessions, `${process.pid}-abcdefgh-8899aabbccddeeff`);
    await mkdir(mine);
    expect(await reapStaleSessions(sessions, noActions)).toBe(1);
    expect(existsSync(torn)).toBe(false);
    // A live owner's session stays.
    expect(existsSync(mine)).toBe(true);
  });

  // Atomicity itself (rename into place) is not observable here; what is: the note round-trips and
  // its temporary file is gone.
  it('records the note the reaper reads, and leaves no temporary file beside it', async () => {
    const folder = join(sessions, `${process.pid}-note-0000000000000000`);
    await mkdir(folder);
    const note = { uid: 2_100_000_007, gid: 2_100_000_007, paths: ['/tmp/.X11-unix/X9'] };
    await recordLeftovers(folder, note);
    expect(JSON.parse(await readFile(join(folder, 'leftovers.json'), 'utf8'))).toEqual(note);
    expect(existsSync(join(folder, 'leftovers.json.tmp'))).toBe(false);
  });
});
