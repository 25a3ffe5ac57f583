import { describeIsolationProvider } from '@bulkhead/conformance';
import { testSessionProvider } from './test-support.js';

describeIsolationProvider(testSessionProvider(), {
  name: 'session tier',
  skip: {
    // bubblewrap (0.8) always exports PWD after its chdir (as on the process tier), and this tier sets
    // XDG_RUNTIME_DIR to the sandbox's private runtime folder: two variables beyond PATH/HOME/TMPDIR/LANG,
    // neither carrying anything of the caller's.
    environment: 'bubblewrap exports PWD and the session tier sets XDG_RUNTIME_DIR to its private folder',
  },
});
