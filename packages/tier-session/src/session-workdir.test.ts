import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { createNoneProvider } from '@bulkhead/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X11_SOCKET_DIRECTORY } from './private-display.js';
import { callerIsRoot, PYTHON, runIn, sessionCapabilities, testSessionProvider } from './test-support.js';

// What a desktop keeps in /tmp, which the session tier denies when a grant holds /tmp (see
// desktop-paths.ts): an ssh-agent folder (`ssh-*`) beside the payload's files, and an X server's
// socket one folder down. Unique names, so that nothing of the host's is touched.
const unique = randomUUID().slice(0, 8);
const agentFolder = `/tmp/ssh-bulkhead-test-${unique}`;
const agentSocket = join(agentFolder, 'agent.1');
// A display number far above the ones X servers and other tests take.
const displaySocket = join(X11_SOCKET_DIRECTORY, `X${60_000 + (process.pid % 5000)}`);
const created = `/tmp/bulkhead-session-created-${unique}`;

// One line per attempt: `name refused ERRNO`, or `name done` when it worked.
const PROBER = `
import errno, os, socket, sys
agent_folder, agent_socket, display_socket, created, mode = sys.argv[1:6]
def attempt(name, action):
    try:
        action()
        print(name, 'done', flush=True)
    except OSError as error:
        print(name, 'refused', errno.errorcode.get(error.errno, error.errno), flush=True)
def connect(path):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    client.recv(16)
def create():
    with open(created, 'w') as handle:
        handle.write('made in the sandbox')
attempt('create-in-workdir', create)
attempt('agent-list', lambda: os.listdir(agent_folder))
attempt('agent-connect', lambda: connect(agent_socket))
attempt('display-connect', lambda: connect(display_socket))
# Only where it cannot harm the host's desktop: in the sandbox.
if mode == 'all':
    attempt('agent-rename-away', lambda: os.rename(agent_folder, agent_folder + '-moved'))
    attempt('agent-plant', lambda: open(os.path.join(agent_folder, 'planted'), 'w').close())
    attempt('display-unlink', lambda: os.unlink(display_socket))
    attempt('display-replace', lambda: os.rename(created, display_socket))
    attempt('display-folder-rename-away', lambda: os.rename(os.path.dirname(display_socket), created + '-x11'))
`;

function listen(path: string, connections: string[]): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((connection) => {
      connections.push(path);
      connection.on('error', () => {});
      connection.end('hello\n');
    });
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

// The session tier needs root here (the unprivileged case with subordinate ids is unprivileged.test.ts).
describe.skipIf(!callerIsRoot)('a session sandbox whose workdir is /tmp, with desktop paths in it', () => {
  const servers: Server[] = [];
  const connections: string[] = [];
  let madeSocketDirectory = false;

  beforeAll(async () => {
    if (!existsSync(X11_SOCKET_DIRECTORY)) {
      // A host without an X server: made like an X server does, and removed afterwards.
      await mkdir(X11_SOCKET_DIRECTORY);
      await chmod(X11_SOCKET_DIRECTORY, 0o1777);
      madeSocketDirectory = true;
    }
    await mkdir(agentFolder, { mode: 0o755 });
    servers.push(await listen(agentSocket, connections));
    servers.push(await listen(displaySocket, connections));
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    await rm(agentFolder, { recursive: true, force: true });
    await rm(displaySocket, { force: true });
    await rm(created, { force: true });
    await rm(`${created}-x11`, { recursive: true, force: true });
    if (madeSocketDirectory) await rmdir(X11_SOCKET_DIRECTORY).catch(() => {});
  });

  const capabilities = () =>
    sessionCapabilities('/tmp', (base) => ({
      ...base,
      filesystem: { ...base.filesystem, write: ['/tmp'] },
      workdir: '/tmp',
    }));
  const probe = (provider: Parameters<typeof runIn>[0], mode: 'reach' | 'all') =>
    runIn(provider, capabilities(), [
      PYTHON,
      '-c',
      PROBER,
      agentFolder,
      agentSocket,
      displaySocket,
      created,
      mode,
    ]);

  // The control: without isolation each of them is reachable, so the refusals below can fail.
  it('reaches the desktop paths without isolation (control)', async () => {
    const result = await probe(createNoneProvider(), 'reach');
    expect(result.stdout.trim().split('\n')).toEqual([
      'create-in-workdir done',
      'agent-list done',
      'agent-connect done',
      'display-connect done',
    ]);
    await rm(created, { force: true });
    connections.length = 0;
  });

  it('creates files in its write-granted workdir while the desktop paths stay unreachable', async () => {
    const result = await probe(testSessionProvider(), 'all');
    expect(result.exitCode, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe('create-in-workdir done');
    expect(lines).toHaveLength(9);
    expect(lines.slice(1).filter((line) => !/^\S+ refused [A-Z]+$/.test(line))).toEqual([]);
    // Made on the host, owned by the caller, like every file a session writes into its grants.
    expect(await readFile(created, 'utf8')).toBe('made in the sandbox');
    expect((await lstat(created)).uid).toBe(process.getuid?.());
    // Neither server heard from the sandbox, and both are where they were.
    expect(connections).toEqual([]);
    expect((await lstat(displaySocket)).isSocket()).toBe(true);
    expect(await readdir(agentFolder)).toEqual(['agent.1']);
  });
});
