import { describeIsolationProvider } from '@bulkhead/conformance';
import { createProcessProvider } from './index.js';

describeIsolationProvider(createProcessProvider({ mode: 'namespace' }), {
  name: 'process tier, namespace mode',
});
