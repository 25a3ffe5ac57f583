/**
 * Sizes and durations as people write them in a manifest. A bare number means megabytes for sizes
 * and seconds for durations, the units a person would guess first.
 */

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * `512MB`, `1.5GiB`, `256` (megabytes). Units are case-insensitive; KB/MB/GB are powers of 1000.
 * Spelled without regex flags because the JSON Schema's `pattern` carries none.
 */
export const SIZE_PATTERN = /^\s*\d+(?:\.\d+)?\s*(?:[kKmMgGtT][iI]?[bB]|[bB])?\s*$/;

/** `30s`, `5m`, `1h30m`, `250ms`, `90` (seconds); flag-free like SIZE_PATTERN. */
export const DURATION_PATTERN = /^\s*(?:\d+(?:\.\d+)?\s*(?:[mM][sS]|[sSmMhH])\s*)+$|^\s*\d+(?:\.\d+)?\s*$/;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Bytes of a size, or undefined when it is not one. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number')
    return Number.isFinite(value) && value > 0 ? Math.round(value * 1e6) : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = (match[2] ?? '').toLowerCase();
  const factor = unit === '' ? 1e6 : SIZE_UNITS[unit];
  if (factor === undefined) return undefined;
  const bytes = Math.round(amount * factor);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** Milliseconds of a duration, or undefined when it is not one. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number')
    return Number.isFinite(value) && value > 0 ? Math.round(value * 1000) : undefined;
  const trimmed = value.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return parseDuration(Number(trimmed));
  if (!DURATION_PATTERN.test(trimmed)) return undefined;
  let total = 0;
  for (const match of trimmed.matchAll(/(\d+(?:\.\d+)?)\s*(ms|s|m|h)/gi)) {
    total += Number(match[1]) * (DURATION_UNITS[(match[2] ?? '').toLowerCase()] ?? Number.NaN);
  }
  const milliseconds = Math.round(total);
  return milliseconds > 0 && Number.isSafeInteger(milliseconds) ? milliseconds : undefined;
}

/** `1 GiB`, `512 MB`, `1500 B`: the largest unit that divides evenly, binary before decimal. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'unlimited';
  for (const [unit, factor] of [
    ['TiB', 2 ** 40],
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['TB', 1e12],
    ['GB', 1e9],
    ['MB', 1e6],
    ['KiB', 2 ** 10],
    ['kB', 1e3],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor} ${unit}`;
  }
  return `${bytes} B`;
}

/** `10m`, `1h30m`, `2.5s`. */
export function formatDuration(milliseconds: number): string {
  if (!Number.isFinite(milliseconds)) return 'unlimited';
  if (milliseconds % 1000 !== 0) return `${milliseconds}ms`;
  let seconds = milliseconds / 1000;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const parts = [hours ? `${hours}h` : '', minutes ? `${minutes}m` : '', seconds ? `${seconds}s` : ''];
  return parts.join('') || '0s';
}
