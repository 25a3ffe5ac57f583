import { describe, expect, it } from 'vitest';
import * as manifest from './index.js';

describe('the public API', () => {
  it('exports every function other packages code against', () => {
    for (const name of [
      'parseManifest',
      'loadManifest',
      'compileManifest',
      'defaultCapabilities',
      'applyOverrides',
      'loadPolicy',
      'loadPolicySync',
      'parsePolicy',
      'manifestJsonSchema',
      'importMxcConfig',
      'loadMxcConfig',
      'isMxcConfig',
      'starterManifest',
      'explainCapabilities',
    ]) {
      expect(typeof (manifest as Record<string, unknown>)[name], name).toBe('function');
    }
  });
});
