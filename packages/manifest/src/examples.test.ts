import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileManifest } from './compile.js';
import { explainCapabilities } from './explain.js';
import { loadManifest, parseManifest } from './manifest-document.js';
import { isMxcConfig, loadMxcConfig } from './mxc-import.js';
import { starterManifest } from './starter-manifest.js';

const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../examples');
const files = readdirSync(EXAMPLES).filter((name) => /\.(ya?ml|json)$/.test(name));
const options = { cwd: '/projects/demo', home: '/home/dev', env: { LANG: 'C.UTF-8' }, policy: null };

describe('examples/', () => {
  it('has four to six manifests and an MXC config', () => {
    expect(files.length).toBeGreaterThanOrEqual(5);
    expect(files).toContain('mxc-config.json');
  });

  it.each(files)('%s compiles', async (name) => {
    const path = join(EXAMPLES, name);
    const raw = JSON.parse(name.endsWith('.json') ? await readFile(path, 'utf8') : '{}') as unknown;
    if (isMxcConfig(raw)) {
      const imported = await loadMxcConfig(path);
      const compiled = compileManifest(imported.manifest, { ...options, baseDir: EXAMPLES });
      expect(imported.command?.[0]).toBe('/bin/sh');
      expect(compiled.capabilities.network.mode).toBe('allowlist');
      return;
    }
    const compiled = compileManifest(await loadManifest(path), options);
    expect(compiled.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(explainCapabilities(compiled)).toContain('minimum tier');
  });

  it('read-only-review.yaml makes the workspace read-only and refuses spawn', async () => {
    const compiled = compileManifest(await loadManifest(join(EXAMPLES, 'read-only-review.yaml')), options);
    expect(compiled.capabilities.filesystem.write).toEqual([]);
    expect(compiled.capabilities.filesystem.read).toContain('/projects/demo');
    expect(compiled.capabilities.filesystem.deny).toContain('/projects/demo/.git/config');
    expect(compiled.capabilities.process.spawn).toBe(false);
    expect(compiled.capabilities.env).toEqual({});
  });

  it('python-agent-allowlist.yaml reaches only its endpoints, as its own identity', async () => {
    const compiled = compileManifest(
      await loadManifest(join(EXAMPLES, 'python-agent-allowlist.yaml')),
      options,
    );
    expect(compiled.minimumTier).toBe('session');
    expect(compiled.capabilities.network.allow.map((endpoint) => endpoint.host)).toEqual([
      'api.anthropic.com',
      'api.openai.com',
      'files.pythonhosted.org',
      'pypi.org',
    ]);
    expect(compiled.capabilities.identity).toEqual({ name: 'python-agent' });
    // The manifest sits in examples/, so "." is examples/ and ./agent-workdir is beside it.
    expect(compiled.capabilities.filesystem.write).toContain(join(EXAMPLES, 'agent-workdir'));
  });
});

describe('starterManifest', () => {
  it('parses and compiles to exactly the defaults, so it documents them truthfully', () => {
    const document = parseManifest(starterManifest(), { path: '/projects/demo/bulkhead.yaml' });
    const starter = compileManifest(document, options);
    const defaults = compileManifest(undefined, options);
    // The starter's one addition: .env in the workspace is denied.
    expect(starter.capabilities.filesystem.deny).toEqual(
      [...defaults.capabilities.filesystem.deny, '/projects/demo/.env'].sort(),
    );
    expect({ ...starter.capabilities, filesystem: null }).toEqual({
      ...defaults.capabilities,
      filesystem: null,
    });
  });
});

describe('explainCapabilities', () => {
  it('lists each capability and marks defaults', () => {
    const text = explainCapabilities(
      compileManifest(
        parseManifest(
          'version: 1\nresources: { memory: 2GiB }\nnetwork: { allow: ["api.example.com:443"] }\n',
        ),
        options,
      ),
    );
    expect(text).toContain('memory         2 GiB\n');
    expect(text).toContain('timeout        10m  (default)');
    expect(text).toContain('  allow  api.example.com:443');
    expect(text).toContain('  read   /usr  (default)');
    expect(text).toContain('  write  /projects/demo  (default)');
  });
});
