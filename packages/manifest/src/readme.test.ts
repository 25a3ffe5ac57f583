import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileManifest } from './compile.js';
import { parseManifest } from './manifest-document.js';
import { parsePolicy } from './policy.js';
import { knownKeys, ManifestSchema } from './schema.js';

// The README is documentation users copy from: its examples must stay valid and its reference complete.
const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../README.md'), 'utf8');
const yamlBlocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');

describe('README', () => {
  it('its manifest example parses and compiles', () => {
    const compiled = compileManifest(
      parseManifest(yamlBlocks[0]!, { path: '/projects/demo/bulkhead.yaml' }),
      {
        cwd: '/projects/demo',
        home: '/home/dev',
        env: {},
        policy: null,
      },
    );
    expect(compiled.capabilities.network.mode).toBe('allowlist');
  });

  it('its policy example parses', () => {
    expect(parsePolicy(yamlBlocks[1]!).policy.internet).toBe('forbidden');
  });

  it('its reference table names every manifest key', () => {
    const keys = knownKeys(ManifestSchema);
    const leaves: string[] = [];
    for (const [parent, children] of keys) {
      for (const child of children) {
        const path = parent ? `${parent}.${child}` : child;
        if (!keys.has(path)) leaves.push(path);
      }
    }
    expect(leaves.length).toBeGreaterThan(20);
    const rows = new Set([...readme.matchAll(/^\| `([^`]+)` +\|/gm)].map((match) => match[1]));
    for (const leaf of leaves) expect(rows.has(leaf), `README row for ${leaf}`).toBe(true);
  });
});
