import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { callerIsRoot } from './test-support.js';

const packageDirectory = fileURLToPath(new URL('..', import.meta.url));
const viteNode = fileURLToPath(new URL('../../../node_modules/.bin/vite-node', import.meta.url));
const driver = fileURLToPath(new URL('./fixtures/tiocsti-driver.ts', import.meta.url));

/**
 * Runs the driver in a real terminal (util-linux `script` gives it a pty as its controlling terminal),
 * then has the shell of that terminal read what reached its input. An injected line would be read.
 */
async function inTerminal(tier: 'session' | 'none', folder: string): Promise<string> {
  const shell = join(folder, `${tier}.sh`);
  await writeFile(
    shell,
    [
      `cd ${packageDirectory}`,
      `${viteNode} --config vitest.config.ts ${driver} ${tier} "$(tty)"`,
      'if read -t 3 line; then echo "terminal read: [$line]"; else echo "terminal read: nothing"; fi',
    ].join('\n'),
  );
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['--quiet', '--return', '--command', `bash ${shell}`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', () => resolve(output.replaceAll('\r', '')));
  });
}

describe("the caller's terminal", () => {
  let folder: string;
  afterAll(async () => {
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  // The control: with no isolation the same payload does inject (this host has dev.tty.legacy_tiocsti
  // = 1), which proves the terminal check below can fail.
  it('receives injected keystrokes from an unisolated payload (control)', async () => {
    folder ??= await mkdtemp(join(tmpdir(), 'bulkhead-session-tty-'));
    const output = await inTerminal('none', folder);
    expect(output).toMatch(/ESCAPED/);
    expect(output).toMatch(/terminal read: \[INJECTED\]/);
  });

  it.skipIf(!callerIsRoot)(
    'receives nothing from a session sandbox: no terminal, TIOCSTI refused',
    async () => {
      folder ??= await mkdtemp(join(tmpdir(), 'bulkhead-session-tty-'));
      const output = await inTerminal('session', folder);
      expect(output).toMatch(/exit 0/);
      for (const name of ['fd0', 'fd1', 'fd2', '/dev/tty'])
        expect(output).toMatch(new RegExp(`${name} refused`));
      // seccomp refuses the ioctl itself (EPERM), even on a pty the sandbox made for itself.
      expect(output).toMatch(/own-pty refused \w+ 1\b/);
      expect(output).toMatch(/tioclinux refused \w+ 1\b/);
      expect(output).not.toMatch(/ESCAPED/);
      expect(output).toMatch(/terminal read: nothing/);
    },
  );
});
