import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, expect, it, vi } from 'vitest';

// The README's example is run as written, so it cannot drift from the API.
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const example = /## Example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
const file = new URL(`./readme-example-${process.pid}.generated.ts`, import.meta.url);
afterAll(() => rmSync(file, { force: true }));

it('runs the README example: cat is executed and Landlock refuses /etc/shadow', async () => {
  expect(example).toBeDefined();
  writeFileSync(file, example!);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await import(file.href);
    expect(log).toHaveBeenCalledWith({ exitCode: 1, failure: undefined });
  } finally {
    log.mockRestore();
  }
});
