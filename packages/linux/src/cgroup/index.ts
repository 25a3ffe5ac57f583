export {
  buildCgroupLayout,
  type CgroupController,
  type CgroupHierarchy,
  type CgroupLayout,
  readCgroupLayout,
} from './cgroup-layout.js';
export {
  type CgroupBase,
  type CgroupFeature,
  type CgroupMechanism,
  type CgroupSupport,
  type CgroupUnavailable,
  cgroupDelegationFix,
  probeCgroupSupport,
} from './cgroup-support.js';
export {
  type CgroupLimits,
  type CgroupStatistics,
  createSandboxCgroup,
  type PreparedSandboxCgroup,
  prepareSandboxCgroup,
  reapStaleCgroups,
  type SandboxCgroup,
  sandboxCgroupName,
} from './sandbox-cgroup.js';
