import { main } from './main.js';

// The run command says in its own words when a tier gives no isolation; Node's copy of that
// warning would only repeat it. Every other warning is printed as Node would.
const [printNodeWarning] = process.listeners('warning');
process.removeAllListeners('warning');
process.on('warning', (warning: Error & { code?: string }) => {
  if (warning.code === 'BULKHEAD_NO_ISOLATION') return;
  printNodeWarning?.(warning);
});

// A reader that went away (`| head -1`) is handled by the run command like SIGPIPE; it must never
// crash the CLI with an unhandled EPIPE from a last line written afterwards.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

const status = await main(process.argv.slice(2));
// Whatever still holds the event loop (a terminal on stdin) must not keep a finished CLI alive; on
// Linux, writes to pipes and files are synchronous, so nothing written is lost.
process.exit(status);
