export * from './bubblewrap-arguments.js';
export * from './id-mapped-mounts.js';
export * from './runtime-directory.js';
export * from './sandbox-grants.js';
