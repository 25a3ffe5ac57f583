/**
 * Synchronous clean-up for whatever a process still holds when it exits (`process.exit()`, the end
 * of its event loop, an uncaught exception): host mounts, cgroups, prepared sandboxes. Only
 * synchronous work can run then. A process killed outright (SIGKILL, a signal it does not handle)
 * runs none of it: the tiers' reapers remove what such an owner left, at their next start.
 */
const actions = new Set<() => void>();
let listening = false;

function runAll(): void {
  for (const action of [...actions]) {
    actions.delete(action);
    try {
      action();
    } catch {
      // One failed clean-up must not keep the others from running.
    }
  }
}

/**
 * Runs `action` once at process exit, unless the returned function is called first (the resource
 * was released the ordinary way). One exit listener serves every caller in the process.
 */
export function onProcessExit(action: () => void): () => void {
  actions.add(action);
  if (!listening) {
    listening = true;
    process.once('exit', runAll);
  }
  return () => {
    actions.delete(action);
  };
}
