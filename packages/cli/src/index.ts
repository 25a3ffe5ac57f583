export type { CommandContext } from './command-context.js';
export type { DoctorReport, DoctorTierReport } from './commands/doctor.js';
export { EXIT_STATUS, exitStatusOf } from './exit-status.js';
export type { CliIo } from './io.js';
export { createProgram, type MainOptions, main, processIo } from './main.js';
export {
  KNOWN_TIERS,
  type KnownTier,
  loadInstalledTiers,
  type TierFactoryOptions,
  type TierInstallation,
} from './tiers.js';
