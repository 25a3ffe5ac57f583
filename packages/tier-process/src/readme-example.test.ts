import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, expect, it, vi } from 'vitest';

// The README's example is run as written, so it cannot drift from the API.
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const example = /## Example[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
const file = new URL(`./readme-example-${process.pid}.generated.ts`, import.meta.url);
afterAll(() => rmSync(file, { force: true }));

it('runs the README example: an unprivileged uid, and /etc/shadow refused', async () => {
  expect(example).toBeDefined();
  writeFileSync(file, example!);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await import(file.href);
    const expectedUid = process.getuid?.() === 0 ? 65534 : process.getuid?.();
    expect(log).toHaveBeenCalledWith(`${expectedUid}\nrefused\n`);
  } finally {
    log.mockRestore();
  }
});

const allowListExample = /## Network allow-lists[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
const allowListFile = new URL(`./readme-allowlist-${process.pid}.generated.ts`, import.meta.url);
afterAll(() => rmSync(allowListFile, { force: true }));

it('runs the README allow-list example: a host off the list is refused and reported', async () => {
  expect(allowListExample).toBeDefined();
  writeFileSync(allowListFile, allowListExample!);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await import(allowListFile.href);
    expect(log).toHaveBeenCalledWith(
      "CONNECT to example.com:443 refused: no allow rule matches example.com:443; the allow list is registry.npmjs.org:443. Fix: add 'example.com:443' to network.allow",
    );
  } finally {
    log.mockRestore();
  }
});
