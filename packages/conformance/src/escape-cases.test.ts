import type { SandboxResult } from '@bulkhead/core';
import { describe, expect, it } from 'vitest';
import { CONFORMANCE_TESTS } from './conformance-tests.js';
import { ESCAPE_CASE_IDS } from './escape-case-ids.js';
import { ESCAPE_CASES, type EscapeObservation, judgeByHelper, parseHelperVerdict } from './escape-cases.js';

const result = (change: Partial<SandboxResult> = {}): SandboxResult => ({
  exitCode: 0,
  signal: null,
  timedOut: false,
  canceled: false,
  oomKilled: false,
  durationMs: 1,
  violations: [],
  warnings: [],
  enforcement: {},
  ...change,
});

const observe = (stdout: string, change: Partial<SandboxResult> = {}): EscapeObservation => {
  const helper = parseHelperVerdict(stdout);
  return { stdout, stderr: '', result: result(change), ...(helper ? { helper } : {}) };
};

describe('the escape corpus data', () => {
  it('has one case per id, in the order of the ids, each with a description', () => {
    expect(ESCAPE_CASES.map((escapeCase) => escapeCase.id)).toEqual([...ESCAPE_CASE_IDS]);
    for (const escapeCase of ESCAPE_CASES) {
      expect(escapeCase.title.length, escapeCase.id).toBeGreaterThan(10);
      expect(escapeCase.attempts.length, escapeCase.id).toBeGreaterThan(10);
    }
  });

  it('names every behaviour test and escape case once among the test names', () => {
    expect(new Set(CONFORMANCE_TESTS).size).toBe(CONFORMANCE_TESTS.length);
  });
});

describe('judging the helper', () => {
  it('takes the last verdict line of the helper', () => {
    expect(parseHelperVerdict('noise\nREFUSED read /x: ENOENT\nESCAPED read /y: 3 bytes: abc\n')).toEqual({
      verdict: 'ESCAPED',
      detail: 'read /y: 3 bytes: abc',
    });
    expect(parseHelperVerdict('nothing to see')).toBeUndefined();
  });

  it('calls a run without a verdict inconclusive, so a helper that never ran cannot pass as refused', () => {
    expect(judgeByHelper(observe('', { exitCode: 127 })).outcome).toBe('inconclusive');
    expect(judgeByHelper(observe('ERROR bad usage\n', { exitCode: 2 })).outcome).toBe('inconclusive');
  });

  it('counts a seccomp kill as a refusal', () => {
    expect(judgeByHelper(observe('', { exitCode: null, signal: 'SIGSYS' })).outcome).toBe('refused');
  });

  const readCase = ESCAPE_CASES.find((escapeCase) => escapeCase.id === 'read-outside-grant')!;
  const context = { token: 'cafe0123' } as Parameters<typeof readCase.judge>[1];

  it('calls a read an escape only when the secret came out', async () => {
    expect((await readCase.judge(observe('ESCAPED read /s: 9 bytes: x-cafe0123\n'), context)).outcome).toBe(
      'escaped',
    );
    expect((await readCase.judge(observe('ESCAPED read /s: 0 bytes: \n'), context)).outcome).toBe('refused');
    expect((await readCase.judge(observe('REFUSED read /s: ENOENT\n'), context)).outcome).toBe('refused');
  });

  it('wants oomKilled, not a silent SIGKILL, from a tier that stops a memory hog', async () => {
    const hog = ESCAPE_CASES.find((escapeCase) => escapeCase.id === 'memory-hog')!;
    expect(
      (await hog.judge(observe('', { exitCode: null, signal: 'SIGKILL', oomKilled: true }), context)).outcome,
    ).toBe('refused');
    expect((await hog.judge(observe('', { exitCode: null, signal: 'SIGKILL' }), context)).outcome).toBe(
      'inconclusive',
    );
    expect((await hog.judge(observe('ESCAPED allocated and touched 256 MiB\n'), context)).outcome).toBe(
      'escaped',
    );
  });
});
