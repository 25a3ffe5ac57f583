import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { BulkheadError, type Capabilities, createNoneProvider } from '@bulkhead/core';
import { findExecutable } from '@bulkhead/linux';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  callerIsRoot,
  makeWorkspace,
  PYTHON,
  runIn,
  sessionCapabilities,
  testSessionProvider,
  transientlyOwned,
} from './test-support.js';
import { encodeAuthority, FAMILY_LOCAL } from './x-authority.js';

// Tries the person's desktop display (given as :N) every way, then the sandbox's own display.
const PROBER = `
import os, socket, subprocess, sys
desktop = sys.argv[1]
number = desktop.lstrip(':')
def attempt(name, action):
    try:
        print(name, 'ESCAPED', action())
    except Exception as error:
        print(name, 'refused', type(error).__name__)
def connect(address):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(address)
    return 'connected'
attempt('desktop-path', lambda: connect('/tmp/.X11-unix/X' + number))
attempt('desktop-abstract', lambda: connect('\\0/tmp/.X11-unix/X' + number))
def desktop_clipboard():
    environment = dict(os.environ, DISPLAY=desktop)
    environment.pop('XAUTHORITY', None)
    done = subprocess.run(['xclip', '-selection', 'clipboard', '-o'], env=environment, capture_output=True, text=True, timeout=5)
    if done.returncode != 0:
        raise OSError(done.stderr.strip())
    return done.stdout
attempt('desktop-clipboard', desktop_clipboard)
own = os.environ.get('DISPLAY')
if own:
    info = subprocess.run(['xdpyinfo'], capture_output=True, text=True, timeout=10)
    print('own-display', 'works' if info.returncode == 0 and 'X.Org' in info.stdout else 'fails ' + info.stderr.strip())
    token = 'sandbox-clipboard-' + str(os.getpid())
    # Without -quiet, xclip forks into the background once it owns the selection, then returns.
    subprocess.run(['xclip', '-selection', 'clipboard', '-i'], input=token, text=True, timeout=5, check=True)
    # The forked xclip takes the selection a moment after its parent returned: ask until it has.
    import time
    for _ in range(20):
        got = subprocess.run(['xclip', '-selection', 'clipboard', '-o'], capture_output=True, text=True, timeout=5).stdout
        if got == token:
            break
        time.sleep(0.1)
    print('own-clipboard', 'round-trip' if got == token else 'lost ' + repr(got))
`;

interface Desktop {
  display: string;
  server: ChildProcess;
  clipboard: ChildProcess;
  secret: string;
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * An Xvfb standing in for the person's desktop (path and abstract sockets), with a secret on its
 * clipboard; with `authority`, it takes only clients holding the cookie of that file, like a desktop.
 */
async function startDesktop(authority?: string): Promise<Desktop> {
  const number = randomInt(700, 900);
  const display = `:${number}`;
  const environment: NodeJS.ProcessEnv = { ...process.env, DISPLAY: display };
  if (authority) {
    const cookie = { number: String(number), name: 'MIT-MAGIC-COOKIE-1', data: randomBytes(16) };
    await writeFile(
      authority,
      encodeAuthority([{ family: FAMILY_LOCAL, address: Buffer.from(hostname()), ...cookie }]),
      { mode: 0o600 },
    );
    environment.XAUTHORITY = authority;
  }
  const server = spawn(
    'Xvfb',
    [display, '-nolisten', 'tcp', '-displayfd', '3', ...(authority ? ['-auth', authority] : [])],
    {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.stdio[3]?.once('data', () => resolve());
    server.once('exit', (code) => reject(new Error(`the desktop Xvfb exited (${code})`)));
  });
  const secret = `desktop-secret-${randomUUID()}`;
  // -loops 1: the clipboard's owner exits after serving one paste, so a read would be seen.
  const clipboard = spawn('xclip', ['-selection', 'clipboard', '-i', '-loops', '1', '-quiet'], {
    env: environment,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  clipboard.stdin?.end(secret);
  await delay(300);
  return { display, server, clipboard, secret };
}

function stopDesktop(desktop: Desktop | undefined): void {
  desktop?.clipboard.kill('SIGKILL');
  desktop?.server.kill('SIGTERM');
}

const hasX = (await findExecutable('Xvfb')) !== undefined && (await findExecutable('xclip')) !== undefined;

// Needs Xvfb, xclip and xdpyinfo (apt-get install xvfb xclip x11-utils); CI installs them, so this
// is never skipped there.
describe.skipIf(!hasX)('displays', () => {
  let desktop: Desktop | undefined;
  const workspaces: string[] = [];
  beforeAll(async () => {
    desktop = await startDesktop();
  });
  afterAll(async () => {
    stopDesktop(desktop);
    for (const workspace of workspaces) await rm(workspace, { recursive: true, force: true });
  });

  async function probe(provider: Parameters<typeof runIn>[0], adjust: (base: Capabilities) => Capabilities) {
    const workspace = await makeWorkspace();
    workspaces.push(workspace);
    await writeFile(join(workspace, 'prober.py'), PROBER);
    const result = await runIn(provider, sessionCapabilities(workspace, adjust), [
      PYTHON,
      'prober.py',
      desktop!.display,
    ]);
    return { result, lines: result.stdout.trim().split('\n') };
  }

  // The control: with no isolation the prober reaches the desktop and reads its clipboard, which
  // proves that the refusals below can fail. It consumes the desktop's single paste, so it restarts it.
  it('an unisolated payload reaches the desktop and reads its clipboard (control)', async () => {
    const { lines } = await probe(createNoneProvider(), (base) => base);
    expect(lines).toContain('desktop-path ESCAPED connected');
    expect(lines.find((line) => line.startsWith('desktop-clipboard'))).toBe(
      `desktop-clipboard ESCAPED ${desktop!.secret}`,
    );
    stopDesktop(desktop);
    desktop = await startDesktop();
  });

  for (const network of ['none', 'open'] as const) {
    it.skipIf(!callerIsRoot)(
      `display private (network ${network}): its own display and clipboard work, the desktop is unreachable and its clipboard unread`,
      async () => {
        const provider = testSessionProvider({ display: 'private' });
        const { result, lines } = await probe(provider, (base) => ({
          ...base,
          network: { mode: network, allow: [] },
          devices: { ...base.devices, display: true, clipboard: true },
        }));
        expect(result.exitCode, result.stderr).toBe(0);
        expect(lines).toEqual([
          'desktop-path refused FileNotFoundError',
          // Its own network namespace (none) or Landlock's abstract-socket scope (open) stands between.
          expect.stringMatching(/^desktop-abstract refused (ConnectionRefusedError|PermissionError)$/),
          'desktop-clipboard refused OSError',
          'own-display works',
          'own-clipboard round-trip',
        ]);
        expect(result.enforcement['devices.display']).toEqual(['private-x-server', 'mount-namespace']);
        // Nobody asked the desktop for its clipboard: its owner still waits for its one paste.
        expect(alive(desktop!.clipboard)).toBe(true);
        // The private X server is gone with its socket, lock and cookie.
        expect(transientlyOwned(['/tmp', '/run/bulkhead'])).toEqual([]);
      },
    );
  }

  // A grant of / itself fails in the process tier (bwrap cannot make /run/bulkhead/home in the
  // read-only root), reported to its owner; /tmp is where the display sockets live.
  for (const grant of ['/tmp']) {
    it.skipIf(!callerIsRoot)(
      `a read grant of ${grant} does not bring the desktop's sockets along`,
      async () => {
        const provider = testSessionProvider({ display: 'private' });
        const { result, lines } = await probe(provider, (base) => ({
          ...base,
          filesystem: { ...base.filesystem, read: [...base.filesystem.read, grant] },
          devices: { ...base.devices, display: true },
        }));
        expect(result.exitCode, result.stderr).toBe(0);
        // The socket's path is masked by an unreadable file: connect() is refused with EACCES.
        expect(lines[0]).toBe('desktop-path refused PermissionError');
        expect(lines.slice(1)).toEqual([
          expect.stringMatching(/^desktop-abstract refused/),
          'desktop-clipboard refused OSError',
          'own-display works',
          'own-clipboard round-trip',
        ]);
        expect(alive(desktop!.clipboard)).toBe(true);
      },
    );
  }

  // The explicit opt-in: the sandbox gets the caller's own display (here one that wants a cookie, like
  // a desktop's), with that display's cookie only, and the result says so aloud.
  it.skipIf(!callerIsRoot)("display host: the caller's display and its cookie, with a warning", async () => {
    const folder = await mkdtemp(join(tmpdir(), 'bulkhead-session-desktop-'));
    const authenticated = await startDesktop(join(folder, 'Xauthority'));
    const provider = testSessionProvider({ display: 'host' });
    const saved = { DISPLAY: process.env.DISPLAY, XAUTHORITY: process.env.XAUTHORITY };
    process.env.DISPLAY = authenticated.display;
    process.env.XAUTHORITY = join(folder, 'Xauthority');
    try {
      const workspace = await makeWorkspace();
      workspaces.push(workspace);
      await writeFile(join(workspace, 'prober.py'), PROBER);
      const result = await runIn(
        provider,
        sessionCapabilities(workspace, (base) => ({ ...base, devices: { ...base.devices, display: true } })),
        [PYTHON, 'prober.py', authenticated.display],
      );
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stdout.trim().split('\n')).toEqual([
        'desktop-path ESCAPED connected',
        expect.stringMatching(/^desktop-abstract refused/),
        // Without XAUTHORITY the server refuses: the cookie the tier passed is what lets it in.
        'desktop-clipboard refused OSError',
        'own-display works',
        'own-clipboard round-trip',
      ]);
      expect(result.warnings.join('\n')).toMatch(/display: 'host'/);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      stopDesktop(authenticated);
      await rm(folder, { recursive: true, force: true });
    }
  });

  it.skipIf(!callerIsRoot)('display none: no DISPLAY, and asking for a display is refused', async () => {
    const provider = testSessionProvider();
    const { lines } = await probe(provider, (base) => base);
    expect(lines.slice(0, 3)).toEqual([
      'desktop-path refused FileNotFoundError',
      expect.stringMatching(/^desktop-abstract refused/),
      'desktop-clipboard refused OSError',
    ]);
    expect(lines).toHaveLength(3);
    const workspace = await makeWorkspace();
    workspaces.push(workspace);
    const asked = runIn(
      provider,
      sessionCapabilities(workspace, (base) => ({ ...base, devices: { ...base.devices, display: true } })),
      ['true'],
    );
    await expect(asked).rejects.toSatisfy((error) =>
      BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY'),
    );
    await expect(asked).rejects.toThrow(/display: 'none'/);
  });

  it('refuses a clipboard without a display, saying so', async () => {
    const provider = testSessionProvider({ display: 'private' });
    const workspace = await makeWorkspace();
    workspaces.push(workspace);
    const asked = provider.launch({
      command: ['true'],
      capabilities: sessionCapabilities(workspace, (base) => ({
        ...base,
        devices: { ...base.devices, clipboard: true },
      })),
    });
    await expect(asked).rejects.toSatisfy((error) =>
      BulkheadError.hasCode(error, 'UNENFORCEABLE_CAPABILITY'),
    );
    await expect(asked).rejects.toThrow(/a clipboard belongs to a display, and devices.display is false/);
  });
});
