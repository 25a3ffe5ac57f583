export type { ProcessMode } from './probe-process-tier.js';
export { createProcessProvider, type ProcessProviderOptions } from './process-provider.js';
