export * from './adopted-processes.js';
export * from './host-facts.js';
