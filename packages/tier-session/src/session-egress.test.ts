import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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

const FETCH = `
import sys, urllib.request
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            print(url, response.status, response.read().decode().strip())
    except Exception as error:
        print(url, 'refused', getattr(error, 'code', type(error).__name__))
`;

function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer((request, response) => response.end(`hello from ${request.url}`));
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

// Composition: the session tier is the process tier plus an account, so the process tier's egress
// allow-list (through @bulkhead/egress) holds for a sandbox running under a transient uid.
describe.skipIf(!callerIsRoot)('network allow-list in a session', () => {
  let allowed: Server;
  let other: Server;
  let workspace: string;
  beforeAll(async () => {
    [allowed, other] = await Promise.all([listen(), listen()]);
    workspace = await makeWorkspace();
  });
  afterAll(async () => {
    allowed.close();
    other.close();
    await rm(workspace, { recursive: true, force: true });
  });

  it('reaches the allowed endpoint and is refused the other, under its own uid', async () => {
    const allowedPort = (allowed.address() as AddressInfo).port;
    const otherPort = (other.address() as AddressInfo).port;
    const provider = testSessionProvider();
    expect((await provider.probe()).enforcement['network.allowlist']).toMatchObject({ enforced: true });
    const result = await runIn(
      provider,
      sessionCapabilities(workspace, (base) => ({
        ...base,
        network: { mode: 'allowlist', allow: [{ host: '127.0.0.1', port: allowedPort }] },
      })),
      [PYTHON, '-c', FETCH, `http://127.0.0.1:${allowedPort}/ok`, `http://127.0.0.1:${otherPort}/no`],
    );
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual([
      `http://127.0.0.1:${allowedPort}/ok 200 hello from /ok`,
      `http://127.0.0.1:${otherPort}/no refused 403`,
    ]);
    expect(result.violations).toEqual([expect.objectContaining({ kind: 'network', port: otherPort })]);
    // The channel socket the sandbox's uid was given is gone with it.
    expect(transientlyOwned(['/tmp', '/run/bulkhead'])).toEqual([]);
  });
});
