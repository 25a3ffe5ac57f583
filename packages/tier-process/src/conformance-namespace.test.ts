import { describeIsolationProvider } from '@bulkhead/conformance';
import { createProcessProvider } from './index.js';

describeIsolationProvider(createProcessProvider({ mode: 'namespace' }), {
  name: 'process tier, namespace mode',
  skip: {
    // bubblewrap (0.8) always exports PWD after its chdir, and the exec shim passes its environment
    // through unchanged: PWD (the workdir) is the one variable beyond PATH/HOME/TMPDIR/LANG. Needs the
    // shim to drop it (a plan line in @bulkhead/linux); no secret of the caller leaks through it.
    environment: 'bubblewrap always exports PWD and the exec shim cannot drop a variable yet',
  },
});
