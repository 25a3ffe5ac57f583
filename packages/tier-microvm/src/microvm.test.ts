import { spawn } from 'node:child_process';
import { type Dirent, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ensureAttackHelper } from '@bulkhead/conformance';
import { BulkheadError, type Capabilities, run } from '@bulkhead/core';
import { defaultCapabilities } from '@bulkhead/manifest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kvmModule } from './accelerator-probe.js';
import { createMicrovmProvider } from './index.js';

/**
 * The guest-specific promises of the micro-VM tier (issue 6), on top of the conformance suite. Software
 * emulation is allowed so that they run on hosts without usable KVM; nothing here depends on the
 * accelerator.
 */
const provider = createMicrovmProvider({ acceleration: 'any' });
const here = fileURLToPath(new URL('.', import.meta.url));
const viteNode = join(here, '..', '..', '..', 'node_modules', '.bin', 'vite-node');
let root: string;

beforeAll(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'bulkhead-microvm-test-')));
  await chmod(root, 0o755);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function workspace(): Promise<string> {
  const directory = await mkdtemp(join(root, 'workspace-'));
  await chmod(directory, 0o777);
  return directory;
}

function capabilitiesFor(
  directory: string,
  adjust: (base: Capabilities) => Capabilities = (base) => base,
): Capabilities {
  const base = defaultCapabilities({
    cwd: directory,
    workspace: directory,
    home: '/nonexistent',
    env: {},
    policy: null,
  });
  return adjust({
    ...base,
    filesystem: { ...base.filesystem, write: [...new Set([directory, ...base.filesystem.write])] },
    resources: { ...base.resources, timeoutMs: 120_000 },
    env: {},
    workdir: directory,
  });
}

function runInGuest(command: string[], capabilities: Capabilities) {
  return run({ command, capabilities, providers: [provider], tier: 'microvm' });
}

/** Processes descending from this test process, by pid, with their command names. */
function descendants(): { pid: number; name: string }[] {
  const parents = new Map<number, number>();
  const names = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      parents.set(pid, Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]));
      names.set(pid, /^Name:\s+(.*)$/m.exec(status)?.[1] ?? '');
    } catch {
      // Gone meanwhile.
    }
  }
  const found: { pid: number; name: string }[] = [];
  for (const pid of parents.keys()) {
    for (
      let ancestor = parents.get(pid);
      ancestor !== undefined && ancestor > 1;
      ancestor = parents.get(ancestor)
    ) {
      if (ancestor === process.pid) {
        found.push({ pid, name: names.get(pid) ?? '' });
        break;
      }
    }
  }
  return found;
}

/** Cgroup directories whose name contains `fragment`, down to `depth` levels. */
function findCgroupDirectories(directory: string, fragment: string, depth: number): string[] {
  if (depth === 0) return [];
  let entries: Dirent[];
  try {
    entries = readdirSync(directory, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => {
      const path = join(directory, entry.name);
      return entry.name.includes(fragment) ? [path] : findCgroupDirectories(path, fragment, depth - 1);
    });
}

const isVmm = (process: { name: string }) =>
  process.name.startsWith('qemu-system') || process.name === 'bwrap';

describe('microvm tier: accelerator', () => {
  it('uses KVM only when a guest really boots under it, and says why not otherwise', async () => {
    const report = await createMicrovmProvider().probe();
    if (report.available) {
      expect(report.facts.accelerator).toBe('kvm');
      return;
    }
    expect(report.fix).toContain("acceleration: 'any'");
    // On nested PVM the device exists, yet guest kernels stop with an emulation failure.
    if (kvmModule() === 'kvm_pvm')
      expect(report.reason).toBe('nested PVM: guest kernels cannot boot under it');
  });

  it('falls back to TCG only when software emulation is allowed, and warns', async () => {
    const report = await provider.probe();
    expect(report.available, report.reason).toBe(true);
    if (report.facts.accelerator === 'tcg') expect(report.warnings.join(' ')).toMatch(/TCG/);
  });
});

describe('microvm tier: the guest', () => {
  it('cannot read a denied directory or file inside a shared directory, while the rest is writable', async () => {
    const directory = await workspace();
    await mkdir(join(directory, 'secrets'));
    await writeFile(join(directory, 'secrets', 'key'), 'guest-must-not-see-this');
    await writeFile(join(directory, '.env'), 'TOKEN=guest-must-not-see-this-either');
    const result = await runInGuest(
      ['sh', '-c', 'cat secrets/key; ls -A secrets; cat .env; echo written > out; echo done'],
      capabilitiesFor(directory, (base) => ({
        ...base,
        filesystem: {
          ...base.filesystem,
          deny: [...base.filesystem.deny, join(directory, 'secrets'), join(directory, '.env')],
        },
      })),
    );
    expect(result.stdout).toContain('done');
    expect(result.stdout + result.stderr).not.toContain('guest-must-not-see-this');
    expect(await readFile(join(directory, 'out'), 'utf8')).toBe('written\n');
  });

  it('cannot create a read grant or a denied path that did not exist at launch inside a writable share', async () => {
    // Neither exists when the jail is made, so neither has a read-only mount or a mask: the VMM's
    // Landlock keeps the guest from creating them through the 9p share.
    const directory = await workspace();
    await mkdir(join(directory, 'sub'));
    const later = join(directory, 'later');
    const laterSecret = join(directory, 'later-secret');
    const result = await runInGuest(
      [
        'sh',
        '-c',
        'mkdir later; echo x > later/file; echo y > later-secret; echo written > sub/out; echo done',
      ],
      capabilitiesFor(directory, (base) => ({
        ...base,
        filesystem: {
          ...base.filesystem,
          read: [...base.filesystem.read, later],
          deny: [...base.filesystem.deny, laterSecret],
        },
      })),
    );
    expect(result.stdout).toContain('done');
    expect(existsSync(later)).toBe(false);
    expect(existsSync(laterSecret)).toBe(false);
    expect(await readFile(join(directory, 'sub', 'out'), 'utf8')).toBe('written\n');
    expect(result.warnings.join('\n')).toContain(`${later} does not exist yet`);
  });

  it('cannot read a denied file the host creates inside a share while the guest runs', async () => {
    // It does not exist when the jail is made or when the guest masks its denies: nothing but the
    // VMM's Landlock stands between the guest and it.
    const directory = await workspace();
    await mkdir(join(directory, 'sub'));
    await chmod(join(directory, 'sub'), 0o777);
    const later = join(directory, 'later-secret');
    const script = [
      'echo > sub/started;',
      'i=0; while [ ! -e later-secret ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done;',
      'if cat later-secret 2>/dev/null; then echo READ; else echo refused; fi',
    ].join(' ');
    const guest = runInGuest(
      ['sh', '-c', script],
      capabilitiesFor(directory, (base) => ({
        ...base,
        filesystem: { ...base.filesystem, deny: [...base.filesystem.deny, later] },
      })),
    );
    // Created once the payload runs, after every mask was made.
    for (let waited = 0; !existsSync(join(directory, 'sub', 'started')) && waited < 60_000; waited += 50) {
      await sleep(50);
    }
    await writeFile(later, 'written by the host later\n', { mode: 0o644 });
    const result = await guest;
    expect(result.stdout).not.toContain('written by the host later');
    expect(result.stdout.trim()).toBe('refused');
    expect(result.warnings.join('\n')).toContain(`${later} did not exist when the mounts were made`);
  });

  it('cannot write a read-only share', async () => {
    const directory = await workspace();
    const readOnly = await mkdtemp(join(root, 'read-only-'));
    await writeFile(join(readOnly, 'file'), 'original');
    const result = await runInGuest(
      [
        'sh',
        '-c',
        `id -u; echo changed > ${readOnly}/file; echo new > ${readOnly}/new; cat ${readOnly}/file`,
      ],
      capabilitiesFor(directory, (base) => ({
        ...base,
        filesystem: { ...base.filesystem, read: [...base.filesystem.read, readOnly] },
      })),
    );
    expect(result.stderr).toMatch(/Read-only file system/);
    expect(result.stdout).toContain('original');
    expect(await readFile(join(readOnly, 'file'), 'utf8')).toBe('original');
    expect(readdirSync(readOnly)).toEqual(['file']);
  });

  it('never runs the VMM as host root, yet files the guest writes belong to the caller', async () => {
    // A grant only its owner may write: as the caller's own workspaces usually are.
    const directory = await mkdtemp(join(root, 'owned-'));
    await chmod(directory, 0o755);
    const sandbox = await provider.launch({
      command: ['sh', '-c', 'echo mine > file; echo started; exec sleep 600'],
      capabilities: capabilitiesFor(directory),
    });
    sandbox.stderr.resume();
    try {
      await new Promise<void>((resolve) => {
        sandbox.stdout.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('started')) resolve();
        });
      });
      const vmm = descendants().find((process) => process.name.startsWith('qemu-system'));
      const uids = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${vmm!.pid}/status`, 'utf8'))?.[1];
      const report = await provider.probe();
      // Under KVM a root caller's VMM keeps uid 0 (without capabilities) to open /dev/kvm, and says so.
      if (process.getuid?.() === 0 && report.facts.accelerator === 'tcg') expect(uids).not.toBe('0');
      expect(await readFile(join(directory, 'file'), 'utf8')).toBe('mine\n');
      expect(statSync(join(directory, 'file')).uid).toBe(process.getuid?.());
    } finally {
      await sandbox[Symbol.asyncDispose]();
    }
  });

  it('cannot exceed its RAM: the memory hog is OOM-killed at the cap', async () => {
    const directory = await workspace();
    const helper = await ensureAttackHelper();
    const cap = 64 * 1024 * 1024;
    const result = await runInGuest(
      [helper, 'memory-hog', String(4 * cap)],
      capabilitiesFor(directory, (base) => ({
        ...base,
        filesystem: { ...base.filesystem, read: [...base.filesystem.read, dirname(helper)] },
        resources: { ...base.resources, memoryBytes: cap },
      })),
    );
    expect(result.oomKilled, result.stdout + result.stderr).toBe(true);
    expect(result.signal).toBe('SIGKILL');
    expect(result.peakMemoryBytes).toBeLessThanOrEqual(cap);
  });

  it("runs the payload with no capabilities, no_new_privs and two seccomp filters (the guest's and the process tier's)", async () => {
    const directory = await workspace();
    const result = await runInGuest(['cat', '/proc/self/status'], capabilitiesFor(directory));
    const field = (name: string) => new RegExp(`^${name}:\\s+(\\S+)`, 'm').exec(result.stdout)?.[1];
    expect(field('CapEff'), result.stderr).toBe('0000000000000000');
    expect(field('CapBnd')).toBe('0000000000000000');
    expect(field('NoNewPrivs')).toBe('1');
    expect(field('Seccomp')).toBe('2');
    expect(field('Seccomp_filters')).toBe('2');
    expect(result.warnings.join(' ')).not.toMatch(/seccomp policy could not be compiled/);
  });

  it('has no network device without an allow-list', async () => {
    const directory = await workspace();
    const result = await runInGuest(['cat', '/proc/net/dev'], capabilitiesFor(directory));
    expect(result.exitCode, result.stderr).toBe(0);
    const interfaces = result.stdout
      .split('\n')
      .slice(2)
      .map((line) => line.split(':')[0]?.trim())
      .filter(Boolean);
    // The guest kernel's own IPv6-in-IPv4 endpoint (sit0) exists without any NIC and carries nothing.
    expect(interfaces.filter((name) => !/^(lo|sit\d+)$/.test(name ?? ''))).toEqual([]);
  });

  it('is killed whole at the timeout even when the guest stops responding', async () => {
    const directory = await workspace();
    const sandbox = await provider.launch({
      command: ['sleep', '600'],
      capabilities: capabilitiesFor(directory, (base) => ({
        ...base,
        resources: { ...base.resources, timeoutMs: 5_000 },
      })),
    });
    sandbox.stdout.resume();
    sandbox.stderr.resume();
    // Freezing the VMM freezes the guest's kernel too: only the host side can end this sandbox now.
    const vmm = descendants().find((process) => process.name.startsWith('qemu-system'));
    expect(vmm, 'the VMM is not running').toBeDefined();
    process.kill(vmm!.pid, 'SIGSTOP');
    const result = await sandbox.exited;
    await sandbox[Symbol.asyncDispose]();
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBeNull();
    expect(descendants().filter(isVmm)).toEqual([]);
  });

  it('passes a signal other than SIGKILL to the payload inside the guest', async () => {
    const directory = await workspace();
    const sandbox = await provider.launch({
      command: ['sh', '-c', 'echo started; exec sleep 600'],
      capabilities: capabilitiesFor(directory),
    });
    sandbox.stderr.resume();
    await new Promise<void>((resolve) => {
      sandbox.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('started')) resolve();
      });
    });
    await sandbox.kill('SIGTERM');
    const result = await sandbox.exited;
    await sandbox[Symbol.asyncDispose]();
    expect(result.signal).toBe('SIGTERM');
    expect(result.canceled).toBe(true);
    expect(result.timedOut).toBe(false);
  });

  it('caps the CPU of the whole VMM at a fraction of a CPU through its cgroup', async () => {
    const directory = await workspace();
    const sandbox = await provider.launch({
      command: ['sleep', '600'],
      capabilities: capabilitiesFor(directory, (base) => ({
        ...base,
        resources: { ...base.resources, cpus: 0.5 },
      })),
    });
    try {
      const vmm = descendants().find((process) => process.name.startsWith('qemu-system'));
      expect(vmm, 'the VMM is not running').toBeDefined();
      const memberships = readFileSync(`/proc/${vmm!.pid}/cgroup`, 'utf8').split('\n');
      const version2 = memberships.find((line) => line.startsWith('0::'));
      const version1 = memberships.find((line) => /^\d+:[^:]*\bcpu\b[^:]*:/.test(line));
      let quota: number;
      if (version1) {
        const [, controllers = '', path = ''] = version1.split(':');
        const base = `/sys/fs/cgroup/${controllers}${path}`;
        quota =
          Number(readFileSync(`${base}/cpu.cfs_quota_us`, 'utf8')) /
          Number(readFileSync(`${base}/cpu.cfs_period_us`, 'utf8'));
      } else {
        const [limit = '', period = ''] = readFileSync(`/sys/fs/cgroup${version2?.slice(3)}/cpu.max`, 'utf8')
          .trim()
          .split(' ');
        quota = Number(limit) / Number(period);
      }
      expect(quota).toBe(0.5);
    } finally {
      await sandbox[Symbol.asyncDispose]();
    }
    const result = await sandbox.exited;
    expect(result.enforcement['resources.cpus']).toContain('hypervisor');
  });

  it('leaves no VMM, jail, cgroup or run directory behind at dispose', async () => {
    const directory = await workspace();
    // A private TMPDIR shows exactly what this launch creates, whatever runs beside it.
    const temporary = await mkdtemp(join(root, 'tmpdir-'));
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = temporary;
    try {
      const sandbox = await provider.launch({
        command: ['sleep', '600'],
        capabilities: capabilitiesFor(directory),
        id: 'dispose-check',
      });
      expect(descendants().filter(isVmm).length).toBeGreaterThan(0);
      expect(readdirSync(temporary).length).toBeGreaterThan(0);
      await sandbox[Symbol.asyncDispose]();
    } finally {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
    }
    expect(descendants().filter(isVmm)).toEqual([]);
    expect(readdirSync(temporary)).toEqual([]);
    expect(findCgroupDirectories('/sys/fs/cgroup', 'microvm-dispose-check', 5)).toEqual([]);
  });
});

describe('microvm tier: a crash of the caller', () => {
  it('leaves no VM running, and the next start removes what the crashed caller left', async () => {
    const directory = await workspace();
    const temporary = await mkdtemp(join(root, 'tmpdir-'));
    const script = join(root, `crashing-caller-${process.pid}.ts`);
    await writeFile(
      script,
      `import { createMicrovmProvider } from ${JSON.stringify(join(here, 'index.ts'))};
const capabilities = ${JSON.stringify(capabilitiesFor(directory))};
const sandbox = await createMicrovmProvider({ acceleration: 'any' }).launch({ command: ['sleep', '600'], capabilities });
sandbox.stdout.resume();
process.stdout.write('launched\\n');
`,
    );
    const caller = spawn(viteNode, [script], {
      env: { ...process.env, TMPDIR: temporary },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      caller.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('launched')) resolve();
      });
      caller.once('exit', (code) => reject(new Error(`the caller exited (${code}) before launching`)));
    });
    const vmms = descendants().filter((process) => process.name.startsWith('qemu-system'));
    expect(vmms.length).toBe(1);
    expect(readdirSync(temporary).length).toBe(1);
    caller.kill('SIGKILL');
    let alive = true;
    for (let attempt = 0; attempt < 200 && alive; attempt++) {
      alive = existsSync(`/proc/${vmms[0]!.pid}`);
      if (alive) await sleep(100);
    }
    expect(alive, 'the VMM outlived its caller').toBe(false);
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = temporary;
    try {
      const result = await runInGuest(['true'], capabilitiesFor(directory));
      expect(result.exitCode).toBe(0);
    } finally {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
    }
    expect(readdirSync(temporary)).toEqual([]);
    // A root caller's VMM reached its grants through id-mapped copies: none of the dead caller's stays mounted.
    const staging = '/run/bulkhead/mounts';
    const left = existsSync(staging)
      ? readdirSync(staging).filter((name) => name.startsWith(`${caller.pid}-`))
      : [];
    expect(left).toEqual([]);
  });
});

describe('microvm tier: fails closed', () => {
  it('refuses GPUs, naming why', async () => {
    const directory = await workspace();
    const error = await runInGuest(
      ['true'],
      capabilitiesFor(directory, (base) => ({ ...base, resources: { ...base.resources, gpus: 'all' } })),
    ).catch((caught: unknown) => caught);
    expect(BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY')).toBe(true);
    expect((error as BulkheadError).capability).toBe('resources.gpus');
  });

  it('refuses the host network', async () => {
    const directory = await workspace();
    const error = await runInGuest(
      ['true'],
      capabilitiesFor(directory, (base) => ({ ...base, network: { mode: 'open', allow: [] } })),
    ).catch((caught: unknown) => caught);
    expect(BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY')).toBe(true);
    expect((error as BulkheadError).capability).toBe('network.open');
  });
});

describe('microvm tier: allow-list through the egress proxy', () => {
  const servers: Server[] = [];
  const listen = async (body: string): Promise<number> => {
    const server = createServer((_request, response) => response.end(body));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };
  afterAll(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it('reaches an allowed endpoint through the proxy, is refused elsewhere, and has no other route', async () => {
    const allowed = await listen('hello-from-the-allowed-server');
    const other = await listen('must-not-be-reached');
    const directory = await workspace();
    const script = [
      `curl -s -m 30 http://127.0.0.1:${allowed}/; echo`,
      `curl -s -m 30 -o /dev/null -w 'other:%{http_code}\\n' http://127.0.0.1:${other}/`,
      // Ignoring the proxy variables leaves no route: restricted user networking drops it.
      `curl -s -m 5 --noproxy '*' http://10.0.2.2:${allowed}/ || echo direct-refused`,
    ].join('; ');
    const result = await runInGuest(
      ['sh', '-c', script],
      capabilitiesFor(directory, (base) => ({
        ...base,
        network: { mode: 'allowlist', allow: [{ host: '127.0.0.1', port: allowed }] },
      })),
    );
    expect(result.stdout, result.stderr).toContain('hello-from-the-allowed-server');
    expect(result.stdout).toContain('other:403');
    expect(result.stdout).toContain('direct-refused');
    expect(result.stdout).not.toContain('must-not-be-reached');
    expect(result.violations.some((violation) => violation.port === other)).toBe(true);
  });
});

describe('microvm tier: warm pool', () => {
  it('hands out booted VMs once each, never reused, and says which launches were warm', async () => {
    const pooled = createMicrovmProvider({ acceleration: 'any', pool: { size: 1 } });
    const directory = await workspace();
    const capabilities = capabilitiesFor(directory);
    const bootIds: string[] = [];
    const startups: string[] = [];
    try {
      for (let index = 0; index < 3; index++) {
        const sandbox = await pooled.launch({
          command: ['cat', '/proc/sys/kernel/random/boot_id'],
          capabilities,
        });
        startups.push(sandbox.startup);
        sandbox.stdin.end();
        const chunks: Buffer[] = [];
        sandbox.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
        sandbox.stderr.resume();
        const result = await sandbox.exited;
        await sandbox[Symbol.asyncDispose]();
        expect(result.exitCode).toBe(0);
        bootIds.push(Buffer.concat(chunks).toString().trim());
      }
    } finally {
      await pooled.drainPool();
    }
    expect(startups).toEqual(['cold', 'warm', 'warm']);
    // A fresh guest kernel for every payload.
    expect(new Set(bootIds).size).toBe(3);
    expect(descendants().filter(isVmm)).toEqual([]);
  });
});
