import { describe, expect, it } from 'vitest';
import {
  probeBubblewrap,
  probeUserNamespaces,
  ROOT_CALLER_SANDBOX_ID,
  sandboxIdentity,
} from './host-facts.js';

describe('host facts', () => {
  it('finds bubblewrap and its version (CI installs it: apt-get install bubblewrap)', async () => {
    const facts = await probeBubblewrap();
    expect(facts.found).toBe(true);
    expect(facts.path).toMatch(/\/bwrap$/);
    expect(facts.version).toMatch(/^\d+\.\d+/);
  });

  it('says how to install bubblewrap when it is missing', async () => {
    const facts = await probeBubblewrap('/nonexistent/bwrap');
    expect(facts.found).toBe(false);
    expect(facts.fix).toContain('apt-get install bubblewrap');
    const namespaces = await probeUserNamespaces('/nonexistent/bwrap');
    expect(namespaces.usable).toBe(false);
    expect(namespaces.fix).toContain('apt-get install bubblewrap');
  });

  it('never gives a sandbox uid 0', () => {
    const identity = sandboxIdentity();
    expect(identity.uid).not.toBe(0);
    expect(identity.gid).not.toBe(0);
    if (process.getuid?.() === 0) {
      expect(identity).toEqual({
        uid: ROOT_CALLER_SANDBOX_ID,
        gid: ROOT_CALLER_SANDBOX_ID,
        switchFromRoot: true,
      });
    } else {
      expect(identity.uid).toBe(process.getuid?.());
    }
  });

  it('makes a user namespace for real on this host', async () => {
    const facts = await probeUserNamespaces();
    expect(facts, facts.reason).toEqual({ usable: true });
  });
});
