// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell their variables ${...}
import { existsSync } from 'node:fs';
import { BulkheadError, capabilitiesDigest } from '@bulkhead/core';
import { describe, expect, it } from 'vitest';
import { type CompileOptions, compileManifest, defaultCapabilities } from './compile.js';
import { parseManifest } from './manifest-document.js';
import { applyOverrides } from './overrides.js';
import type { ManifestV1 } from './schema.js';

const OPTIONS: CompileOptions = {
  cwd: '/projects/demo',
  home: '/home/dev',
  env: { LANG: 'C.UTF-8', TERM: 'xterm', SECRET_TOKEN: 'hunter2', DATA: '/data' },
  policy: null,
};

function compileYaml(source: string, options: CompileOptions = {}) {
  return compileManifest(parseManifest(source, { path: '/projects/demo/config/bulkhead.yaml' }), {
    ...OPTIONS,
    ...options,
  });
}

function compileFailure(run: () => unknown): BulkheadError {
  try {
    run();
  } catch (error) {
    expect(BulkheadError.isInstance(error)).toBe(true);
    return error as BulkheadError;
  }
  throw new Error('expected a failure');
}

describe('defaults (no manifest)', () => {
  const compiled = compileManifest(undefined, OPTIONS);
  const { capabilities } = compiled;

  it('reads the system folders present on this host, never home or /root', () => {
    for (const path of ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc', '/opt']) {
      expect(capabilities.filesystem.read.includes(path)).toBe(existsSync(path));
    }
    expect(capabilities.filesystem.read).not.toContain('/home/dev');
    expect(capabilities.filesystem.read).not.toContain('/root');
    expect(capabilities.filesystem.read).not.toContain('/');
  });

  it('denies the secrets in /etc that exist here', () => {
    for (const path of ['/etc/shadow', '/etc/gshadow', '/etc/sudoers', '/etc/ssl/private', '/etc/shadow-']) {
      expect(capabilities.filesystem.deny.includes(path)).toBe(existsSync(path));
    }
    expect(capabilities.filesystem.deny).toContain('/etc/shadow');
    expect(capabilities.filesystem.deny).not.toContain('/etc/passwd');
  });

  it('reads and writes the workspace, which is the working directory', () => {
    expect(capabilities.filesystem.write).toEqual(['/projects/demo']);
    expect(capabilities.workdir).toBe('/projects/demo');
  });

  it('has no network, spawn up to 256 processes, 1 GiB, 10 minutes, no devices, no GPU', () => {
    expect(capabilities.network).toEqual({ mode: 'none', allow: [] });
    expect(capabilities.process).toEqual({ spawn: true, maxProcesses: 256 });
    expect(capabilities.resources).toEqual({ memoryBytes: 2 ** 30, timeoutMs: 600_000, gpus: 'none' });
    expect(Object.values(capabilities.devices)).toEqual([false, false, false, false, false]);
    expect(capabilities.identity).toBeUndefined();
  });

  it('passes only LANG and TERM from the environment', () => {
    expect(capabilities.env).toEqual({ LANG: 'C.UTF-8', TERM: 'xterm' });
    expect(compileManifest(undefined, { ...OPTIONS, env: { PATH: '/bin' } }).capabilities.env).toEqual({});
  });

  it('marks every value it defaulted, and is the process tier', () => {
    expect(compiled.minimumTier).toBe('process');
    expect(compiled.defaulted).toContain('resources.memory');
    expect(compiled.defaulted).toContain('network.allow');
    expect(compiled.defaulted).toContain('tier');
    expect(compiled.pathOrigins?.['/usr']).toBe('default');
    expect(compiled.digest).toBe(capabilitiesDigest(capabilities));
  });

  it('equals defaultCapabilities() and a manifest that says only version: 1', () => {
    expect(defaultCapabilities(OPTIONS)).toEqual(capabilities);
    expect(compileYaml('version: 1\n').capabilities).toEqual(capabilities);
  });

  it('does not grant the home folder when run from it, and says so', () => {
    const fromHome = compileManifest(undefined, { ...OPTIONS, cwd: '/home/dev' });
    expect(fromHome.capabilities.filesystem.write).toEqual([]);
    expect(fromHome.warnings.join('\n')).toContain('/home/dev is your home folder');
    expect(fromHome.warnings.join('\n')).toContain('is not readable in the sandbox');
    expect(compileManifest(undefined, { ...OPTIONS, cwd: '/' }).capabilities.filesystem.write).toEqual([]);
    expect(compileManifest(undefined, { ...OPTIONS, cwd: '/home' }).capabilities.filesystem.write).toEqual(
      [],
    );
  });
});

describe('every field', () => {
  it('tier', () => {
    expect(compileYaml('version: 1\ntier: microvm\n').minimumTier).toBe('microvm');
  });

  it('filesystem: relative to the manifest folder, ~, ${workspace}, ${env:NAME}, normalised', () => {
    const { capabilities } = compileYaml(
      [
        'version: 1',
        'filesystem:',
        '  read: [../src, ~/.gitconfig, "${env:DATA}/set/"]',
        '  write: ["${workspace}/out//", ../../other/cache/../tmp]',
        '  deny: [~/.gitconfig-secret, "${workspace}/out/keys"]',
        '',
      ].join('\n'),
    );
    expect(capabilities.filesystem.read).toEqual(
      expect.arrayContaining(['/projects/demo/src', '/home/dev/.gitconfig', '/data/set']),
    );
    expect(capabilities.filesystem.write).toEqual(expect.arrayContaining(['/projects/other/tmp']));
    expect(capabilities.filesystem.deny).toContain('/projects/demo/out/keys');
    // Inside the workspace, which is writable already: not repeated.
    expect(capabilities.filesystem.write).not.toContain('/projects/demo/out');
    // Outside every grant: already denied, so not listed.
    expect(capabilities.filesystem.deny).not.toContain('/home/dev/.gitconfig-secret');
  });

  it('baseDir and workspace options', () => {
    const manifest: ManifestV1 = { version: 1, filesystem: { read: ['lib', '${workspace}/docs'] } };
    const { capabilities } = compileManifest(manifest, {
      ...OPTIONS,
      baseDir: '/srv/tool',
      workspace: '/srv/repo',
    });
    expect(capabilities.filesystem.read).toEqual(expect.arrayContaining(['/srv/tool/lib']));
    expect(capabilities.filesystem.write).toEqual(['/srv/repo']);
    // /srv/repo/docs is inside the writable workspace, so naming it in read makes it read-only.
    expect(capabilities.filesystem.read).toContain('/srv/repo/docs');
    expect(capabilities.workdir).toBe('/projects/demo');
  });

  it('network.internet', () => {
    expect(compileYaml('version: 1\nnetwork: { internet: true }\n').capabilities.network).toEqual({
      mode: 'open',
      allow: [],
    });
    expect(compileYaml('version: 1\nnetwork: { internet: false }\n').capabilities.network).toEqual({
      mode: 'none',
      allow: [],
    });
  });

  it('network.allow: parsed, deduplicated, sorted; no port means 443 and 80', () => {
    const { capabilities } = compileYaml(
      'version: 1\nnetwork:\n  allow: [API.Example.com., "api.example.com:443", "*.GitHub.com:22", "[::1]:8080", 10.1.2.3/8]\n',
    );
    expect(capabilities.network.mode).toBe('allowlist');
    expect(capabilities.network.allow).toEqual([
      { host: '*.github.com', port: 22 },
      { host: '10.0.0.0/8', port: 80 },
      { host: '10.0.0.0/8', port: 443 },
      { host: '::1', port: 8080 },
      { host: 'api.example.com', port: 80 },
      { host: 'api.example.com', port: 443 },
    ]);
    expect(compileYaml('version: 1\nnetwork: { allow: [] }\n').capabilities.network.mode).toBe('none');
  });

  it('processes', () => {
    const { capabilities } = compileYaml('version: 1\nprocesses: { spawn: false, max: 8 }\n');
    expect(capabilities.process).toEqual({ spawn: false, maxProcesses: 8 });
  });

  it('resources: sizes, durations, cpus, gpus', () => {
    const resources = (yaml: string) =>
      compileYaml(`version: 1\nresources: ${yaml}\n`).capabilities.resources;
    expect(resources('{ memory: 512MB }').memoryBytes).toBe(512_000_000);
    expect(resources('{ memory: 2GiB }').memoryBytes).toBe(2 * 2 ** 30);
    expect(resources('{ memory: 256 }').memoryBytes).toBe(256_000_000);
    expect(resources('{ timeout: 30s }').timeoutMs).toBe(30_000);
    expect(resources('{ timeout: 5m }').timeoutMs).toBe(300_000);
    expect(resources('{ timeout: 1h30m }').timeoutMs).toBe(5_400_000);
    expect(resources('{ timeout: 90 }').timeoutMs).toBe(90_000);
    expect(resources('{ cpus: 0.5 }').cpus).toBe(0.5);
    expect(resources('{ gpus: all }').gpus).toBe('all');
    expect(resources('{ gpus: [1, 0, 1] }').gpus).toEqual([0, 1]);
  });

  it('devices', () => {
    const { devices } = compileYaml('version: 1\ndevices: { clipboard: true, display: true }\n').capabilities;
    expect(devices).toEqual({ clipboard: true, audio: false, webcam: false, display: true, input: false });
  });

  it('env: inherit replaces the default list; set adds values and expands ${env:NAME}', () => {
    const { env } = compileYaml(
      'version: 1\nenv:\n  inherit: [SECRET_TOKEN, NOT_SET]\n  set: { PORT: 8080, DEBUG: false, TOKEN: "Bearer ${env:SECRET_TOKEN}" }\n',
    ).capabilities;
    expect(env).toEqual({ SECRET_TOKEN: 'hunter2', PORT: '8080', DEBUG: 'false', TOKEN: 'Bearer hunter2' });
  });

  it('env.set with an unset ${env:NAME} is a located error', () => {
    const error = compileFailure(() =>
      compileYaml('version: 1\nenv:\n  set:\n    TOKEN: "${env:MISSING_TOKEN}"\n'),
    );
    expect(error.code).toBe('MANIFEST_INVALID');
    expect([error.line, error.column]).toEqual([4, 12]);
    expect(error.message).toContain('env.set.TOKEN: environment variable MISSING_TOKEN is not set');
  });

  it('identity.name', () => {
    expect(compileYaml('version: 1\nidentity: { name: agent-7 }\n').capabilities.identity).toEqual({
      name: 'agent-7',
    });
  });

  it('warns when a grant covers the whole file system or home folder', () => {
    expect(compileYaml('version: 1\nfilesystem: { read: ["~"] }\n').warnings).toEqual([
      'filesystem.read[0] grants your whole home folder (read); secrets such as ~/.ssh are then reachable unless denied.',
    ]);
    expect(compileYaml('version: 1\nfilesystem: { write: [/] }\n').warnings[0]).toContain(
      'the whole file system (write)',
    );
    expect(compileYaml('version: 1\nfilesystem: { read: ["~/.gitconfig"] }\n').warnings).toEqual([]);
  });

  it('$schema is accepted and ignored', () => {
    expect(compileYaml('$schema: ./schema.json\nversion: 1\n').capabilities).toEqual(
      compileYaml('version: 1\n').capabilities,
    );
  });

  it('marks only the keys the manifest did not set as defaulted', () => {
    const { defaulted } = compileYaml(
      'version: 1\nresources: { memory: 2GiB }\nnetwork: { internet: false }\n',
    );
    expect(defaulted).not.toContain('resources.memory');
    expect(defaulted).not.toContain('network.internet');
    expect(defaulted).toContain('resources.timeout');
  });
});

describe('path precedence', () => {
  const lists = (filesystem: string) =>
    compileYaml(`version: 1\nfilesystem: ${filesystem}\n`).capabilities.filesystem;

  it('at equal paths deny beats read beats write', () => {
    const readAndWrite = lists('{ read: [/srv/data], write: [/srv/data] }');
    expect(readAndWrite.read).toContain('/srv/data');
    expect(readAndWrite.write).not.toContain('/srv/data');
    const all = lists('{ read: [/srv/data], write: [/srv/data], deny: [/srv/data] }');
    expect([...all.read, ...all.write, ...all.deny]).not.toContain('/srv/data');
  });

  it('naming the workspace in read makes it read-only', () => {
    const fs = lists('{ read: ["${workspace}"] }');
    expect(fs.write).not.toContain('/projects/demo');
    expect(fs.read).toContain('/projects/demo');
  });

  it('the most specific path wins, both ways', () => {
    const fs = lists('{ write: [/srv], deny: [/srv/secret], read: [/srv/secret/public] }');
    expect(fs.write).toContain('/srv');
    expect(fs.deny).toContain('/srv/secret');
    expect(fs.read).toContain('/srv/secret/public');
  });

  it('an explicit grant of a default secret does not beat its deny at the same path', () => {
    expect(lists('{ read: [/etc/shadow] }').deny).toContain('/etc/shadow');
  });

  it('write implies read: a written path is not listed again in read', () => {
    const fs = lists('{ write: [/srv/out], read: [/srv/out/sub] }');
    expect(fs.write).toContain('/srv/out');
    // Read-only inside a writable folder is a real narrowing and stays.
    expect(fs.read).toContain('/srv/out/sub');
  });
});

describe('applyOverrides', () => {
  it('adds paths, replaces network/memory/timeout/tier/spawn', () => {
    const base = parseManifest(
      'version: 1\nfilesystem: { read: [./a] }\nnetwork: { allow: [a.example:443] }\nresources: { memory: 1GiB }\n',
    );
    const overridden = applyOverrides(base.manifest, {
      tier: 'session',
      read: ['./b'],
      write: ['./out'],
      deny: ['./out/keys'],
      network: ['b.example:8443'],
      memory: '2GiB',
      timeout: '30s',
      spawn: false,
    });
    expect(overridden).toEqual({
      version: 1,
      tier: 'session',
      filesystem: { read: ['./a', './b'], write: ['./out'], deny: ['./out/keys'] },
      network: { internet: false, allow: ['b.example:8443'] },
      resources: { memory: '2GiB', timeout: '30s' },
      processes: { spawn: false },
    });
    expect(base.manifest.filesystem?.read).toEqual(['./a']);
    const compiled = compileManifest({ ...base, manifest: overridden }, OPTIONS);
    expect(compiled.capabilities.network.allow).toEqual([{ host: 'b.example', port: 8443 }]);
    expect(compiled.pathOrigins?.['/projects/demo/b']).toBe('command line');
    expect(compiled.pathOrigins?.['/projects/demo/a']).toBe('manifest');
  });

  it('--net none and open', () => {
    expect(
      compileManifest(applyOverrides(undefined, { network: 'open' }), OPTIONS).capabilities.network.mode,
    ).toBe('open');
    const allowList: ManifestV1 = { version: 1, network: { allow: ['x.example'] } };
    expect(
      compileManifest(applyOverrides(allowList, { network: 'none' }), OPTIONS).capabilities.network.mode,
    ).toBe('none');
  });

  it('a bad flag value is reported as from the command line, not at the manifest line it replaced', () => {
    const base = parseManifest('version: 1\nresources:\n  memory: 1GiB\n', { path: '/p/bulkhead.yaml' });
    const error = compileFailure(() =>
      compileManifest({ ...base, manifest: applyOverrides(base.manifest, { memory: 'lots' }) }, OPTIONS),
    );
    expect(error.code).toBe('MANIFEST_INVALID');
    expect(error.line).toBeUndefined();
    expect(error.message).toContain('resources.memory (from the command line): expected a size');
  });
});

describe('raw manifests from code', () => {
  it('are validated too', () => {
    const error = compileFailure(() =>
      compileManifest({ version: 1, processes: { max: 0 } } as ManifestV1, OPTIONS),
    );
    expect(error.code).toBe('MANIFEST_INVALID');
    expect(error.message).toContain('processes.max: expected at least 1 process');
  });

  it('refuse internet together with an allow list', () => {
    const error = compileFailure(() =>
      compileManifest({ version: 1, network: { internet: true, allow: ['a.example'] } }, OPTIONS),
    );
    expect(error.message).toContain('network.internet: true and network.allow cannot be combined');
  });
});
