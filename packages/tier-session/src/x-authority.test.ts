import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callerCookies, decodeAuthority, encodeAuthority, FAMILY_LOCAL, FAMILY_WILD } from './x-authority.js';

describe('Xauthority files', () => {
  let folder: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'bulkhead-xauthority-'));
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('writes what xauth reads, and reads what xauth writes', async () => {
    const path = join(folder, 'written');
    await writeFile(
      path,
      encodeAuthority([
        {
          family: FAMILY_WILD,
          address: Buffer.alloc(0),
          number: '42',
          name: 'MIT-MAGIC-COOKIE-1',
          data: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
        },
      ]),
    );
    expect(execFileSync('xauth', ['-f', path, 'list'], { encoding: 'utf8' })).toMatch(
      /#ffff##:42\s+MIT-MAGIC-COOKIE-1\s+00112233445566778899aabbccddeeff/,
    );
    const byXauth = join(folder, 'by-xauth');
    execFileSync('xauth', [
      '-f',
      byXauth,
      'add',
      'somehost/unix:7',
      'MIT-MAGIC-COOKIE-1',
      'ffeeddccbbaa99887766554433221100',
    ]);
    execFileSync('xauth', [
      '-f',
      byXauth,
      'add',
      'somehost/unix:8',
      'MIT-MAGIC-COOKIE-1',
      '0f0e0d0c0b0a09080706050403020100',
    ]);
    const entries = decodeAuthority(await readFile(byXauth));
    expect(
      entries.map((entry) => [
        entry.family,
        entry.address.toString(),
        entry.number,
        entry.data.toString('hex'),
      ]),
    ).toEqual([
      [FAMILY_LOCAL, 'somehost', '7', 'ffeeddccbbaa99887766554433221100'],
      [FAMILY_LOCAL, 'somehost', '8', '0f0e0d0c0b0a09080706050403020100'],
    ]);
    // Only the asked display's cookie is handed on, made wild for the sandbox's own host name.
    expect(await callerCookies(byXauth, '8')).toEqual([
      expect.objectContaining({ family: FAMILY_WILD, address: Buffer.alloc(0), number: '8' }),
    ]);
    expect(await callerCookies(join(folder, 'missing'), '8')).toEqual([]);
  });

  it('ignores a truncated tail', () => {
    const whole = encodeAuthority([
      {
        family: FAMILY_WILD,
        address: Buffer.alloc(0),
        number: '1',
        name: 'MIT-MAGIC-COOKIE-1',
        data: Buffer.alloc(16, 1),
      },
      {
        family: FAMILY_WILD,
        address: Buffer.alloc(0),
        number: '2',
        name: 'MIT-MAGIC-COOKIE-1',
        data: Buffer.alloc(16, 2),
      },
    ]);
    expect(decodeAuthority(whole.subarray(0, whole.length - 3)).map((entry) => entry.number)).toEqual(['1']);
  });
});
