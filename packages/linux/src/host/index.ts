export * from './adopted-processes.js';
export * from './host-facts.js';
export * from './sandbox-leftovers.js';
