export * from './landlock/landlock-abi.js';
export * from './landlock/landlock-planner.js';
export * from './landlock/landlock-rights.js';
export * from './seccomp/compile-seccomp-filter.js';
export * from './seccomp/seccomp-policy.js';
export * from './shim/ensure-shim.js';
export * from './shim/plan-shim.js';
export * from './shim/shim-status.js';
