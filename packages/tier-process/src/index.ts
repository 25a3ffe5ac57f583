export type { ProcessSandbox } from './launch-process-sandbox.js';
export type { ProbeCacheOptions } from './probe-cache.js';
export type { ProcessMode } from './probe-process-tier.js';
export {
  createProcessProvider,
  type PreparedProcessSandbox,
  type ProcessProvider,
  type ProcessProviderOptions,
} from './process-provider.js';
export type { ProcessEgressOptions } from './sandbox-egress.js';
