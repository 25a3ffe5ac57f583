import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileManifest } from './compile.js';
import { importMxcConfig, isMxcConfig, loadMxcConfig } from './mxc-import.js';

const options = { cwd: '/projects/demo', home: '/home/dev', env: {}, policy: null };

function refused(config: unknown): BulkheadError {
  try {
    importMxcConfig(config, { path: '/configs/mxc.json' });
  } catch (error) {
    expect(BulkheadError.isInstance(error)).toBe(true);
    return error as BulkheadError;
  }
  throw new Error('expected the MXC config to be refused');
}

describe('raw MXC configs, 0.6.0-alpha to 0.8.0-alpha', () => {
  it('0.6.0-alpha: filesystem paths, legacy network allow list, process, ui', () => {
    const imported = importMxcConfig({
      version: '0.6.0-alpha',
      containment: 'appcontainer',
      process: {
        commandLine: 'python3 agent.py --fast',
        cwd: '/work',
        env: ['A=1', 'B=x=y'],
        timeout: 45000,
      },
      filesystem: {
        readonlyPaths: ['/data/in'],
        readwritePaths: ['/data/out'],
        deniedPaths: ['/data/in/secret'],
        clearPolicyOnExit: true,
      },
      network: {
        allowOutbound: true,
        allowedHosts: ['api.example.com', 'pypi.org:443'],
        allowLocalNetwork: false,
      },
      ui: { disable: true, clipboard: 'none', injection: false },
    });
    expect(imported.shape).toBe('config');
    expect(imported.version).toBe('0.6.0-alpha');
    expect(imported.command).toEqual(['/bin/sh', '-c', 'python3 agent.py --fast']);
    expect(imported.cwd).toBe('/work');
    expect(imported.manifest).toEqual({
      version: 1,
      tier: 'process',
      filesystem: { read: ['/data/in'], write: ['/data/out'], deny: ['/data/in/secret'] },
      network: { allow: ['api.example.com', 'pypi.org:443'] },
      resources: { timeout: '45000ms' },
      env: { set: { A: '1', B: 'x=y' } },
    });
    expect(imported.warnings.join('\n')).toContain(
      'hosts without a port are allowed on ports 443 and 80 only',
    );
    const { capabilities } = compileManifest(imported.manifest, options);
    expect(capabilities.network.allow).toEqual([
      { host: 'api.example.com', port: 80 },
      { host: 'api.example.com', port: 443 },
      { host: 'pypi.org', port: 443 },
    ]);
    expect(capabilities.resources.timeoutMs).toBe(45_000);
    expect(capabilities.filesystem.deny).toContain('/data/in/secret');
  });

  it('0.7.0-alpha: allowOutbound alone is the whole internet; clipboard all and injection are devices', () => {
    const imported = importMxcConfig({
      version: '0.7.0-alpha',
      containment: 'isolation_session',
      process: { commandLine: 'node app.js', timeout: 0 },
      network: { allowOutbound: true, enforcementMode: 'firewall', removeRulesOnExit: true },
      ui: { disable: false, clipboard: 'all', injection: true },
    });
    expect(imported.manifest).toEqual({
      version: 1,
      tier: 'session',
      network: { internet: true },
      devices: { display: true, clipboard: true, input: true },
    });
    expect(imported.warnings.join('\n')).toContain('0 means no timeout in MXC');
    expect(imported.warnings.join('\n')).toContain('network.enforcementMode: ignored');
    expect(compileManifest(imported.manifest, options).capabilities.network.mode).toBe('open');
  });

  it('0.8.0-alpha: egress rules become endpoints; ingress deny is accepted', () => {
    const imported = importMxcConfig({
      version: '0.8.0-alpha',
      containment: 'bubblewrap',
      process: { commandLine: 'curl https://x' },
      network: {
        egress: {
          default: 'deny',
          allow: [
            {
              to: [{ cidr: '140.82.112.0/20' }, { cidr: '2606:50c0::/32' }],
              ports: [{ protocol: 'tcp', port: 443 }],
            },
            { to: [{ cidr: '10.0.0.5/32' }], ports: [{ protocol: 'tcp', port: 8000, endPort: 8002 }] },
          ],
        },
        ingress: { default: 'deny', hostLoopback: 'deny' },
      },
    });
    expect(imported.manifest.network).toEqual({
      allow: [
        '140.82.112.0/20:443',
        '[2606:50c0::/32]:443',
        '10.0.0.5/32:8000',
        '10.0.0.5/32:8001',
        '10.0.0.5/32:8002',
      ],
    });
    const { capabilities } = compileManifest(imported.manifest, options);
    expect(capabilities.network.allow).toContainEqual({ host: '2606:50c0::/32', port: 443 });
    expect(capabilities.network.allow).toHaveLength(5);
  });

  it('egress default allow is the internet; default deny without rules is no network', () => {
    expect(
      importMxcConfig({ version: '0.8.0-alpha', network: { egress: { default: 'allow' } } }).manifest.network,
    ).toEqual({
      internet: true,
    });
    expect(
      importMxcConfig({ version: '0.8.0-alpha', network: { egress: { default: 'deny' } } }).manifest.network,
    ).toEqual({
      internet: false,
    });
  });

  it('wslc resources map to memory, CPUs and GPUs', () => {
    const imported = importMxcConfig({
      version: '0.8.0-alpha',
      containment: 'wslc',
      wslc: { memoryMb: 2048, cpuCount: 2, gpu: true },
    });
    expect(imported.manifest).toEqual({
      version: 1,
      tier: 'wsl',
      resources: { memory: 2048, cpus: 2, gpus: 'all' },
    });
  });
});

describe('SDK 1.0 ContainerRequest', () => {
  it('maps command, working directory, environment, timeout, containment, filesystem, egress and ui', () => {
    const imported = importMxcConfig({
      command: 'node -e "console.log(1)"',
      workingDirectory: '/srv/app',
      environment: { NODE_ENV: 'production', UNSET: undefined },
      inheritDefaultEnvironment: false,
      timeoutMs: 30_000,
      containment: { type: 'bubblewrap' },
      containerName: 'demo',
      filesystem: { readonlyPaths: ['/srv/app'], readwritePaths: ['/srv/app/tmp'] },
      network: {
        egress: {
          default: 'deny',
          allow: [{ to: [{ cidr: '127.0.0.1/32' }], ports: [{ port: 5432, protocol: 'tcp' }] }],
        },
      },
      ui: { disable: true, clipboard: 'none', allowInputInjection: false },
    });
    expect(imported.shape).toBe('container-request');
    expect(imported.command).toEqual(['/bin/sh', '-c', 'node -e "console.log(1)"']);
    expect(imported.cwd).toBe('/srv/app');
    expect(imported.manifest).toEqual({
      version: 1,
      tier: 'process',
      filesystem: { read: ['/srv/app'], write: ['/srv/app/tmp'] },
      network: { allow: ['127.0.0.1/32:5432'] },
      resources: { timeout: '30000ms' },
      env: { set: { NODE_ENV: 'production' } },
    });
    const { capabilities } = compileManifest(imported.manifest, options);
    expect(capabilities.env).toEqual({ NODE_ENV: 'production' });
    expect(capabilities.network.allow).toEqual([{ host: '127.0.0.1/32', port: 5432 }]);
  });

  it('a minimal request is the Bulkhead default plus its command', () => {
    const imported = importMxcConfig({ command: 'true' });
    expect(imported.manifest).toEqual({ version: 1 });
    expect(compileManifest(imported.manifest, options).capabilities).toEqual(
      compileManifest(undefined, options).capabilities,
    );
  });
});

describe('fields that cannot be mapped are MXC_UNSUPPORTED_FIELD, each named', () => {
  it.each([
    [
      { version: '0.6.0-alpha', network: { blockedHosts: ['evil.example'], allowOutbound: true } },
      'network.blockedHosts',
      'never everything but a block list',
    ],
    [
      { version: '0.6.0-alpha', network: { allowLocalNetwork: true } },
      'network.allowLocalNetwork',
      'no "local network" grant',
    ],
    [
      { version: '0.6.0-alpha', network: { proxy: { url: 'http://proxy:3128' } } },
      'network.proxy',
      'its own egress proxy',
    ],
    [{ version: '0.6.0-alpha', ui: { clipboard: 'read' } }, 'ui.clipboard', "not 'read' only"],
    [
      { version: '0.6.0-alpha', lifecycle: { destroyOnExit: false } },
      'lifecycle.destroyOnExit',
      'never outlives its run',
    ],
    [
      { version: '0.6.0-alpha', filesystem: { clearPolicyOnExit: false } },
      'filesystem.clearPolicyOnExit',
      'never keeps a sandbox policy',
    ],
    [
      { version: '0.6.0-alpha', filesystem: { readonlyPaths: ['C:\\Users\\me'] } },
      'filesystem.readonlyPaths[0]',
      'is a Windows path',
    ],
    [
      { version: '0.6.0-alpha', processContainer: { capabilities: ['internetClient'] } },
      'processContainer',
      'backend-specific',
    ],
    [{ version: '0.6.0-alpha', surprise: true }, 'surprise', 'no equivalent'],
    [{ version: '0.5.0-alpha' }, 'version', "MXC schema '0.5.0-alpha' is not one Bulkhead imports"],
    [
      { version: '0.8.0-alpha', containment: 'hypervisor' },
      'containment',
      "unknown containment 'hypervisor'",
    ],
    [
      { version: '0.8.0-alpha', network: { ingress: { hostLoopback: 'allow' } } },
      'network.ingress.hostLoopback',
      'no inbound connections',
    ],
    [
      { version: '0.8.0-alpha', network: { egress: { allow: [{ to: [{ cidr: '10.0.0.0/8' }] }] } } },
      'network.egress.allow[0]',
      'a rule without ports allows every port',
    ],
    [
      {
        version: '0.8.0-alpha',
        network: { egress: { allow: [{ ports: [{ protocol: 'udp', port: 53 }] }] } },
      },
      'network.egress.allow[0].ports[0].protocol',
      'TCP only, not udp',
    ],
    [
      {
        version: '0.8.0-alpha',
        network: {
          egress: {
            allow: [{ to: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }], ports: [{ port: 443 }] }],
          },
        },
      },
      'network.egress.allow[0].to[0].except',
      'cannot carve exceptions',
    ],
    [
      {
        version: '0.8.0-alpha',
        network: { egress: { allow: [{ ports: [{ port: 1000, endPort: 2000 }] }] } },
      },
      'network.egress.allow[0].ports[0].endPort',
      'wider than 16 ports',
    ],
    [
      {
        version: '0.8.0-alpha',
        network: { egress: { default: 'allow', deny: [{ to: [{ cidr: '10.0.0.0/8' }] }] } },
      },
      'network.egress.deny',
      'never everything but a block list',
    ],
    [
      { version: '0.8.0-alpha', network: { allowOutbound: true, egress: { default: 'allow' } } },
      'network.egress',
      'cannot be combined',
    ],
    [
      { command: 'x', network: { allowedHosts: ['a.example'] } },
      'network.allowedHosts',
      'not part of this MXC shape',
    ],
    [
      { command: 'x', containment: { type: 'seatbelt', config: { guiAccess: true } } },
      'containment.config',
      'backend-specific',
    ],
  ])('%j -> %s', (config, field, reason) => {
    const error = refused(config);
    expect(error.code).toBe('MXC_UNSUPPORTED_FIELD');
    expect(error.path).toBe('/configs/mxc.json');
    expect(error.capability).toBe(field);
    expect(error.message).toContain(`MXC field '${field}' cannot be mapped to Bulkhead: `);
    expect(error.message).toContain(reason);
  });

  it('lists every unmappable field at once', () => {
    const error = refused({
      version: '0.6.0-alpha',
      network: { blockedHosts: ['x'], allowOutbound: true, proxy: {} },
      ui: { clipboard: 'write' },
    });
    expect((error.details!.issues as { keyPath: string }[]).map((issue) => issue.keyPath)).toEqual([
      'network.proxy',
      'network.blockedHosts',
      'ui.clipboard',
    ]);
  });

  it('wrong types are MANIFEST_INVALID naming the field', () => {
    const error = refused({ version: '0.6.0-alpha', filesystem: { readonlyPaths: '/data' } });
    expect(error.code).toBe('MANIFEST_INVALID');
    expect(error.message).toContain(
      `MXC field 'filesystem.readonlyPaths' should be a list of strings, found "/data"`,
    );
  });

  it('something that is not MXC at all', () => {
    expect(isMxcConfig({ version: 1 })).toBe(false);
    expect(isMxcConfig({ version: '0.8.0-alpha' })).toBe(true);
    expect(isMxcConfig({ command: 'ls' })).toBe(true);
    expect(refused({ version: 1 }).message).toContain('is not an MXC config');
  });
});

describe('loadMxcConfig', () => {
  let folder: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'bulkhead-mxc-'));
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('locates an unmappable field at its line and column', async () => {
    const path = join(folder, 'config.json');
    await writeFile(
      path,
      '{\n  "version": "0.6.0-alpha",\n  "network": {\n    "allowLocalNetwork": true\n  }\n}\n',
    );
    const error = await loadMxcConfig(path).then(
      () => undefined,
      (caught: unknown) => caught as BulkheadError,
    );
    expect(error?.code).toBe('MXC_UNSUPPORTED_FIELD');
    expect([error?.line, error?.column]).toEqual([4, 5]);
    expect(error?.message).toContain(`${path}:4:5: MXC field 'network.allowLocalNetwork' cannot be mapped`);
  });
});
