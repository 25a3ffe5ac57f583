/**
 * The parts of the suite that do not need vitest: the escape corpus as data, the attack helper, the
 * base capabilities and the host inspection helpers. For harnesses other than vitest (a guest's init,
 * a benchmark, `bulkhead doctor`).
 */
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
  NETWORK_ESCAPE_CASE_IDS,
  parseHelperVerdict,
} from './escape-cases.js';
export type {
  HostFixtureName,
  HostFixtures,
  HostProcess,
  HostTerminal,
  RecordingServer,
} from './host-fixtures.js';
export { findProcessesByMarker, newMounts, readMounts } from './host-inspection.js';
export {
  failedTests,
  type RunVitestAsUserOptions,
  runVitestAsUser,
  type VitestJsonReport,
} from './run-vitest-as-user.js';
