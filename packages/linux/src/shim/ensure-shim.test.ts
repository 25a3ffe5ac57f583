import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { afterAll, describe, expect, it } from 'vitest';
import { buildShim, ensureShim } from './ensure-shim.js';

const source = new URL('../../native/bulkhead-shim.c', import.meta.url).pathname;
const scratch = mkdtempSync('/tmp/bulkhead-shim-build-');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('ensureShim', () => {
  it('returns the absolute path of an executable shim, the same each time', async () => {
    const path = await ensureShim();
    expect(isAbsolute(path)).toBe(true);
    expect(path.endsWith('/dist/native/bulkhead-shim')).toBe(true);
    accessSync(path, constants.X_OK);
    expect(await ensureShim()).toBe(path);
    expect(execFileSync(path, ['--', '/bin/echo', 'through the shim'], { encoding: 'utf8' })).toBe(
      'through the shim\n',
    );
  });
});

describe('buildShim', () => {
  it('builds the shim warning-free where asked', async () => {
    const output = join(scratch, 'shim');
    await buildShim({ source, output });
    expect(execFileSync(output, ['--', '/bin/echo', 'built'], { encoding: 'utf8' })).toBe('built\n');
  });

  it('names the package to install when there is no C compiler', async () => {
    const failure = buildShim({ source, output: join(scratch, 'never'), compiler: '/nonexistent/gcc' });
    await expect(failure).rejects.toSatisfy(
      (error) =>
        BulkheadError.hasCode(error, 'HOST_REQUIREMENT_MISSING') && error.fix === 'apt-get install gcc',
    );
  });

  it('says what the compiler said when the source does not compile', async () => {
    const failure = buildShim({ source: '/nonexistent/shim.c', output: join(scratch, 'never') });
    await expect(failure).rejects.toThrow(/could not be compiled[\s\S]*nonexistent\/shim\.c/);
  });
});
