import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));

// The README's example, run as written (only its workspace moved to a fresh directory), so that the
// snippet cannot drift from the code.
it('the README example runs and does what the README says', async () => {
  const readme = readFileSync(join(here, '..', 'README.md'), 'utf8');
  const example = /## Example\n\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(example, 'the README has a ts example').toBeDefined();
  const workspace = await realpath(await mkdtemp(join(tmpdir(), 'bulkhead-microvm-readme-')));
  await chmod(workspace, 0o755);
  const module = join(here, `.readme-example-${process.pid}.ts`);
  const source = example!
    .replace("from '@bulkhead/tier-microvm'", "from './index.js'")
    .replace("const workspace = '/tmp';", `const workspace = ${JSON.stringify(workspace)};`)
    .replace('console.log(', 'export const printed = (');
  try {
    await writeFile(module, `${source}\nexport { result };\n`);
    const { result } = (await import(module)) as {
      result: { exitCode: number; stdout: string; stderr: string };
    };
    expect(result.stdout).toMatch(/^6\.\d+\.\d+/);
    expect(result.stderr).toMatch(/shadow/);
    expect(result.exitCode).not.toBe(0);
    expect(await readFile(join(workspace, 'greeting'), 'utf8')).toBe('hello\n');
  } finally {
    if (existsSync(module)) await rm(module);
    await rm(workspace, { recursive: true, force: true });
  }
});
