import { describeIsolationProvider } from '@bulkhead/conformance';
import type { Capabilities } from '@bulkhead/core';
import { createProcessProvider } from './index.js';

// TEMPORARY: the suite's base passes home = workspace to defaultCapabilities, which then drops the
// workspace write grant its own JSDoc promises. Restores exactly that one grant.
const withWorkspace = (capabilities: Capabilities): Capabilities =>
  capabilities.filesystem.write.includes(capabilities.workdir) ||
  capabilities.filesystem.read.includes(capabilities.workdir)
    ? capabilities
    : {
        ...capabilities,
        filesystem: {
          ...capabilities.filesystem,
          write: [...capabilities.filesystem.write, capabilities.workdir],
        },
      };

describeIsolationProvider(createProcessProvider({ mode: 'namespace' }), {
  name: 'process tier, namespace mode',
  capabilities: withWorkspace,
});
