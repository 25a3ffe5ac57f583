import { randomUUID } from 'node:crypto';
import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import {
  callerIsRoot,
  inTestRange,
  makeWorkspace,
  PYTHON,
  processesOf,
  runIn,
  sessionCapabilities,
  testSessionProvider,
  transientlyOwned,
} from './test-support.js';

function inTransientRange(uid: number): boolean {
  return inTestRange(uid);
}

async function firstLine(stream: Readable): Promise<string> {
  let text = '';
  for await (const chunk of stream) {
    text += String(chunk);
    if (text.includes('\n')) break;
  }
  return text.split('\n')[0] ?? '';
}

// The sandbox that holds the secrets: writes one into each of its private folders, makes a SysV
// segment, listens on an abstract socket, then waits on stdin.
const HOLDER = `
import os, socket, subprocess, sys
token = sys.argv[1]
places = [os.environ['HOME'], os.environ['TMPDIR'], os.environ['XDG_RUNTIME_DIR'], '/dev/shm']
for place in places:
    with open(os.path.join(place, 'secret'), 'w') as handle:
        handle.write(token)
    os.chmod(os.path.join(place, 'secret'), 0o600)
segment = subprocess.run(['ipcmk', '-M', '4096'], capture_output=True, text=True).stdout.strip()
import ctypes
librt = ctypes.CDLL('librt.so.1', use_errno=True)
# The ipc namespace's message-queue folder belongs to bubblewrap's setup uid: creating one is
# refused (EACCES) here, so there is nothing to attach to; the prober tries all the same.
librt.mq_open(('/bulkhead-holder-' + token[:8]).encode(), os.O_CREAT | os.O_RDWR, 0o666, None)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind('\\0bulkhead-holder-' + token)
server.listen(1)
print(os.getuid(), os.environ['XDG_RUNTIME_DIR'], segment, flush=True)
sys.stdin.read()
`;

// The other sandbox: tries each way into the holder, one line per attempt.
const PROBER = `
import ctypes, os, socket, subprocess, sys
token, runtime, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
def attempt(name, action):
    try:
        print(name, 'ESCAPED', action())
    except Exception as error:
        print(name, 'refused', type(error).__name__)
attempt('read-runtime', lambda: open(os.path.join(runtime, 'secret')).read())
def list_sessions():
    # The folders on the way to this sandbox's own grants exist in its view, with only its own
    # session in them: the other session's folder must not be there.
    entries = os.listdir(os.path.dirname(os.path.dirname(runtime)))
    if os.path.basename(os.path.dirname(runtime)) in entries:
        return entries
    raise LookupError('not there')
attempt('list-sessions', list_sessions)
for place in ['/tmp/secret', os.path.join(os.environ['HOME'], 'secret'), '/dev/shm/secret']:
    attempt('read-' + place, lambda: open(place).read() if token in open(place).read() else (_ for _ in ()).throw(LookupError()))
attempt('kill', lambda: os.kill(pid, 9))
def ptrace():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), 'ptrace')
    return 'attached'
attempt('ptrace', ptrace)
segments = subprocess.run(['ipcs', '-m'], capture_output=True, text=True).stdout
attempt('sysv-ipc', lambda: segments if '0x' in segments.split('------')[-1] else (_ for _ in ()).throw(LookupError()))
def abstract():
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect('\\0bulkhead-holder-' + token)
    return 'connected'
attempt('abstract-socket', abstract)
def message_queue():
    librt = ctypes.CDLL('librt.so.1', use_errno=True)
    if librt.mq_open(('/bulkhead-holder-' + token[:8]).encode(), os.O_RDWR) < 0:
        raise OSError(ctypes.get_errno(), 'mq_open')
    return 'opened'
attempt('posix-mqueue', message_queue)
print('uid', os.getuid())
`;

describe.skipIf(!callerIsRoot)('two concurrent session sandboxes (root caller)', () => {
  const workspaces: string[] = [];
  afterAll(async () => {
    for (const workspace of workspaces) await rm(workspace, { recursive: true, force: true });
  });

  for (const network of ['none', 'open'] as const) {
    it(`cannot read, signal, ptrace or reach each other's IPC (network ${network})`, async () => {
      const provider = testSessionProvider();
      const token = randomUUID();
      const first = await makeWorkspace();
      const second = await makeWorkspace();
      workspaces.push(first, second);
      const adjust = (base: ReturnType<typeof sessionCapabilities>) => ({
        ...base,
        network: { mode: network, allow: [] },
      });
      await using holder = await provider.launch({
        command: ['sh', '-c', `cat > holder.py <<'EOF'\n${HOLDER}\nEOF\nexec ${PYTHON} holder.py ${token}`],
        capabilities: sessionCapabilities(first, adjust),
      });
      const [uidText, runtime] = (await firstLine(holder.stdout)).split(' ');
      const holderUid = Number(uidText);
      expect(inTransientRange(holderUid)).toBe(true);
      const [holderPid] = await processesOf(holderUid).then((pids) =>
        pids.filter((pid) => pid !== undefined),
      );
      expect(holderPid).toBeDefined();

      await writeFile(join(second, 'prober.py'), PROBER);
      const result = await runIn(provider, sessionCapabilities(second, adjust), [
        PYTHON,
        'prober.py',
        token,
        runtime ?? '',
        String(holderPid),
      ]);
      const lines = result.stdout.trim().split('\n');
      expect(result.exitCode, result.stderr).toBe(0);
      const proberUid = Number(lines.find((line) => line.startsWith('uid '))?.split(' ')[1]);
      expect(inTransientRange(proberUid)).toBe(true);
      expect(proberUid).not.toBe(holderUid);
      const attempts = lines.filter((line) => !line.startsWith('uid '));
      expect(attempts, result.stdout).toHaveLength(10);
      for (const line of attempts) expect(line).toMatch(/ refused /);
      // The holder outlived every attempt on it.
      expect(await processesOf(holderUid)).toContain(holderPid);
      holder.stdin.end();
      expect((await holder.exited).exitCode).toBe(0);
    });
  }

  it('runs each sandbox under its own uid and gid, and gives the ids back at the end', async () => {
    const provider = testSessionProvider();
    const workspace = await makeWorkspace();
    workspaces.push(workspace);
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        runIn(provider, sessionCapabilities(workspace), ['sh', '-c', 'id -u; id -g; id -G; sleep 0.5']),
      ),
    );
    const ids = results.map((result) => result.stdout.trim().split('\n'));
    for (const [uid, gid, groups] of ids) {
      expect(inTransientRange(Number(uid))).toBe(true);
      expect(gid).toBe(uid);
      // No supplementary group of the caller's came along.
      expect(groups).toBe(gid);
    }
    expect(new Set(ids.map(([uid]) => uid)).size).toBe(4);
    for (const [uid] of ids) expect(await processesOf(Number(uid))).toEqual([]);
  });

  it('passes exactly capabilities.env plus PATH, HOME, TMPDIR, LANG and its own XDG_RUNTIME_DIR', async () => {
    const provider = testSessionProvider();
    const workspace = await makeWorkspace();
    workspaces.push(workspace);
    process.env.BULKHEAD_SESSION_CANARY = 'caller-secret';
    try {
      const result = await runIn(
        provider,
        sessionCapabilities(workspace, (base) => ({ ...base, env: { GIVEN: 'yes' } })),
        ['/usr/bin/env'],
      );
      const environment = Object.fromEntries(
        result.stdout
          .trim()
          .split('\n')
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
      );
      expect(Object.keys(environment).sort()).toEqual([
        'GIVEN',
        'HOME',
        'LANG',
        'PATH',
        'TMPDIR',
        'XDG_RUNTIME_DIR',
      ]);
      expect(environment.GIVEN).toBe('yes');
      expect(environment.XDG_RUNTIME_DIR).toMatch(/\/sessions\/[^/]+\/runtime$/);
    } finally {
      delete process.env.BULKHEAD_SESSION_CANARY;
    }
  });

  it('leaves files written to the workspace owned by the caller, and nothing owned by a transient id', async () => {
    const provider = testSessionProvider();
    const workspace = await makeWorkspace();
    workspaces.push(workspace);
    const result = await runIn(provider, sessionCapabilities(workspace), [
      'sh',
      '-c',
      'echo made > file && mkdir -p folder/inner && echo deep > folder/inner/file && ln -s /etc/passwd link && mkfifo pipe && id -u',
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
    for (const name of ['file', 'folder', 'folder/inner', 'folder/inner/file', 'pipe']) {
      const status = await stat(join(workspace, name));
      expect({ name, uid: status.uid, gid: status.gid }).toEqual({ name, uid: 0, gid: 0 });
    }
    expect(transientlyOwned([workspace, '/tmp', '/run/bulkhead', '/dev/shm'])).toEqual([]);
    // Give the kernel a moment to finish reaping before the next file counts processes.
    await delay(10);
  });
});
