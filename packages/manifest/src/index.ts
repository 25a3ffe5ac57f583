export {
  type CompiledManifest,
  type CompileOptions,
  compileManifest,
  defaultCapabilities,
  type RuleOrigin,
} from './compile.js';
export {
  DEFAULT_ENV_INHERIT,
  DEFAULT_MAX_PROCESSES,
  DEFAULT_MEMORY_BYTES,
  DEFAULT_TIMEOUT_MS,
  SYSTEM_READ_PATHS,
  SYSTEM_SECRET_PATHS,
} from './defaults.js';
export {
  DEFAULT_PORTS,
  type EndpointParseResult,
  endpointCovers,
  formatEndpoint,
  parseEndpoint,
} from './endpoint.js';
export { explainCapabilities } from './explain.js';
export { MANIFEST_SCHEMA_ID, manifestJsonSchema, policyJsonSchema } from './json-schema.js';
export {
  loadManifest,
  type ManifestDocument,
  type ParseManifestOptions,
  parseManifest,
} from './manifest-document.js';
export {
  type ImportMxcOptions,
  importMxcConfig,
  isMxcConfig,
  loadMxcConfig,
  type MxcImport,
} from './mxc-import.js';
export { applyOverrides, type ManifestOverrides } from './overrides.js';
export { expandPath, type PathContext, resolvePathRules, ruleFor } from './paths.js';
export {
  createPolicy,
  DEFAULT_POLICY_PATH,
  loadPolicy,
  loadPolicySync,
  type Policy,
  type PolicyV1,
  parsePolicy,
} from './policy.js';
export { MANIFEST_TIERS, ManifestSchema, type ManifestV1 } from './schema.js';
export {
  formatIssue,
  type KeySegment,
  type ManifestIssue,
  type SourceFormat,
  type SourceLocation,
} from './source-document.js';
export { starterManifest } from './starter-manifest.js';
export { formatBytes, formatDuration, parseDuration, parseSize } from './units.js';
