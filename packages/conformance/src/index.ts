export {
  ATTACK_HELPER_NAME,
  attackHelperSource,
  compileAttackHelper,
  type EnsureAttackHelperOptions,
  ensureAttackHelper,
} from './attack-helper.js';
export { type BaseCapabilitiesOptions, createBaseCapabilities } from './base-capabilities.js';
export {
  BEHAVIOUR_TESTS,
  type BehaviourTestName,
  CONFORMANCE_TESTS,
  type ConformanceTestName,
} from './conformance-tests.js';
export { describeIsolationProvider } from './describe-isolation-provider.js';
export { ESCAPE_CASE_IDS, type EscapeCaseId } from './escape-case-ids.js';
export {
  ESCAPE_CASES,
  ESCAPE_MAX_PROCESSES,
  ESCAPE_MEMORY_BYTES,
  type EscapeCase,
  type EscapeCategory,
  type EscapeContext,
  type EscapeObservation,
  type EscapeVerdict,
  type HelperVerdict,
  judgeByHelper,
  parseHelperVerdict,
} from './escape-cases.js';
export { runEscapeCase } from './escape-runner.js';
export type {
  HostFixtureName,
  HostFixtures,
  HostProcess,
  HostTerminal,
  RecordingServer,
} from './host-fixtures.js';
export { findProcessesByMarker, newMounts, readMounts } from './host-inspection.js';
export {
  CONFORMANCE_TEMPORARY_PREFIX,
  type DescribeIsolationProviderOptions,
  type ProviderSource,
  type SuiteState,
} from './suite-state.js';
