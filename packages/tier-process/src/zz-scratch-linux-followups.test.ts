// Scratch (not committed): the conformance suite without the two skips @bulkhead/linux now closes.
import { describeIsolationProvider } from '@bulkhead/conformance';
import { createProcessProvider } from './index.js';

describeIsolationProvider(createProcessProvider({ mode: 'namespace' }), {
  name: 'process tier, namespace mode, no skips',
});
describeIsolationProvider(createProcessProvider({ mode: 'shim-only' }), {
  name: 'process tier, shim-only mode, no skips',
});
