import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, expect, it, vi } from 'vitest';
import { callerIsRoot } from './test-support.js';

// The README's example is run as written, so it cannot drift from the API.
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const example = /## Example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
const file = new URL(`./readme-example-${process.pid}.generated.ts`, import.meta.url);
afterAll(() => rmSync(file, { force: true }));

// The output the example shows is a root caller's (a transient id from 2000000000); an unprivileged
// caller's sandbox runs under one of its subordinate ids instead, which unprivileged.test.ts covers.
it.skipIf(!callerIsRoot)('runs the README example: a transient uid and a display of its own', async () => {
  expect(example).toBeDefined();
  writeFileSync(
    file,
    example!.replace('createSessionProvider({', 'createSessionProvider({ auditLog: false,'),
  );
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await import(file.href);
    expect(log).toHaveBeenCalledWith(expect.stringMatching(/^20000\d{5}\n1\n$/));
  } finally {
    log.mockRestore();
  }
});
