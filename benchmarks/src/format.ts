/** Milliseconds with the precision a reader can use: 0.42 ms, 7.8 ms, 153 ms, 1.24 s. */
export function formatMilliseconds(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value >= 100) return `${value.toFixed(0)} ms`;
  if (value >= 10) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(2)} ms`;
}

/** Bytes in binary units: 812 KiB, 3.4 MiB. */
export function formatBytes(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  const sign = value < 0 ? '-' : '';
  const magnitude = Math.abs(value);
  if (magnitude >= 1024 ** 3) return `${sign}${(magnitude / 1024 ** 3).toFixed(2)} GiB`;
  if (magnitude >= 1024 ** 2) return `${sign}${(magnitude / 1024 ** 2).toFixed(1)} MiB`;
  if (magnitude >= 1024) return `${sign}${(magnitude / 1024).toFixed(0)} KiB`;
  return `${sign}${magnitude.toFixed(0)} B`;
}

/** A multiple of the baseline: ×1.03, ×12.4, ×240. */
export function formatRatio(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  if (value >= 100) return `×${value.toFixed(0)}`;
  if (value >= 10) return `×${value.toFixed(1)}`;
  return `×${value.toFixed(2)}`;
}
