export * from './host-facts.js';
