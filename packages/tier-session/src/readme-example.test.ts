import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, expect, it, vi } from 'vitest';
import { callerIsRoot } from './test-support.js';

// The README's example is run as written, so it cannot drift from the API.
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const example = /## Example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
const file = new URL(`./readme-example-${process.pid}.generated.ts`, import.meta.url);
afterAll(() => rmSync(file, { force: true }));

// The example runs as a root caller; an unprivileged one on this host (cgroup v1) is refused, which
// unprivileged.test.ts proves.
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
