import { createNoneProvider } from '@bulkhead/core';
import { describeIsolationProvider } from './index.js';

// The none tier isolates nothing: it is here to prove that every escape case CAN fail (each must
// escape), and that the behaviour tests hold for a plain child process. The skips are the contract
// points a plain child process cannot meet; every real tier must meet them.
describeIsolationProvider(createNoneProvider(), {
  expectEscapes: true,
  skip: {
    'command-not-found':
      'the none tier spawns the payload directly, so Node reports ENOENT as a launch error',
    'command-not-executable':
      'the none tier spawns the payload directly, so Node reports EACCES as a launch error',
    'timeout-ends-setsid-descendant': 'the none tier kills a process group; a setsid descendant leaves it',
    'dispose-ends-setsid-descendant': 'the none tier kills a process group; a setsid descendant leaves it',
  },
});
