export * from './corpus.js';
export { describeIsolationProvider } from './describe-isolation-provider.js';
export { runEscapeCase } from './escape-runner.js';
export {
  CONFORMANCE_TEMPORARY_PREFIX,
  type DescribeIsolationProviderOptions,
  type ProviderSource,
  type SuiteState,
} from './suite-state.js';
