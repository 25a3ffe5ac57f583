import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { join } from 'node:path';

/**
 * Test-only servers that real clients talk to: git's smart HTTP (`git http-backend` as CGI) and a
 * stub of the npm registry. Shared by the egress tests and the tiers' allow-list tests.
 */

/** Serves one request with `git http-backend` over the repositories under `projectRoot`. */
export function runGitHttpBackend(
  projectRoot: string,
  request: IncomingMessage,
  response: ServerResponse,
): void {
  const url = new URL(request.url ?? '/', 'https://git.test');
  const backend = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      REQUEST_METHOD: request.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: request.headers['content-type'] ?? '',
      REMOTE_ADDR: '127.0.0.1',
      GIT_PROTOCOL: String(request.headers['git-protocol'] ?? ''),
      HTTP_CONTENT_ENCODING: String(request.headers['content-encoding'] ?? ''),
    },
  });
  request.pipe(backend.stdin);
  let buffered = Buffer.alloc(0);
  let headersDone = false;
  backend.stdout.on('data', (chunk: Buffer) => {
    if (headersDone) return void response.write(chunk);
    buffered = Buffer.concat([buffered, chunk]);
    const end = buffered.indexOf('\r\n\r\n');
    if (end < 0) return;
    headersDone = true;
    let status = 200;
    for (const line of buffered.subarray(0, end).toString('latin1').split('\r\n')) {
      const separator = line.indexOf(':');
      const name = line.slice(0, separator).trim();
      const value = line.slice(separator + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else response.setHeader(name, value);
    }
    response.writeHead(status);
    response.write(buffered.subarray(end + 4));
  });
  backend.on('close', () => response.end());
}

/**
 * Makes `<directory>/repositories/demo.git`, a bare repository with one commit on `main`, and
 * returns the folder to serve with `runGitHttpBackend`.
 */
export function createDemoRepository(directory: string, environment: Record<string, string>): string {
  const work = join(directory, 'work');
  const gitEnvironment = {
    ...environment,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 't',
    GIT_AUTHOR_EMAIL: 't@t',
    GIT_COMMITTER_NAME: 't',
    GIT_COMMITTER_EMAIL: 't@t',
  };
  execFileSync('git', ['init', '-q', '-b', 'main', work], { env: gitEnvironment });
  execFileSync('git', ['-C', work, 'commit', '-q', '--allow-empty', '-m', 'first'], { env: gitEnvironment });
  const repositories = join(directory, 'repositories');
  mkdirSync(repositories);
  execFileSync('git', ['clone', '-q', '--bare', work, join(repositories, 'demo.git')], {
    env: gitEnvironment,
  });
  return repositories;
}

/** An npm registry that knows one package, `demo-package@1.2.3`; `origin` is where it is served. */
export function demoRegistryHandler(origin: () => string): RequestListener {
  return (request, response) => {
    if (request.url === '/demo-package') {
      response.setHeader('content-type', 'application/json');
      return void response.end(
        JSON.stringify({
          name: 'demo-package',
          'dist-tags': { latest: '1.2.3' },
          versions: {
            '1.2.3': {
              name: 'demo-package',
              version: '1.2.3',
              dist: { tarball: `${origin()}/demo-package/-/demo-package-1.2.3.tgz` },
            },
          },
          time: { '1.2.3': '2026-01-01T00:00:00.000Z' },
        }),
      );
    }
    response.writeHead(404, { 'content-type': 'application/json' });
    response.end('{"error":"not found"}');
  };
}
