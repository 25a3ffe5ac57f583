import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '@bulkhead/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createProcessProvider } from './index.js';
import { capabilitiesFor, makeWorkspace } from './test-support.js';

const modes = ['namespace', 'shim-only'] as const;
const folders: string[] = [];
afterAll(() => Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true }))));

// The manifest's rule: the most specific path wins. A read grant inside a write grant is read-only,
// in both modes. Everything in it is world-writable, so that only the sandbox's boundary can refuse.
describe.each(modes)('process tier, %s mode: a read grant inside a write grant', (mode) => {
  it('is read-only, while the rest of the write grant stays writable', async () => {
    const workspace = await makeWorkspace();
    const vendor = join(workspace, 'vendor');
    const other = join(workspace, 'other');
    await mkdir(join(vendor, 'deeper'), { recursive: true });
    await mkdir(other);
    await writeFile(join(vendor, 'library.txt'), 'library\n');
    for (const path of [vendor, join(vendor, 'deeper'), other]) await chmod(path, 0o777);
    await chmod(join(vendor, 'library.txt'), 0o666);
    const result = await run({
      providers: [createProcessProvider({ mode })],
      tier: 'process',
      capabilities: capabilitiesFor(workspace, (base) => ({
        ...base,
        filesystem: { ...base.filesystem, read: [...base.filesystem.read, vendor] },
      })),
      command: [
        'sh',
        '-c',
        [
          'cat vendor/library.txt',
          'echo tampered >> vendor/library.txt && echo appended',
          // In a subshell: a failed redirection of `:` (a special builtin) ends the shell itself.
          '(: > vendor/library.txt) && echo truncated',
          'touch vendor/new && echo created',
          'touch vendor/deeper/new && echo created-deeper',
          'mkdir vendor/folder && echo made-folder',
          'rm vendor/library.txt && echo removed',
          'mv vendor/deeper vendor/moved && echo renamed',
          'touch other/new && echo sibling-writable',
        ].join(' 2>/dev/null; '),
      ],
    });
    expect(result.stdout, result.stderr).toBe('library\nsibling-writable\n');
  });

  it('cannot be created when it does not exist yet, while an existing folder beside it stays writable', async () => {
    // Not under /tmp: in namespace mode that is the sandbox's own writable /tmp, whose Landlock rule
    // covers whatever is mounted beneath it (the plan's warnings say so).
    const workspace = await mkdtemp(join('/var/tmp', 'bulkhead-nested-grants-'));
    folders.push(workspace);
    await chmod(workspace, 0o777);
    const other = join(workspace, 'other');
    await mkdir(other);
    await chmod(other, 0o777);
    const result = await run({
      providers: [createProcessProvider({ mode })],
      tier: 'process',
      capabilities: capabilitiesFor(workspace, (base) => ({
        ...base,
        filesystem: { ...base.filesystem, read: [...base.filesystem.read, join(workspace, 'later')] },
      })),
      command: [
        'sh',
        '-c',
        'mkdir later 2>/dev/null && echo created; touch other/new && echo sibling-writable',
      ],
    });
    expect(result.stdout, result.stderr).toBe('sibling-writable\n');
  });
});
