import { expectTypeOf, test } from 'vitest';
import type { ConformanceTestName, DescribeIsolationProviderOptions } from './index.js';

test('skips are typed by test name', () => {
  const options: DescribeIsolationProviderOptions = {
    skip: { 'memory-hog': 'a reason', 'dispose-leaves-no-cgroup': 'another reason' },
  };
  expectTypeOf(options.skip).toEqualTypeOf<Partial<Record<ConformanceTestName, string>> | undefined>();
  // @ts-expect-error a misspelt test name does not compile
  const typo: DescribeIsolationProviderOptions = { skip: { 'memory-hgo': 'a reason' } };
  expectTypeOf(typo).not.toBeAny();
});
