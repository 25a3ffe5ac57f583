import { BulkheadError } from '@bulkhead/core';
import { describe, expect, it } from 'vitest';
import { planShim } from './plan-shim.js';
import { readShimStatus } from './shim-status.js';
import { testCapabilities } from './shim-test-support.js';

const workdir = '/tmp';
const planText = (plan: ReturnType<typeof planShim>) => plan.fds[0]!.toString('utf8');

describe('planShim', () => {
  it('hands the plan on fd 3, the seccomp filter on fd 4 and takes the status on fd 5', () => {
    const plan = planShim({ capabilities: testCapabilities({ workdir }), workdir, landlockAbi: 7 });
    expect(plan.args).toEqual(['--config-fd', '3', '--status-fd', '5']);
    expect(plan.fds).toHaveLength(2);
    expect(plan.statusFd).toBe(5);
    expect(plan.fds[1]!.length % 8).toBe(0);
    const lines = planText(plan).split('\n');
    expect(lines[0]).toBe('bulkhead-plan 1');
    expect(lines[1]).toBe(`parent ${process.pid}`);
    expect(lines[2]).toBe('landlock 6 65535 3 3');
    expect(lines).toContain('path-optional 13 /usr');
    expect(lines).toContain('chdir /tmp');
    expect(lines).toContain('seccomp-fd 4');
    expect(planText(plan).endsWith('\n')).toBe(true);
  });

  it('reports the mechanism behind each capability it enforces', () => {
    const plan = planShim({
      capabilities: testCapabilities({ workdir, spawn: false }),
      workdir,
      landlockAbi: 7,
    });
    expect(plan.enforcement).toEqual({
      // seccomp too: without a mount namespace it keeps the payload off the host's unix sockets.
      filesystem: ['landlock', 'seccomp'],
      'network.none': ['landlock', 'seccomp'],
      'process.spawn': ['seccomp'],
      env: ['environment'],
    });
    expect(plan.facts.landlockAbi).toBe(7);
    const open = planShim({
      capabilities: testCapabilities({ workdir, network: 'open' }),
      workdir,
      landlockAbi: 7,
    });
    expect(open.enforcement).toEqual({ filesystem: ['landlock', 'seccomp'], env: ['environment'] });
    const behindNamespace = planShim({
      capabilities: testCapabilities({ workdir, network: 'open' }),
      workdir,
      landlockAbi: 7,
      pathView: 'namespace',
    });
    expect(behindNamespace.enforcement).toEqual({ filesystem: ['landlock'], env: ['environment'] });
  });

  it('refuses an allow-list without the relay, since Landlock filters ports and not hosts', () => {
    const capabilities = testCapabilities({ workdir, network: 'allowlist' });
    expect(() => planShim({ capabilities, workdir })).toThrow(/cannot enforce 'network.allowlist'/);
    const plan = planShim({
      capabilities,
      workdir,
      landlockAbi: 7,
      relay: { port: 3128, socketPath: '/run/bulkhead/egress.sock' },
    });
    expect(planText(plan)).toContain('port 2 3128\n');
    expect(planText(plan)).toContain('relay 3128 /run/bulkhead/egress.sock\n');
  });

  it('writes rlimits, with Infinity as infinity, and refuses unknown or inverted ones', () => {
    const capabilities = testCapabilities({ workdir });
    const plan = planShim({ capabilities, workdir, rlimits: { nproc: [10, 20], core: [0, Infinity] } });
    expect(planText(plan)).toContain('rlimit nproc 10 20\nrlimit core 0 infinity\n');
    expect(() => planShim({ capabilities, workdir, rlimits: { files: [1, 1] } })).toThrow(
      /Unknown rlimit resource 'files'/,
    );
    expect(() => planShim({ capabilities, workdir, rlimits: { nofile: [5, 1] } })).toThrow(/exceeds/);
    expect(() => planShim({ capabilities, workdir, rlimits: { nofile: [1.5, 2] } })).toThrow(
      /non-negative integer/,
    );
  });

  it('refuses a relative workdir or a relay port out of range', () => {
    const capabilities = testCapabilities({ workdir });
    expect(() => planShim({ capabilities, workdir: 'here' })).toThrow(/must be absolute/);
    expect(() => planShim({ capabilities, workdir, relay: { port: 70000, socketPath: '/s' } })).toThrow(
      /1-65535/,
    );
  });

  it('says, in shim-only mode, that unix sockets are refused, or reachable by path when allowed', () => {
    const plan = planShim({ capabilities: testCapabilities({ workdir }), workdir });
    expect(plan.warnings.join('\n')).toContain('cannot create unix sockets');
    const allowed = planShim({ capabilities: testCapabilities({ workdir }), workdir, unixSockets: true });
    expect(allowed.warnings.join('\n')).toContain('unix sockets reachable by path');
    expect(allowed.enforcement.filesystem).toEqual(['landlock']);
    const behindNamespace = planShim({
      capabilities: testCapabilities({ workdir }),
      workdir,
      pathView: 'namespace',
    });
    expect(behindNamespace.warnings.join('\n')).not.toContain('unix sockets');
  });

  it("keeps exactly the capabilities' environment and the tier's variables", () => {
    const capabilities = { ...testCapabilities({ workdir }), env: { EDITOR: 'vi', 'WITH SPACE': 'x' } };
    const keep = (plan: ReturnType<typeof planShim>) =>
      planText(plan)
        .split('\n')
        .filter((line) => line.startsWith('env-keep '))
        .map((line) => line.slice('env-keep '.length));
    expect(keep(planShim({ capabilities, workdir }))).toEqual([
      'PATH',
      'HOME',
      'TMPDIR',
      'LANG',
      'EDITOR',
      'WITH SPACE',
    ]);
    expect(keep(planShim({ capabilities, workdir, environmentNames: ['ONLY'] }))).toEqual(['ONLY']);
    for (const name of ['A=B', 'LINE\nBREAK', '']) {
      expect(() => planShim({ capabilities: { ...capabilities, env: { [name]: 'x' } }, workdir })).toThrow(
        /cannot be passed/,
      );
    }
  });

  it('ties the payload to its parent: this process in the host view, the initial parent in a namespace', () => {
    const capabilities = testCapabilities({ workdir });
    expect(planText(planShim({ capabilities, workdir }))).toContain(`\nparent ${process.pid}\n`);
    expect(planText(planShim({ capabilities, workdir, pathView: 'namespace' }))).toContain('\nparent 0\n');
    expect(planText(planShim({ capabilities, workdir, parentPid: 42 }))).toContain('\nparent 42\n');
    expect(() => planShim({ capabilities, workdir, parentPid: -1 })).toThrow(/not a pid/);
  });
});

describe('readShimStatus', () => {
  it('reads an empty status as the payload having been executed', () => {
    expect(readShimStatus(Buffer.alloc(0))).toBeUndefined();
  });

  it.each([
    ['error exec 2 foo: No such file or directory\n', 'COMMAND_NOT_FOUND', 127],
    ['error exec 13 foo: Permission denied\n', 'COMMAND_NOT_EXECUTABLE', 126],
    ['error landlock-abi 0 required=6 available=4\n', 'UNENFORCEABLE_CAPABILITY', undefined],
    ['error plan 22 line 3: unknown directive\n', 'SHIM_PLAN_INVALID', undefined],
    ['error chdir 2 cannot enter /w: No such file or directory\n', 'LAUNCH_FAILED', undefined],
    ['error seccomp 22 cannot load the filter\n', 'LAUNCH_FAILED', undefined],
    ['garbage', 'INTERNAL_ERROR', undefined],
  ])('turns %j into %s', (text, code, exitCode) => {
    const error = readShimStatus(Buffer.from(text), { tier: 'session' });
    expect(BulkheadError.hasCode(error, code)).toBe(true);
    expect(error?.tier).toBe('session');
    expect(error?.details?.exitCode).toBe(exitCode);
  });

  it('names both ABIs when the kernel is older than the plan', () => {
    const error = readShimStatus(Buffer.from('error landlock-abi 0 required=6 available=4\n'));
    expect(error?.message).toContain('Landlock ABI 4 but the plan needs ABI 6');
  });
});
