import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEgressProxy, type EgressProxy } from './egress-proxy.js';
import { createStaticResolver } from './resolver.js';
import { startEchoServer } from './test-support/loopback.js';

// How a tier hands a channel to a sandbox that runs as another uid: the socket file itself is
// bind-mounted into the sandbox's mount namespace (its 0700 directory is not), and its owner or mode
// decides whether that uid may connect. Proven with a real throwaway account, a real mount namespace
// and setpriv, so it needs root.
const isRoot = process.getuid?.() === 0;
const account = `bhegress${process.pid}`;

// Reason for the skip: creating an account and a mount namespace needs root; CI runs as root.
describe.skipIf(!isRoot)('channel socket access by the sandbox uid (root only)', () => {
  let directory: string;
  let proxy: EgressProxy;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let uid: number;
  let gid: number;

  beforeAll(async () => {
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', account]);
    uid = Number(execFileSync('id', ['-u', account], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', account], { encoding: 'utf8' }).trim());
    directory = mkdtempSync(join(tmpdir(), 'bh-egress-access-'));
    chmodSync(directory, 0o755);
    echo = await startEchoServer();
    proxy = createEgressProxy({
      resolver: createStaticResolver(['echo.test:127.0.0.1']),
      socketDirectory: join(directory, 'sockets'),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await echo?.close();
    rmSync(directory, { recursive: true, force: true });
    execFileSync('userdel', ['-r', account], { stdio: 'ignore' });
  });

  function connectAsSandboxUser(socketPath: string): Promise<string> {
    const mountPoint = join(directory, 'proxy.sock');
    writeFileSync(mountPoint, '');
    const client = [
      'import socket, sys',
      'try:',
      '    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])',
      `    s.sendall(b"CONNECT echo.test:${echo.port} HTTP/1.1\\r\\n\\r\\n")`,
      '    print(s.recv(200).split(b"\\r\\n")[0].decode())',
      'except OSError as error:',
      '    print(type(error).__name__)',
    ].join('\n');
    const script = `mount --bind "$1" "$2" && exec setpriv --reuid=${uid} --regid=${gid} --clear-groups /usr/bin/python3 -c "$3" "$2"`;
    return new Promise((resolve, reject) => {
      execFile(
        'unshare',
        ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', socketPath, mountPoint, client],
        { encoding: 'utf8', timeout: 10_000 },
        (error, stdout, stderr) =>
          error ? reject(new Error(stderr || String(error))) : resolve(stdout.trim()),
      );
    });
  }

  it('keeps another uid out of a socket with the default mode', async () => {
    const channel = await proxy.openChannel({ sandboxId: 'private', allow: [] });
    expect(await connectAsSandboxUser(channel.socketPath)).toBe('PermissionError');
    await channel.close();
  });

  it('lets the sandbox uid in when the socket is given to it', async () => {
    const channel = await proxy.openChannel({
      sandboxId: 'owned',
      allow: [
        { host: 'echo.test', port: echo.port },
        { host: '127.0.0.1', port: echo.port },
      ],
      socketOwner: { uid, gid },
    });
    expect(await connectAsSandboxUser(channel.socketPath)).toBe('HTTP/1.1 200 Connection Established');
    await channel.close();
  });
});
