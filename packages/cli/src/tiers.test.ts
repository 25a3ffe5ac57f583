import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { capturedIo } from './captured-io.js';
import { main } from './main.js';
import { standInImporter, standInProvider } from './stand-in-tier.js';

let directory: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'bulkhead-cli-tiers-'));
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** Every known tier as an installed stand-in, except those marked unavailable. */
function installedTiers(unavailable: string[] = []) {
  const module = (tier: string, factory: string) => ({
    [factory]: () => standInProvider(tier, { available: !unavailable.includes(tier) }),
  });
  return standInImporter({
    '@bulkhead/tier-process': module('process', 'createProcessProvider'),
    '@bulkhead/tier-session': module('session', 'createSessionProvider'),
    '@bulkhead/tier-microvm': module('microvm', 'createMicrovmProvider'),
    '@bulkhead/tier-wsl': module('wsl', 'createWslProvider'),
  });
}

async function run(argv: string[], importer: ReturnType<typeof installedTiers>) {
  const io = capturedIo({ cwd: directory });
  const status = await main(argv, io, { importModule: importer });
  // With --json, the result is the last line of stderr.
  const last = io.errors().trim().split('\n').at(-1) ?? '';
  const json = (argv.includes('--json') ? JSON.parse(last) : {}) as { tier?: string };
  return { status, stderr: io.errors(), json };
}

describe('which tier packages bulkhead run loads', () => {
  it('loads only the process tier when it serves the run', async () => {
    const importer = installedTiers();
    const result = await run(['run', '--json', '--', 'true'], importer);
    expect(result.status).toBe(0);
    expect(result.json.tier).toBe('process');
    expect(importer.imported).toEqual(['@bulkhead/tier-process']);
  });

  it('climbs the ladder one package at a time when the process tier cannot serve', async () => {
    const importer = installedTiers(['process']);
    const result = await run(['run', '--json', '--', 'true'], importer);
    expect(result.status).toBe(0);
    expect(result.json.tier).toBe('session');
    expect(importer.imported).toEqual(['@bulkhead/tier-process', '@bulkhead/tier-session']);
  });

  it('starts the ladder at the manifest’s minimum tier', async () => {
    await writeFile(join(directory, 'bulkhead.yaml'), 'version: 1\ntier: microvm\n');
    const importer = installedTiers();
    const result = await run(['run', '--json', '--', 'true'], importer);
    expect(result.json.tier).toBe('microvm');
    expect(importer.imported).toEqual(['@bulkhead/tier-microvm']);
  });

  it('names every tier it ruled out when none can serve', async () => {
    const importer = installedTiers(['process', 'session', 'wsl', 'microvm']);
    const result = await run(['run', '--', 'true'], importer);
    expect(result.status).toBe(125);
    for (const tier of ['process', 'session', 'wsl', 'microvm'])
      expect(result.stderr).toContain(`${tier}: unavailable`);
  });

  it('loads only the package of a named tier, and none for --tier none', async () => {
    const importer = installedTiers();
    expect((await run(['run', '--tier', 'session', '--json', '--', 'true'], importer)).json.tier).toBe(
      'session',
    );
    expect(importer.imported).toEqual(['@bulkhead/tier-session']);
    const noTiers = installedTiers();
    expect((await run(['run', '--tier', 'none', '--', 'true'], noTiers)).status).toBe(0);
    expect(noTiers.imported).toEqual([]);
  });

  it('says which packages would serve a minimum tier when none of them is installed', async () => {
    await writeFile(join(directory, 'bulkhead.yaml'), 'version: 1\ntier: microvm\n');
    const importer = standInImporter({
      '@bulkhead/tier-process': { createProcessProvider: () => standInProvider('process') },
    });
    const result = await run(['run', '--', 'true'], importer);
    expect(result.status).toBe(125);
    expect(result.stderr).toContain("No tier at or above 'microvm'");
    expect(result.stderr).toContain('npm i @bulkhead/tier-microvm');
  });

  it('doctor still loads every known tier', async () => {
    const importer = installedTiers();
    await main(['doctor', '--json'], capturedIo({ cwd: directory }), { importModule: importer });
    expect([...importer.imported].sort()).toEqual([
      '@bulkhead/tier-microvm',
      '@bulkhead/tier-process',
      '@bulkhead/tier-session',
      '@bulkhead/tier-wsl',
    ]);
  });
});
