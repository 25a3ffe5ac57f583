export {
  ALLOW_SOFTWARE_EMULATION_FIX,
  type KvmProbeOptions,
  type KvmVerdict,
  kvmModule,
  probeKvm,
} from './accelerator-probe.js';
export { defaultCacheDirectory } from './cache-directory.js';
export {
  encodeFrame,
  encodeLaunch,
  FRAME,
  type Frame,
  FrameDecoder,
  type FrameType,
  type GuestExitReport,
  type GuestLaunch,
  parseExitReport,
} from './control-channel.js';
export { type CpioEntry, createCpioArchive } from './cpio.js';
export { ensureGuestInit, ensureInitramfs, type InitramfsOptions } from './guest-image.js';
export {
  buildGuestKernel,
  findGuestKernel,
  formatKernelProgress,
  GUEST_KERNEL_FRAGMENT,
  type GuestKernel,
  type GuestKernelOptions,
  type GuestKernelProgress,
  guestKernelLocation,
  missingKernelOptions,
} from './guest-kernel.js';
export { type HostRequirement, MICROVM_HOST_REQUIREMENTS } from './host-requirements.js';
export {
  createMicrovmProvider,
  type MicrovmProvider,
  type MicrovmProviderOptions,
  type MicrovmSandbox,
} from './microvm-provider.js';
export {
  type Accelerator,
  BASE_KERNEL_ARGUMENTS,
  createCloudHypervisorBackend,
  createFirecrackerBackend,
  createQemuMicrovmBackend,
  type VirtualMachineSpec,
  type VmmBackend,
  type VmmCommand,
  type VmmProbe,
} from './vmm-backend.js';
export { buildJailArguments, JAIL_PATHS, type JailOptions } from './vmm-jail.js';
