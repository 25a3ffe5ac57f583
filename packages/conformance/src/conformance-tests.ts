import { ESCAPE_CASE_IDS } from './escape-case-ids.js';

/**
 * The behaviour tests, by name. Each is a promise the provider contract of `@bulkhead/core` makes to a
 * caller; see the package README for what each one checks.
 */
export const BEHAVIOUR_TESTS = [
  'exit-code-zero',
  'exit-code-one',
  'exit-code-forty-two',
  'signal-sigterm',
  'signal-sigkill',
  'stdout-stderr-streaming',
  'large-output',
  'stdin',
  'working-directory',
  'environment',
  'command-not-found',
  'command-not-executable',
  'timeout',
  'timeout-ends-grandchild',
  'timeout-ends-setsid-descendant',
  'kill',
  'dispose-leaves-no-process',
  'dispose-ends-setsid-descendant',
  'dispose-leaves-no-mount',
  'dispose-leaves-no-temporary-directory',
  'dispose-leaves-no-cgroup',
] as const;

export type BehaviourTestName = (typeof BEHAVIOUR_TESTS)[number];

/** Every test of the suite: the behaviour tests, then one per escape case (named by its id). */
export const CONFORMANCE_TESTS = [...BEHAVIOUR_TESTS, ...ESCAPE_CASE_IDS] as const;

/** A test name, as `skip` takes it: a typo is a compile error. */
export type ConformanceTestName = (typeof CONFORMANCE_TESTS)[number];
