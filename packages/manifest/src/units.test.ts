import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, parseDuration, parseSize } from './units.js';

describe('sizes', () => {
  it('reads decimal and binary units; a number is megabytes', () => {
    expect(parseSize('512MB')).toBe(512e6);
    expect(parseSize('512 mb')).toBe(512e6);
    expect(parseSize('1GiB')).toBe(2 ** 30);
    expect(parseSize('1.5GiB')).toBe(1.5 * 2 ** 30);
    expect(parseSize('64KiB')).toBe(65536);
    expect(parseSize('1TB')).toBe(1e12);
    expect(parseSize('100B')).toBe(100);
    expect(parseSize(256)).toBe(256e6);
    expect(parseSize('256')).toBe(256e6);
  });

  it('refuses what is not a positive size', () => {
    for (const bad of ['5 gigs', '0MB', '-1GB', 'GiB', '', '1e3MB', 0, -5, Number.NaN])
      expect(parseSize(bad)).toBeUndefined();
  });

  it('formats back in the largest exact unit', () => {
    expect(formatBytes(2 ** 30)).toBe('1 GiB');
    expect(formatBytes(512e6)).toBe('512 MB');
    expect(formatBytes(1500)).toBe('1500 B');
  });
});

describe('durations', () => {
  it('reads ms, s, m, h and combinations; a number is seconds', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration(90)).toBe(90_000);
    expect(parseDuration('90')).toBe(90_000);
  });

  it('refuses what is not a positive duration', () => {
    for (const bad of ['0s', 'soon', '5 minutes', '-5s', '', 0, -1])
      expect(parseDuration(bad)).toBeUndefined();
  });

  it('formats back', () => {
    expect(formatDuration(600_000)).toBe('10m');
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(1500)).toBe('1500ms');
  });
});
