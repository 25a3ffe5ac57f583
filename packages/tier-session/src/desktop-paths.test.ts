import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNoneProvider } from '@bulkhead/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  callerIsRoot,
  makeWorkspace,
  PYTHON,
  runIn,
  sessionCapabilities,
  testSessionProvider,
} from './test-support.js';

// Tries what a desktop session keeps in the home folder and under /run/user, each granted read-only.
const PROBER = `
import socket, sys
home, bus = sys.argv[1], sys.argv[2]
def attempt(name, action):
    try:
        print(name, 'ESCAPED', action())
    except Exception as error:
        print(name, 'refused', type(error).__name__)
def connect(path):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    return 'connected'
attempt('ssh-key', lambda: open(home + '/.ssh/id_ed25519').read().strip())
attempt('gpg-agent', lambda: connect(home + '/.gnupg/S.gpg-agent'))
attempt('session-bus', lambda: connect(bus))
`;

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((connection) => {
      connection.on('error', () => {});
      connection.end('hello\\n');
    });
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

describe.skipIf(!callerIsRoot)('desktop secrets inside broad grants', () => {
  let home: string;
  const runtime = `/run/user/${4_000_000 + (process.pid % 1000)}`;
  const servers: Server[] = [];
  const savedHome = process.env.HOME;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'bulkhead-session-home-'));
    await mkdir(join(home, '.ssh'), { mode: 0o755 });
    await writeFile(join(home, '.ssh', 'id_ed25519'), 'secret-key\n', { mode: 0o644 });
    await mkdir(join(home, '.gnupg'), { mode: 0o755 });
    servers.push(await listen(join(home, '.gnupg', 'S.gpg-agent')));
    await mkdir(runtime, { recursive: true, mode: 0o755 });
    servers.push(await listen(join(runtime, 'bus')));
    process.env.HOME = home;
  });
  afterAll(async () => {
    process.env.HOME = savedHome;
    for (const server of servers) server.close();
    await rm(home, { recursive: true, force: true });
    await rm(runtime, { recursive: true, force: true });
  });

  async function probe(provider: Parameters<typeof runIn>[0]) {
    const workspace = await makeWorkspace();
    await writeFile(join(workspace, 'prober.py'), PROBER);
    try {
      const result = await runIn(
        provider,
        sessionCapabilities(workspace, (base) => ({
          ...base,
          filesystem: { ...base.filesystem, read: [...base.filesystem.read, home, '/run/user'] },
        })),
        [PYTHON, 'prober.py', home, join(runtime, 'bus')],
      );
      expect(result.exitCode, result.stderr).toBe(0);
      return result.stdout.trim().split('\n');
    } finally {
      await rm(workspace, { recursive: true, force: true });
    }
  }

  // The control: without isolation each of them is reachable, so the refusals below can fail.
  it('are reachable without isolation (control)', async () => {
    expect(await probe(createNoneProvider())).toEqual([
      'ssh-key ESCAPED secret-key',
      'gpg-agent ESCAPED connected',
      'session-bus ESCAPED connected',
    ]);
  });

  it('are masked in a session sandbox although the home folder and /run/user are granted', async () => {
    const lines = await probe(testSessionProvider());
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).toMatch(/ refused /);
  });
});
