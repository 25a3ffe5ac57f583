import { describeIsolationProvider, NETWORK_ESCAPE_CASE_IDS } from '@bulkhead/conformance';
import { createMicrovmProvider } from './index.js';

/**
 * The escape corpus's network and IPC cases again, with the guest on an allow-list (restricted user
 * networking and the egress proxy) instead of no NIC: every host the cases try is off the list, so each
 * must still be refused. The other cases do not depend on the network mode; the suite in
 * conformance.test.ts runs them.
 */
describeIsolationProvider(createMicrovmProvider({ acceleration: 'any' }), {
  name: 'microvm tier with an allow-list (KVM or TCG)',
  timeoutScale: 4,
  // An allow-list naming only a documentation address (TEST-NET-1) that no case targets.
  capabilities: (capabilities) => ({
    ...capabilities,
    network: { mode: 'allowlist', allow: [{ host: '192.0.2.1', port: 9 }] },
  }),
  only: NETWORK_ESCAPE_CASE_IDS,
});
