import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BulkheadError, CAPABILITY_KEYS, type Capabilities, run } from '@bulkhead/core';
import { describe, expect, it } from 'vitest';
import { createProcessProvider } from './index.js';
import {
  capabilitiesFor,
  hostStatus,
  leftovers,
  makeWorkspace,
  processesWithMarker,
  uniqueMarker,
  waitFor,
} from './test-support.js';

const callerIsRoot = process.getuid?.() === 0;
const modes = ['namespace', 'shim-only'] as const;

function runIn(
  mode: (typeof modes)[number],
  capabilities: Capabilities,
  command: string[],
  id = randomUUID(),
) {
  return run({ providers: [createProcessProvider({ mode })], tier: 'process', capabilities, command, id });
}

describe.each(modes)('process tier, %s mode', (mode) => {
  it('probes every capability key and names its mechanism or the reason and fix', async () => {
    const report = await createProcessProvider({ mode }).probe();
    expect(report.available, report.reason).toBe(true);
    expect(report.facts.mode).toBe(mode);
    expect(report.facts.bubblewrap).toMatch(/^\d+\.\d+/);
    expect(report.facts.landlockAbi).toBeGreaterThan(0);
    for (const key of CAPABILITY_KEYS) {
      const enforcement = report.enforcement[key];
      expect(enforcement, key).toBeDefined();
      if (enforcement && !enforcement.enforced) expect(enforcement.reason, key).not.toBe('');
    }
    expect(report.enforcement['resources.memory']).toMatchObject({
      enforced: true,
      mechanisms: [expect.stringMatching(/^cgroup-v[12]$|^rlimit$/)],
    });
  });

  it('enforces a network allow-list in namespace mode only; shim-only refuses it with the reason and fix', async () => {
    const report = await createProcessProvider({ mode }).probe();
    if (mode === 'namespace') {
      expect(report.enforcement['network.allowlist']).toMatchObject({
        enforced: true,
        mechanisms: ['network-namespace', 'egress-proxy'],
      });
      return;
    }
    expect(report.enforcement['network.allowlist']).toMatchObject({ enforced: false });
    const workspace = await makeWorkspace();
    const capabilities = capabilitiesFor(workspace, (base) => ({
      ...base,
      network: { mode: 'allowlist', allow: [{ host: 'example.com', port: 443 }] },
    }));
    const attempt = runIn(mode, capabilities, ['true']);
    await expect(attempt).rejects.toSatisfy(
      (error) =>
        BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY') &&
        error.capability === 'network.allowlist' &&
        /install bubblewrap/.test(error.fix ?? ''),
    );
    await expect(attempt).rejects.toThrow(/Landlock filters TCP ports, not hosts/);
  });

  it('runs the default-manifest demo: unprivileged uid, empty private home, refused secret, no network', async () => {
    const workspace = await makeWorkspace();
    const id = randomUUID();
    const result = await runIn(
      mode,
      capabilitiesFor(workspace),
      ['sh', '-c', 'id -u; ls -A ~; cat /etc/shadow; curl -m2 -sS https://example.com; echo "curl=$?"'],
      id,
    );
    const [uid, ...rest] = result.stdout.trim().split('\n');
    expect(Number(uid)).not.toBe(0);
    if (callerIsRoot) expect(Number(uid)).toBe(65534);
    // `ls -A ~` printed nothing: the line after the uid is curl's status.
    expect(rest).toEqual([expect.stringMatching(/^curl=(6|7)$/)]);
    expect(result.stderr).toMatch(/cat: \/etc\/shadow: (Permission denied|No such file)/);
    expect(result.stderr).toMatch(/curl: \((6|7)\)/);
    expect(result.exitCode).toBe(0);
    expect(await leftovers(id)).toEqual([]);
  });

  it('caps memory: a hog is OOM-killed at the cap and the result says so', async () => {
    const workspace = await makeWorkspace();
    const id = randomUUID();
    const capabilities = capabilitiesFor(workspace, (base) => ({
      ...base,
      resources: { ...base.resources, memoryBytes: 64 * 1024 * 1024 },
    }));
    const result = await runIn(
      mode,
      capabilities,
      ['/usr/bin/python3', '-c', 'b = bytearray(512 * 1024 * 1024); print("survived")'],
      id,
    );
    expect(result.stdout).not.toContain('survived');
    expect(result.oomKilled).toBe(true);
    expect(result.signal).toBe('SIGKILL');
    expect(result.peakMemoryBytes).toBeLessThanOrEqual(64 * 1024 * 1024);
    expect(result.violations.map((violation) => violation.rule)).toContain('resources.memory');
    expect(await leftovers(id)).toEqual([]);
  });

  it('ends the whole tree at the timeout, a setsid grandchild included', async () => {
    const workspace = await makeWorkspace();
    const id = randomUUID();
    const marker = uniqueMarker();
    const capabilities = capabilitiesFor(workspace, (base) => ({
      ...base,
      resources: { ...base.resources, timeoutMs: 1000 },
    }));
    const script = `setsid sh -c 'sleep 2; touch "$1/survived"' ${marker} "$PWD" & sleep 30`;
    const result = await runIn(mode, capabilities, ['sh', '-c', script, marker], id);
    expect(result.timedOut).toBe(true);
    expect(await leftovers(id, marker)).toEqual([]);
    await delay(2500);
    expect(existsSync(join(workspace, 'survived')), 'the setsid grandchild outlived the timeout').toBe(false);
  });

  it('stops a fork bomb at processes.max and the host stays fine', async () => {
    const workspace = await makeWorkspace();
    const id = randomUUID();
    const marker = uniqueMarker();
    const capabilities = capabilitiesFor(workspace, (base) => ({
      ...base,
      process: { spawn: true, maxProcesses: 16 },
      resources: { ...base.resources, timeoutMs: 2000, cpus: 0.5 },
    }));
    const result = await runIn(
      mode,
      capabilities,
      ['sh', '-c', 'bomb() { bomb | bomb & }; bomb; sleep 5', marker],
      id,
    );
    expect(result.violations.map((violation) => violation.rule)).toContain('process.maxProcesses');
    expect(spawnSync('true').status, 'the host can still start processes').toBe(0);
    expect(await leftovers(id, marker)).toEqual([]);
  });

  it('controls spawning: with spawn false the payload runs but cannot fork', async () => {
    const workspace = await makeWorkspace();
    const capabilities = capabilitiesFor(workspace, (base) => ({
      ...base,
      process: { ...base.process, spawn: false },
    }));
    const result = await runIn(mode, capabilities, ['sh', '-c', 'echo started; /bin/true && echo forked']);
    expect(result.stdout).toContain('started');
    expect(result.stdout).not.toContain('forked');
    expect(result.exitCode).not.toBe(0);
  });

  it("passes none of the caller's environment through", async () => {
    const workspace = await makeWorkspace();
    const name = `BULKHEAD_TIER_PROCESS_CANARY_${randomUUID().slice(0, 8).toUpperCase()}`;
    process.env[name] = 'caller-secret';
    try {
      const capabilities = capabilitiesFor(workspace, (base) => ({ ...base, env: { CHOSEN: 'yes' } }));
      const result = await runIn(mode, capabilities, ['env']);
      expect(result.stdout).not.toContain('caller-secret');
      expect(result.stdout).toContain('CHOSEN=yes');
      const names = result.stdout
        .trim()
        .split('\n')
        .map((line) => line.slice(0, line.indexOf('=')));
      // bubblewrap adds PWD in the namespace mode (see the conformance skip).
      expect(
        names.filter((variable) => !['CHOSEN', 'PATH', 'HOME', 'TMPDIR', 'LANG', 'PWD'].includes(variable)),
      ).toEqual([]);
    } finally {
      delete process.env[name];
    }
  });

  it('denies devices by default: no sound, video, input, DRM, GPU or KVM node can be opened', async () => {
    const workspace = await makeWorkspace();
    const nodes = [
      '/dev/kvm',
      '/dev/snd/controlC0',
      '/dev/video0',
      '/dev/input/event0',
      '/dev/uinput',
      '/dev/dri/card0',
      '/dev/nvidia0',
      '/dev/mem',
    ];
    const script = nodes.map((node) => `(exec 3<>${node}) 2>/dev/null && echo "OPENED ${node}"`).join('; ');
    const result = await runIn(mode, capabilitiesFor(workspace), ['sh', '-c', `${script}; echo checked`]);
    expect(result.stdout).toBe('checked\n');
  });

  it('refuses GPUs where no GPU device node exists (fail closed)', async () => {
    const report = await createProcessProvider({ mode }).probe();
    const workspace = await makeWorkspace();
    const attempt = runIn(
      mode,
      capabilitiesFor(workspace, (base) => ({ ...base, resources: { ...base.resources, gpus: 'all' } })),
      ['true'],
    );
    if (report.enforcement['resources.gpus']?.enforced) {
      // A host with a GPU: the grant is honoured instead.
      expect((await attempt).exitCode).toBe(0);
    } else {
      await expect(attempt).rejects.toThrow(/no GPU device nodes/);
    }
  });

  it('launches 100 sandboxes at once, all of them successfully', async () => {
    const workspace = await makeWorkspace();
    const provider = createProcessProvider({ mode });
    const capabilities = capabilitiesFor(workspace);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, index) =>
        run({ providers: [provider], tier: 'process', capabilities, command: ['sh', '-c', `echo ${index}`] }),
      ),
    );
    expect(results.map((result) => result.exitCode)).toEqual(results.map(() => 0));
    expect(results.map((result) => result.stdout.trim())).toEqual(results.map((_, index) => String(index)));
  }, 120_000);
});

describe('process tier, namespace mode, as a root caller', () => {
  it('runs the payload as an unprivileged host uid without capabilities; its files belong to the caller', async () => {
    const workspace = await makeWorkspace();
    const marker = uniqueMarker();
    const provider = createProcessProvider({ mode: 'namespace' });
    const sandbox = await provider.launch({
      command: ['sh', '-c', 'touch created; echo ready; sleep 30; :', marker],
      capabilities: capabilitiesFor(workspace),
    });
    try {
      sandbox.stdout.setEncoding('utf8');
      const ready = new Promise<void>((resolve) =>
        sandbox.stdout.on('data', (chunk: string) => chunk.includes('ready') && resolve()),
      );
      await ready;
      expect(await waitFor(() => processesWithMarker(marker).length > 0)).toBe(true);
      const [pid] = processesWithMarker(marker);
      const status = hostStatus(pid!);
      const expectedUid = callerIsRoot ? '65534' : String(process.getuid?.());
      expect(status.Uid?.split(/\s+/)).toEqual([expectedUid, expectedUid, expectedUid, expectedUid]);
      expect(status.CapEff).toBe('0000000000000000');
      expect(status.CapPrm).toBe('0000000000000000');
      expect(status.NoNewPrivs).toBe('1');
      expect((await stat(join(workspace, 'created'))).uid).toBe(process.getuid?.());
    } finally {
      await sandbox[Symbol.asyncDispose]();
    }
  });

  // MXC's bubblewrap backend, run by root, lets the payload do each of these; here the payload has no
  // capability in any namespace that owns the mounts, and seccomp refuses the calls.
  it.each([
    ['unmount a deny mask', 'umount /etc/shadow && echo ESCAPED'],
    ['remount a read-only grant writable', 'mount -o remount,rw /usr && touch /usr/escaped && echo ESCAPED'],
    ['mount over a grant', 'mount -t tmpfs none /etc && echo ESCAPED'],
    ['write /proc/sys', 'echo 1 > /proc/sys/kernel/sysrq && echo ESCAPED'],
    ['write /proc/sysrq-trigger', 'echo h > /proc/sysrq-trigger && echo ESCAPED'],
    [
      'reach the caller terminal with TIOCSTI',
      `/usr/bin/python3 -c "import os, fcntl, termios; m, s = os.openpty(); fcntl.ioctl(s, termios.TIOCSTI, b'x'); print('ESCAPED')"`,
    ],
    ['open a controlling terminal', `/usr/bin/python3 -c "open('/dev/tty'); print('ESCAPED')"`],
  ])('a root caller cannot %s', async (_title, script) => {
    const workspace = await makeWorkspace();
    const result = await runIn('namespace', capabilitiesFor(workspace), ['sh', '-c', script]);
    expect(result.stdout).not.toContain('ESCAPED');
    expect(result.exitCode).not.toBe(0);
  });

  it('says which mechanism enforced what in the result', async () => {
    const workspace = await makeWorkspace();
    const result = await runIn('namespace', capabilitiesFor(workspace), ['true']);
    expect(result.enforcement.filesystem).toEqual(expect.arrayContaining(['mount-namespace', 'landlock']));
    expect(result.enforcement['network.none']).toEqual(
      expect.arrayContaining(['network-namespace', 'seccomp']),
    );
    expect(result.enforcement['resources.memory']?.[0]).toMatch(/^cgroup-v[12]$|^rlimit$/);
    expect(result.cpuMs).toBeGreaterThanOrEqual(0);
    expect(result.peakMemoryBytes).toBeGreaterThan(0);
  });
});
