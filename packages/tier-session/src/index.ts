export type { IdRange } from './identity-pool.js';
export { defaultAuditLogPath, type IdentityRecord } from './identity-record.js';
export { DEFAULT_TRANSIENT_IDS, type DisplayMode } from './probe-session-tier.js';
export {
  createSessionProvider,
  type SessionProvider,
  type SessionProviderOptions,
  type SessionSandbox,
} from './session-provider.js';
