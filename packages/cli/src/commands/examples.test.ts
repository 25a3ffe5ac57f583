import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMxcConfig } from '@bulkhead/manifest';
import { describe, expect, it } from 'vitest';
import { capturedIo } from '../captured-io.js';
import { main } from '../main.js';

const EXAMPLES = fileURLToPath(new URL('../../../../examples/', import.meta.url));

function isMxc(file: string): boolean {
  if (!file.endsWith('.json')) return false;
  return isMxcConfig(JSON.parse(readFileSync(join(EXAMPLES, file), 'utf8')));
}

const files = readdirSync(EXAMPLES).filter((file) => /\.(ya?ml|json)$/.test(file));
const manifests = files.filter((file) => !isMxc(file));
const mxcConfigs = files.filter(isMxc);

async function bulkhead(...argv: string[]) {
  const io = capturedIo({ cwd: tmpdir() });
  const status = await main(argv, io);
  return { status, stdout: io.output(), stderr: io.errors() };
}

describe('the examples under examples/', () => {
  it('include manifests and MXC configs', () => {
    expect(manifests.length).toBeGreaterThan(0);
    expect(mxcConfigs.length).toBeGreaterThan(0);
  });

  it.each(manifests)('manifest explain %s prints its compiled capabilities', async (file) => {
    const result = await bulkhead('manifest', 'explain', join(EXAMPLES, file));
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/digest\s+sha256:[0-9a-f]{64}/);
    expect(result.stdout).toContain('Enforcement on this host, per tier:');
  });

  it.each(mxcConfigs)(
    'manifest import-mxc %s gives a manifest that checks, and check names it an MXC config',
    async (file) => {
      const imported = await bulkhead('manifest', 'import-mxc', join(EXAMPLES, file));
      expect(imported.status).toBe(0);
      expect(imported.stdout).toMatch(/^version: 1$/m);

      const checked = await bulkhead('manifest', 'check', join(EXAMPLES, file));
      expect(checked.status).toBe(1);
      expect(checked.stderr).toContain('is a Microsoft MXC config, not a Bulkhead manifest');
      expect(checked.stderr).toContain(
        `fix: convert it once: bulkhead manifest import-mxc ${join(EXAMPLES, file)} > bulkhead.yaml`,
      );
    },
  );
});
