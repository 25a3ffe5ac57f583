export { classifyAddress, embeddedIPv4, type SpecialAddressRange } from './address-ranges.js';
export {
  compilePolicy,
  type EgressDecision,
  type EgressPolicy,
  type EgressResolver,
  judgeDestination,
  type RefusalReason,
} from './egress-policy.js';
export {
  createEgressProxy,
  type EgressChannel,
  type EgressProtocol,
  type EgressProxy,
  type EgressProxyOptions,
  getEgressProxy,
  type OpenChannelOptions,
} from './egress-proxy.js';
export {
  type EgressRule,
  formatEndpoint,
  matchEndpoint,
  type NormalizedHost,
  normalizeHost,
  type ParsedRule,
  parseEndpointText,
  parseRule,
  type RuleKind,
} from './egress-rules.js';
export { proxyEnvironment, withProxyEnvironment } from './proxy-environment.js';
export {
  createStaticResolver,
  parseResolveEntry,
  rulesForResolveEntries,
  systemResolver,
} from './resolver.js';
export { defaultSocketDirectory } from './socket-directory.js';
export type { SendWithDescriptor } from './upstream-handover.js';
