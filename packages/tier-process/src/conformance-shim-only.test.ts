import { describeIsolationProvider } from '@bulkhead/conformance';
import { createProcessProvider } from './index.js';

describeIsolationProvider(createProcessProvider({ mode: 'shim-only' }), {
  name: 'process tier, shim-only mode',
});
