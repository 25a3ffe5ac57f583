import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BulkheadError, type Capabilities } from '@bulkhead/core';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  callerIsRoot,
  makeWorkspace,
  PYTHON,
  runIn,
  sessionCapabilities,
  testSessionProvider,
} from './test-support.js';

// Reports, one line each, what the sandbox sees of sound and video: its runtime folder, the sound
// server sockets (its own path and the caller's, given as argv[1]), and the device nodes.
const PROBER = `
import os, socket, sys
caller_runtime = sys.argv[1]
runtime = os.environ['XDG_RUNTIME_DIR']
def listing(path):
    entries = []
    for folder, folders, files in os.walk(path):
        for name in sorted(folders + files):
            entries.append(os.path.relpath(os.path.join(folder, name), path))
    return sorted(entries)
print('runtime', ' '.join(listing(runtime)) or '-')
print('pulse-server', os.environ.get('PULSE_SERVER', '-').replace(runtime, '$XDG_RUNTIME_DIR'))
def greeting(address):
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(5)
        client.connect(address)
        return client.recv(200).decode()
    except Exception as error:
        return 'refused ' + type(error).__name__
print('own-pulse', greeting(os.path.join(runtime, 'pulse', 'native')))
print('own-pipewire', greeting(os.path.join(runtime, 'pipewire-0')))
print('caller-pulse', greeting(os.path.join(caller_runtime, 'pulse', 'native')))
print('caller-secret', 'ESCAPED' if os.path.exists(os.path.join(caller_runtime, 'secret')) else 'absent')
for path in ['/dev/snd/controlC0', '/dev/snd/pcmC0D0p', '/dev/video0', '/dev/media0']:
    try:
        with open(path, 'r+b', buffering=0) as node:
            node.write(b'x')
            print(path, 'rw', node.read(4).hex() or 'empty')
    except Exception as error:
        print(path, 'refused', type(error).__name__)
`;

/** A unix socket server that greets each client with `greeting`, standing in for a sound server. */
async function soundServer(path: string, greeting: string): Promise<Server> {
  const server = createServer((client) => client.end(greeting));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return server;
}

function withAudio(audio: boolean, webcam = false) {
  return (base: Capabilities): Capabilities => ({ ...base, devices: { ...base.devices, audio, webcam } });
}

/** Mounts of the host whose mount point names this process's staging of sound sockets. */
function stagedSoundMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point.startsWith('/run/bulkhead/mounts/') && point.includes('-sound/'));
}

// Stands in for the caller's environment: its $XDG_RUNTIME_DIR (the seam the tier reads) and the
// host's /dev (the provider's deviceDirectory). The tests need real sandboxes, so a root caller.
describe.skipIf(!callerIsRoot)('devices.audio and devices.webcam', () => {
  const folders: string[] = [];
  const servers: Server[] = [];
  const savedRuntime = process.env.XDG_RUNTIME_DIR;
  let callerRuntime: string;
  let deviceDirectory: string;
  let workspace: string;

  beforeEach(async () => {
    // Private to the caller, like systemd's /run/user/<uid>, with things the sandbox must not see.
    callerRuntime = await mkdtemp(join(tmpdir(), 'bulkhead-caller-runtime-'));
    deviceDirectory = await mkdtemp(join(tmpdir(), 'bulkhead-devices-'));
    await chmod(deviceDirectory, 0o755);
    await writeFile(join(callerRuntime, 'secret'), 'the caller’s');
    workspace = await makeWorkspace();
    await writeFile(join(workspace, 'prober.py'), PROBER);
    folders.push(callerRuntime, deviceDirectory, workspace);
    process.env.XDG_RUNTIME_DIR = callerRuntime;
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) server.close();
    if (savedRuntime === undefined) delete process.env.XDG_RUNTIME_DIR;
    else process.env.XDG_RUNTIME_DIR = savedRuntime;
  });
  afterAll(async () => {
    for (const folder of folders) await rm(folder, { recursive: true, force: true });
  });

  /** Real character devices: the same majors and minors as /dev/null (1:3) and /dev/zero (1:5). */
  function makeNode(relativePath: string, kind: 'null' | 'zero', mode = '666') {
    execFileSync('mknod', [
      '-m',
      mode,
      join(deviceDirectory, relativePath),
      'c',
      '1',
      kind === 'null' ? '3' : '5',
    ]);
  }

  async function startSoundServers(): Promise<{ pulse: string; pipewire: string }> {
    await mkdir(join(callerRuntime, 'pulse'), { mode: 0o700 });
    const pulse = `pulse-${randomUUID()}`;
    const pipewire = `pipewire-${randomUUID()}`;
    servers.push(await soundServer(join(callerRuntime, 'pulse', 'native'), pulse));
    servers.push(await soundServer(join(callerRuntime, 'pipewire-0'), pipewire));
    // A socket of the caller's that is not a sound server's.
    servers.push(await soundServer(join(callerRuntime, 'bus'), 'bus'));
    return { pulse, pipewire };
  }

  async function probe(capabilities: Capabilities) {
    const provider = testSessionProvider({ deviceDirectory });
    const result = await runIn(provider, capabilities, [PYTHON, 'prober.py', callerRuntime]);
    expect(result.exitCode, result.stderr).toBe(0);
    return { result, lines: result.stdout.trim().split('\n') };
  }

  it("audio: the caller's sound server sockets, alone in the sandbox's own runtime folder, and PULSE_SERVER", async () => {
    const greetings = await startSoundServers();
    const { result, lines } = await probe(sessionCapabilities(workspace, withAudio(true)));
    expect(lines.slice(0, 6)).toEqual([
      'runtime pipewire-0 pulse pulse/native',
      'pulse-server unix:$XDG_RUNTIME_DIR/pulse/native',
      `own-pulse ${greetings.pulse}`,
      `own-pipewire ${greetings.pipewire}`,
      'caller-pulse refused FileNotFoundError',
      'caller-secret absent',
    ]);
    expect(result.enforcement['devices.audio']).toEqual(['mount-namespace']);
    // The id-mapped copies of the sockets went with the sandbox.
    expect(stagedSoundMounts()).toEqual([]);
  });

  it('without audio: no sound server socket and no PULSE_SERVER, though the caller has them', async () => {
    await startSoundServers();
    const { result, lines } = await probe(sessionCapabilities(workspace, withAudio(false)));
    expect(lines.slice(0, 6)).toEqual([
      'runtime -',
      'pulse-server -',
      'own-pulse refused FileNotFoundError',
      'own-pipewire refused FileNotFoundError',
      'caller-pulse refused FileNotFoundError',
      'caller-secret absent',
    ]);
    expect(result.enforcement['devices.audio']).toBeUndefined();
  });

  it('audio: the sound device nodes at /dev/snd, readable and writable; no video node', async () => {
    await mkdir(join(deviceDirectory, 'snd'), { mode: 0o755 });
    makeNode('snd/controlC0', 'zero');
    makeNode('snd/pcmC0D0p', 'null');
    makeNode('video0', 'zero');
    const { result, lines } = await probe(sessionCapabilities(workspace, withAudio(true)));
    expect(lines.slice(1)).toEqual([
      // No sound server here: nothing to point PulseAudio clients at.
      'pulse-server -',
      'own-pulse refused FileNotFoundError',
      'own-pipewire refused FileNotFoundError',
      'caller-pulse refused FileNotFoundError',
      'caller-secret absent',
      '/dev/snd/controlC0 rw 00000000',
      // /dev/null reads nothing.
      '/dev/snd/pcmC0D0p rw empty',
      '/dev/video0 refused FileNotFoundError',
      '/dev/media0 refused FileNotFoundError',
    ]);
    expect(result.enforcement['devices.audio']).toEqual(['device-nodes', 'mount-namespace']);
  });

  it('webcam: the video and media nodes at /dev; without the grant, none of them', async () => {
    await mkdir(join(deviceDirectory, 'snd'), { mode: 0o755 });
    makeNode('snd/controlC0', 'zero');
    makeNode('video0', 'zero');
    makeNode('media0', 'null');
    const granted = await probe(sessionCapabilities(workspace, withAudio(false, true)));
    expect(granted.lines.slice(-4)).toEqual([
      '/dev/snd/controlC0 refused FileNotFoundError',
      '/dev/snd/pcmC0D0p refused FileNotFoundError',
      '/dev/video0 rw 00000000',
      '/dev/media0 rw empty',
    ]);
    expect(granted.result.enforcement['devices.webcam']).toEqual(['device-nodes', 'mount-namespace']);
    const refused = await probe(sessionCapabilities(workspace, withAudio(false, false)));
    expect(refused.lines.slice(-4)).toEqual([
      '/dev/snd/controlC0 refused FileNotFoundError',
      '/dev/snd/pcmC0D0p refused FileNotFoundError',
      '/dev/video0 refused FileNotFoundError',
      '/dev/media0 refused FileNotFoundError',
    ]);
  });

  // A grant of / itself fails on this host for a reason of its own (bwrap cannot mask /var/run/dbus,
  // a path through the /var/run link); /dev and /run are the grants that reach devices and sockets.
  it('with read grants of /dev and /run as well: the granted nodes and sockets, nothing else of the caller', async () => {
    const greetings = await startSoundServers();
    await mkdir(join(deviceDirectory, 'snd'), { mode: 0o755 });
    makeNode('snd/controlC0', 'zero');
    const { lines } = await probe(
      sessionCapabilities(workspace, (base) => ({
        ...withAudio(true)(base),
        filesystem: { ...base.filesystem, read: [...base.filesystem.read, '/dev', '/run'] },
      })),
    );
    expect(lines).toEqual([
      'runtime pipewire-0 pulse pulse/native',
      'pulse-server unix:$XDG_RUNTIME_DIR/pulse/native',
      `own-pulse ${greetings.pulse}`,
      `own-pipewire ${greetings.pipewire}`,
      'caller-pulse refused FileNotFoundError',
      'caller-secret absent',
      '/dev/snd/controlC0 rw 00000000',
      '/dev/snd/pcmC0D0p refused FileNotFoundError',
      '/dev/video0 refused FileNotFoundError',
      '/dev/media0 refused FileNotFoundError',
    ]);
  });

  it('the probe says how each is enforced where the host has them, and why not where it has none', async () => {
    const bare = await testSessionProvider({ deviceDirectory }).probe();
    expect(bare.enforcement['devices.audio']).toMatchObject({ enforced: false });
    expect(bare.enforcement['devices.webcam']).toMatchObject({ enforced: false });
    await mkdir(join(deviceDirectory, 'snd'), { mode: 0o755 });
    makeNode('snd/controlC0', 'zero');
    makeNode('video0', 'zero');
    const equipped = await testSessionProvider({ deviceDirectory }).probe();
    expect(equipped.enforcement['devices.audio']).toMatchObject({
      enforced: true,
      mechanisms: ['device-nodes', 'mount-namespace'],
    });
    expect(equipped.enforcement['devices.webcam']).toMatchObject({
      enforced: true,
      mechanisms: ['device-nodes', 'mount-namespace'],
    });
  });

  it('fails closed, saying what is missing and the fix, when the host has no sound and no camera', async () => {
    const provider = testSessionProvider({ deviceDirectory });
    const audio = runIn(provider, sessionCapabilities(workspace, withAudio(true)), ['true']);
    await expect(audio).rejects.toSatisfy(
      (error) =>
        BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY') && error.capability === 'devices.audio',
    );
    await expect(audio).rejects.toThrow(
      new RegExp(
        `no sound device or sound server socket.*${callerRuntime}/pulse/native.*Fix: start PulseAudio or PipeWire`,
      ),
    );
    const webcam = runIn(provider, sessionCapabilities(workspace, withAudio(false, true)), ['true']);
    await expect(webcam).rejects.toSatisfy(
      (error) =>
        BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY') && error.capability === 'devices.webcam',
    );
    await expect(webcam).rejects.toThrow(/no video capture device.*video\*.*Fix: connect a camera/);
  });

  it('fails closed when the only sound device is one the sandbox may not open, and says why', async () => {
    await mkdir(join(deviceDirectory, 'snd'), { mode: 0o755 });
    makeNode('snd/controlC0', 'zero', '660');
    const provider = testSessionProvider({ deviceDirectory });
    const audio = runIn(provider, sessionCapabilities(workspace, withAudio(true)), ['true']);
    await expect(audio).rejects.toThrow(
      /controlC0: a sandbox's uid may not read and write it \(owner 0, group 0, mode 660\)/,
    );
    await expect(audio).rejects.toThrow(/udev rule with MODE="0666"/);
  });

  it('grants the nodes it can and says which it could not', async () => {
    await mkdir(join(deviceDirectory, 'snd'), { mode: 0o755 });
    makeNode('snd/controlC0', 'zero');
    makeNode('snd/pcmC0D0p', 'null', '600');
    const { result, lines } = await probe(sessionCapabilities(workspace, withAudio(true)));
    expect(lines).toContain('/dev/snd/controlC0 rw 00000000');
    expect(lines).toContain('/dev/snd/pcmC0D0p refused FileNotFoundError');
    expect(result.warnings.join('\n')).toMatch(
      /devices\.audio was granted without .*pcmC0D0p: the sandbox's uid \d+ may not read and write it/,
    );
  });
});
