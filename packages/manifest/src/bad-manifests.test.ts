// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell their variables ${...}
import { BulkheadError } from '@bulkhead/core';
import { describe, expect, it } from 'vitest';
import { compileManifest } from './compile.js';
import { parseManifest } from './manifest-document.js';
import type { ManifestIssue } from './source-document.js';

const FILE = '/projects/demo/bulkhead.yaml';

/** Parses (and compiles) a manifest that must fail; returns the error. */
function failure(source: string, options: { path?: string; compile?: boolean } = {}): BulkheadError {
  const path = options.path ?? FILE;
  try {
    const document = parseManifest(source, { path });
    if (options.compile)
      compileManifest(document, { cwd: '/projects/demo', home: '/home/dev', env: {}, policy: null });
  } catch (error) {
    expect(BulkheadError.isInstance(error)).toBe(true);
    return error as BulkheadError;
  }
  throw new Error('expected the manifest to be refused');
}

function issues(error: BulkheadError): ManifestIssue[] {
  return error.details?.issues as ManifestIssue[];
}

describe('bad manifests: each refused with a located, helpful error', () => {
  it('YAML syntax error (unclosed flow sequence)', () => {
    const error = failure(
      'version: 1\nnetwork:\n  allow: [api.example.com:443\nresources:\n  memory: 1GiB\n',
    );
    expect(error.code).toBe('MANIFEST_PARSE_ERROR');
    expect(error.path).toBe(FILE);
    expect(error.line).toBe(4);
    expect(error.column).toBe(1);
    expect(error.message).toContain(
      `${FILE}:4:1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]`,
    );
  });

  it('JSON syntax error (trailing comma)', () => {
    const error = failure('{\n  "version": 1,\n  "tier": "process",\n}\n', {
      path: '/projects/demo/bulkhead.json',
    });
    expect(error.code).toBe('MANIFEST_PARSE_ERROR');
    expect([error.line, error.column]).toEqual([4, 1]);
    expect(error.message).toMatch(/bulkhead\.json:4:1: invalid JSON: /);
  });

  it('unknown key, with a "did you mean" suggestion', () => {
    const error = failure('version: 1\nnetwrok:\n  internet: false\n');
    expect(error.code).toBe('MANIFEST_INVALID');
    expect([error.line, error.column]).toEqual([2, 1]);
    expect(issues(error)[0]).toMatchObject({
      keyPath: 'netwrok',
      suggestion: 'network',
      line: 2,
      column: 1,
      path: FILE,
    });
    expect(error.message).toContain(`${FILE}:2:1: unknown key 'netwrok'; did you mean 'network'?`);
  });

  it('unknown nested key, with the suggestion from its own mapping', () => {
    const error = failure('version: 1\nfilesystem:\n  raed: [./src]\n');
    expect(issues(error)[0]).toMatchObject({
      keyPath: 'filesystem.raed',
      suggestion: 'read',
      line: 3,
      column: 3,
    });
    expect(error.message).toContain(`${FILE}:3:3: unknown key 'raed' in 'filesystem'; did you mean 'read'?`);
  });

  it('wrong type', () => {
    const error = failure('version: 1\nnetwork:\n  internet: "yes"\n');
    expect([error.line, error.column]).toEqual([3, 13]);
    expect(error.message).toContain(`${FILE}:3:13: network.internet: expected true or false; got "yes"`);
    expect(error.capability).toBe('network.internet');
  });

  it('bad size', () => {
    const error = failure('version: 1\nresources:\n  memory: 5 gigs\n');
    expect([error.line, error.column]).toEqual([3, 11]);
    expect(error.message).toContain(
      `${FILE}:3:11: resources.memory: expected a size such as 512MB, 1GiB, or a number of megabytes; got "5 gigs"`,
    );
    expect(issues(error)).toHaveLength(1);
  });

  it('bad duration (zero)', () => {
    const error = failure('version: 1\nresources:\n  timeout: 0s\n');
    expect([error.line, error.column]).toEqual([3, 12]);
    expect(error.message).toContain(
      `${FILE}:3:12: resources.timeout: expected a duration such as 30s, 5m, 1h30m, or a number of seconds, greater than 0`,
    );
  });

  it('bad endpoint (a URL instead of host:port)', () => {
    const error = failure(
      'version: 1\nnetwork:\n  allow:\n    - api.example.com:443\n    - https://api.example.com/v1\n',
    );
    expect([error.line, error.column]).toEqual([5, 7]);
    expect(issues(error)[0]?.keyPath).toBe('network.allow[1]');
    expect(error.message).toContain(
      `${FILE}:5:7: network.allow[1]: write the host and port without a scheme, e.g. 'api.example.com'`,
    );
  });

  it('bad endpoint (port out of range)', () => {
    const error = failure('version: 1\nnetwork:\n  allow: ["db.internal:70000"]\n');
    expect([error.line, error.column]).toEqual([3, 11]);
    expect(error.message).toContain('network.allow[0]: port 70000 is outside 1-65535');
  });

  it('internet: true together with an allow list', () => {
    const error = failure('version: 1\nnetwork:\n  internet: true\n  allow: [api.example.com]\n');
    expect([error.line, error.column]).toEqual([3, 3]);
    expect(error.message).toContain(
      `${FILE}:3:3: network.internet: true and network.allow cannot be combined: say which you mean.`,
    );
  });

  it('bad tier name, with a suggestion', () => {
    const error = failure('version: 1\ntier: sesion\n');
    expect([error.line, error.column]).toEqual([2, 7]);
    expect(issues(error)[0]?.suggestion).toBe('session');
    expect(error.message).toContain(
      `${FILE}:2:7: tier: expected one of process, session, microvm, wsl; got "sesion". Did you mean 'session'?`,
    );
  });

  it('negative processes.max', () => {
    const error = failure('version: 1\nprocesses:\n  max: -5\n');
    expect([error.line, error.column]).toEqual([3, 8]);
    expect(error.message).toContain(`${FILE}:3:8: processes.max: expected at least 1 process; got -5`);
  });

  it('version missing', () => {
    const error = failure('tier: process\n');
    expect([error.line, error.column]).toEqual([1, 1]);
    expect(error.message).toContain(`${FILE}:1:1: missing 'version': add 'version: 1' as the first line`);
  });

  it('version unsupported', () => {
    const error = failure('version: 2\n');
    expect([error.line, error.column]).toEqual([1, 10]);
    expect(error.message).toContain(
      `${FILE}:1:10: version: expected version: 1 (the only manifest schema version); got 2`,
    );
  });

  it('duplicate keys', () => {
    const error = failure('version: 1\nresources:\n  memory: 1GiB\n  memory: 2GiB\n');
    expect(error.code).toBe('MANIFEST_PARSE_ERROR');
    expect([error.line, error.column]).toEqual([4, 3]);
    expect(error.message).toContain(
      `${FILE}:4:3: duplicate key 'memory': each key may appear only once in a mapping`,
    );
  });

  it('a path whose ${env:NAME} is unset (it would escape to /secrets)', () => {
    const error = failure(
      'version: 1\nfilesystem:\n  write:\n    - ./out\n    - ${env:UNSET_FOR_TEST}/secrets\n',
      { compile: true },
    );
    expect(error.code).toBe('MANIFEST_INVALID');
    expect([error.line, error.column]).toEqual([5, 7]);
    expect(error.message).toContain(
      `${FILE}:5:7: filesystem.write[1]: '\${env:UNSET_FOR_TEST}/secrets': environment variable UNSET_FOR_TEST is not set, so this path would resolve to '/secrets'`,
    );
  });

  it('an unknown path variable', () => {
    const error = failure('version: 1\nfilesystem:\n  read: ["${home}/notes"]\n');
    expect([error.line, error.column]).toEqual([3, 10]);
    expect(error.message).toContain(
      "filesystem.read[0]: '${home}/notes': unknown variable '${home}'; use ${workspace} or ${env:NAME}",
    );
  });

  it('a document that is not a mapping', () => {
    const error = failure('- version: 1\n');
    expect([error.line, error.column]).toEqual([1, 1]);
    expect(issues(error)).toHaveLength(1);
    expect(error.message).toContain(
      `${FILE}:1:1: the manifest must be a mapping of keys to values, starting with 'version: 1'; found a list`,
    );
  });

  it('a list where a mapping belongs', () => {
    const error = failure('version: 1\nfilesystem:\n  - ./src\n');
    expect(issues(error)).toHaveLength(1);
    expect(error.message).toContain(
      `${FILE}:3:3: filesystem: expected a mapping of keys to values; found a list`,
    );
  });

  it('a bare ~ (YAML null) where a path belongs, with the hint to quote it', () => {
    const error = failure('version: 1\nfilesystem: { read: [~] }\n');
    expect([error.line, error.column]).toEqual([2, 22]);
    expect(error.message).toContain(
      `${FILE}:2:22: filesystem.read[0]: expected a path (a string); got null (in YAML an empty value or a bare ~ is null; write '~' in quotes for your home folder)`,
    );
  });

  it('an empty file', () => {
    const error = failure('');
    expect(error.code).toBe('MANIFEST_INVALID');
    expect(error.message).toContain(`${FILE}:1:1: the manifest must be a mapping`);
  });

  it('reports every problem at once, in file order, each located', () => {
    const error = failure(
      [
        'version: 1',
        'tier: proces',
        'netwrok: {}',
        'resources:',
        '  memory: lots',
        '  gpus: [-1]',
        'devices:',
        '  webcam: 1',
        'env:',
        '  inherit: ["MY-VAR"]',
        '',
      ].join('\n'),
    );
    const located = issues(error).map((issue) => `${issue.line}:${issue.column} ${issue.keyPath}`);
    expect(located).toEqual([
      '2:7 tier',
      '3:1 netwrok',
      '5:11 resources.memory',
      '6:10 resources.gpus[0]',
      '8:11 devices.webcam',
      '10:13 env.inherit[0]',
    ]);
    expect(error.message.split('\n')).toHaveLength(located.length + 2);
    for (const line of error.message.split('\n').slice(1, -1))
      expect(line).toMatch(new RegExp(`^  ${FILE}:\\d+:\\d+: `));
    expect(error.fix).toBeTruthy();
  });

  it('names <manifest> when the source has no file', () => {
    const error = (() => {
      try {
        parseManifest('version: 1\ntier: 3\n');
      } catch (caught) {
        return caught as BulkheadError;
      }
      throw new Error('expected a failure');
    })();
    expect(error.path).toBeUndefined();
    expect(error.message).toContain('<manifest>:2:7: tier:');
  });
});
