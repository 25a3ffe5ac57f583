import { main } from './main.js';

// The run command says in its own words when a tier gives no isolation; Node's copy of that
// warning would only repeat it. Every other warning is printed as Node would.
const [printNodeWarning] = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning: Error & { code?: string }) => {
  if (warning.code === 'BULKHEAD_NO_ISOLATION') return;
  printNodeWarning?.(warning);
});

const status = await main(process.argv.slice(2));
// Whatever still holds the event loop (a terminal on stdin) must not keep a finished CLI alive; on
// Linux, writes to pipes and files are synchronous, so nothing written is lost.
process.exit(status);
