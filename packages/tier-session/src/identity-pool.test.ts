import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BulkheadError } from '@bulkhead/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseAccountIdentity, leaseTransientIdentity } from './identity-pool.js';

const range = { firstUid: 3_900_000_000, firstGid: 3_900_000_100, count: 3 };

/** Another process holding the lock of `uid` the way a second caller would: util-linux's flock(1). */
async function holdInAnotherProcess(directory: string, uid: number): Promise<ChildProcess> {
  // --close: only flock itself holds the lock, not the command it waits for.
  const holder = spawn(
    'flock',
    ['--exclusive', '--close', join(directory, `${uid}.lock`), 'sh', '-c', 'echo held; exec sleep 60'],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    },
  );
  await new Promise<void>((resolve, reject) => {
    holder.stdout?.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`flock exited ${code}`)));
  });
  return holder;
}

describe('identity leases', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'bulkhead-session-ids-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('hands out each id of the range once, refuses when all are held, and reuses a released one', async () => {
    const leases = await Promise.all(
      [0, 1, 2].map(() => leaseTransientIdentity({ range, stateDirectory: directory })),
    );
    expect(new Set(leases.map((lease) => lease.uid))).toEqual(
      new Set([3_900_000_000, 3_900_000_001, 3_900_000_002]),
    );
    for (const lease of leases) expect(lease.gid - range.firstGid).toBe(lease.uid - range.firstUid);
    const exhausted = leaseTransientIdentity({ range, stateDirectory: directory });
    await expect(exhausted).rejects.toSatisfy((error) =>
      BulkheadError.hasCode(error, 'IDENTITY_POOL_EXHAUSTED'),
    );
    await leases[1]!.release();
    await leases[1]!.release();
    const again = await leaseTransientIdentity({ range, stateDirectory: directory });
    expect(again.uid).toBe(leases[1]!.uid);
    for (const lease of [leases[0]!, leases[2]!, again]) await lease.release();
    // Released ids leave no lock file behind.
    expect(await readdir(directory)).toEqual([]);
  });

  it('never hands out an id another process holds, and takes it back once that process dies', async () => {
    const holder = await holdInAnotherProcess(directory, range.firstUid);
    try {
      const taken = [];
      for (let attempt = 0; attempt < 2; attempt++) {
        taken.push(await leaseTransientIdentity({ range, stateDirectory: directory }));
      }
      expect(taken.map((lease) => lease.uid)).not.toContain(range.firstUid);
      await expect(leaseTransientIdentity({ range, stateDirectory: directory })).rejects.toThrow(
        /held by a running sandbox/,
      );
      // The holder crashes: the kernel drops its lock, and its id is free again.
      const exited = new Promise((resolve) => holder.once('exit', resolve));
      holder.kill('SIGKILL');
      await exited;
      const reclaimed = await leaseTransientIdentity({ range, stateDirectory: directory });
      expect(reclaimed.uid).toBe(range.firstUid);
      for (const lease of [...taken, reclaimed]) await lease.release();
    } finally {
      process.kill(-holder.pid!, 'SIGKILL');
    }
  });

  it('ignores a stale lock file whose holder is gone (a crash before release)', async () => {
    await writeFile(join(directory, `${range.firstUid}.lock`), '999999\n');
    const leases = await Promise.all(
      [0, 1, 2].map(() => leaseTransientIdentity({ range, stateDirectory: directory })),
    );
    expect(leases.map((lease) => lease.uid)).toContain(range.firstUid);
    for (const lease of leases) await lease.release();
  });

  it('lets one sandbox at a time use a named account', async () => {
    const first = await leaseAccountIdentity({
      name: 'agent',
      uid: 3_900_000_500,
      gid: 3_900_000_500,
      stateDirectory: directory,
    });
    const second = leaseAccountIdentity({
      name: 'agent',
      uid: 3_900_000_500,
      gid: 3_900_000_500,
      stateDirectory: directory,
    });
    await expect(second).rejects.toSatisfy((error) => BulkheadError.hasCode(error, 'IDENTITY_IN_USE'));
    await first.release();
    await delay(1);
    const third = await leaseAccountIdentity({
      name: 'agent',
      uid: 3_900_000_500,
      gid: 3_900_000_500,
      stateDirectory: directory,
    });
    await third.release();
  });
});

describe('identity leases: lock files a killed caller left', () => {
  it('are removed at the first lease of a process, except those another process holds', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'bulkhead-session-ids-'));
    // A caller killed by SIGKILL runs no exit clean-up: the files of the ids it held stay.
    const left = [range.firstUid + 1, range.firstUid + 2, 3_900_000_777];
    for (const uid of left) await writeFile(join(directory, `${uid}.lock`), '');
    const holder = await holdInAnotherProcess(directory, range.firstUid);
    try {
      const lease = await leaseTransientIdentity({ range, stateDirectory: directory });
      expect(lease.uid).toBe(range.firstUid + 1);
      expect((await readdir(directory)).sort()).toEqual(
        [`${range.firstUid}.lock`, `${range.firstUid + 1}.lock`].sort(),
      );
      await lease.release();
    } finally {
      process.kill(-holder.pid!, 'SIGKILL');
      await rm(directory, { recursive: true, force: true });
    }
  });
});
