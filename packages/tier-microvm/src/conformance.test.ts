import { describeIsolationProvider } from '@bulkhead/conformance';
import { createMicrovmProvider } from './index.js';

const GUEST_PROCESSES =
  "the payload's processes live in the guest kernel, invisible in the host's /proc; microvm.test.ts proves instead that dispose leaves no VMM or jail process on the host";

// Software emulation is allowed so that the suite proves the tier on hosts without usable KVM (this
// project's CI: nested PVM). Functional results must not depend on the accelerator.
describeIsolationProvider(createMicrovmProvider({ acceleration: 'any' }), {
  name: 'microvm tier (KVM or TCG)',
  // TCG runs guest code about 20x slower than the host, and boots take seconds.
  timeoutScale: 4,
  skip: {
    // The test needs to see the payload's processes on the host before dispose; a guest's are not there.
    'dispose-leaves-no-process': GUEST_PROCESSES,
    'dispose-ends-setsid-descendant': GUEST_PROCESSES,
  },
});
