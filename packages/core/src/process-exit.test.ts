import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packageDirectory = fileURLToPath(new URL('..', import.meta.url));
const viteNode = join(packageDirectory, '..', '..', 'node_modules', '.bin', 'vite-node');

describe('onProcessExit', () => {
  it('runs each action at exit, once, past a failing one, and not an action forgotten before', () => {
    const result = spawnSync(viteNode, ['src/fixtures/exit-actions.ts'], {
      cwd: packageDirectory,
      encoding: 'utf8',
    });
    expect(result.stdout, result.stderr).toBe('first\nafter the failure\n');
    expect(result.status).toBe(0);
  });
});
