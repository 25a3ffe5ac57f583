import { describeIsolationProvider, NETWORK_ESCAPE_CASE_IDS } from '@bulkhead/conformance';
import { createProcessProvider } from './index.js';

/**
 * The escape corpus's network and IPC cases again, with the sandbox on an allow-list (its network
 * namespace holds the egress relay) instead of an empty namespace: every host the cases try is off the
 * list, so each must still be refused. The other cases do not depend on the network mode;
 * conformance-namespace.test.ts runs them.
 */
describeIsolationProvider(createProcessProvider({ mode: 'namespace' }), {
  name: 'process tier, namespace mode, with an allow-list',
  // An allow-list naming only a documentation address (TEST-NET-1) that no case targets.
  capabilities: (capabilities) => ({
    ...capabilities,
    network: { mode: 'allowlist', allow: [{ host: '192.0.2.1', port: 9 }] },
  }),
  only: NETWORK_ESCAPE_CASE_IDS,
});
