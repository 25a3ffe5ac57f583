import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { MICROVM_HOST_REQUIREMENTS } from './host-requirements.js';

const here = fileURLToPath(new URL('.', import.meta.url));

it('declares every program the tier runs', () => {
  const declared = new Set(MICROVM_HOST_REQUIREMENTS.map((requirement) => requirement.program));
  const used = new Set<string>();
  for (const file of readdirSync(here).filter((name) => name.endsWith('.ts') && !name.endsWith('.test.ts'))) {
    const source = readFileSync(join(here, file), 'utf8');
    for (const match of source.matchAll(/(?:findOnPath|spawnSync|spawn)\('([^']+)'/g)) used.add(match[1]!);
    // Programs run through the nice wrapper of the kernel build.
    for (const match of source.matchAll(/\brun\('([^']+)'/g)) used.add(match[1]!);
  }
  const undeclared = [...used].filter((program) => !program.includes('/') && !declared.has(program));
  expect(undeclared).toEqual([]);
  expect(used.size).toBeGreaterThan(3);
});
