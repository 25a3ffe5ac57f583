import { buildGuestKernel, findGuestKernel, formatKernelProgress } from '../guest-kernel.js';

/**
 * The guest kernel is built once, before any test, when the cache lacks it (minutes; its progress
 * is shown). Tests never build kernels themselves.
 */
export default async function setup(): Promise<void> {
  if (findGuestKernel()) return;
  process.stderr.write('tier-microvm: building the guest kernel once (several minutes)...\n');
  await buildGuestKernel({
    onProgress: (progress) => process.stderr.write(`${formatKernelProgress(progress)}\n`),
  });
}
