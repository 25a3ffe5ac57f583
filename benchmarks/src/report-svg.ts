import { formatBytes, formatMilliseconds } from './format.js';
import type { BenchResult } from './result.js';

interface Bar {
  label: string;
  family: 'baseline' | 'bulkhead' | 'peer';
  value: number;
  /** Whisker (min–max), when the figure has samples. */
  low?: number;
  high?: number;
  text: string;
}

interface Panel {
  title: string;
  /** Label of an axis tick (a power of ten in the panel's unit). */
  tick: (value: number) => string;
  bars: Bar[];
}

const MEBIBYTE = 1024 * 1024;
const COLOURS = { baseline: '#8a8f98', bulkhead: '#2563eb', peer: '#ea7a1a' } as const;
const WIDTH = 920;
const LABEL_WIDTH = 250;
const VALUE_WIDTH = 90;
const ROW_HEIGHT = 22;
const PANEL_TITLE = 30;
const AXIS_HEIGHT = 24;
const PLOT_WIDTH = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20;

function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

/** Powers of ten that enclose every positive value; log scales need a strictly positive domain. */
export function logDomain(values: number[]): [number, number] {
  const positive = values.filter((value) => value > 0 && Number.isFinite(value));
  if (positive.length === 0) return [1, 10];
  const low = 10 ** Math.floor(Math.log10(Math.min(...positive)));
  let high = 10 ** Math.ceil(Math.log10(Math.max(...positive)));
  if (high <= low) high = low * 10;
  return [low, high];
}

function renderPanel(panel: Panel, top: number): { svg: string; height: number } {
  const values = panel.bars.flatMap((bar) => [bar.value, bar.low ?? bar.value, bar.high ?? bar.value]);
  const [low, high] = logDomain(values);
  const x = (value: number) => {
    const clamped = Math.min(Math.max(value, low), high);
    return (
      LABEL_WIDTH +
      ((Math.log10(clamped) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))) * PLOT_WIDTH
    );
  };
  const parts: string[] = [];
  parts.push(`<text x="10" y="${top + 20}" class="title">${escapeXml(panel.title)}</text>`);
  const plotTop = top + PANEL_TITLE;
  const plotBottom = plotTop + panel.bars.length * ROW_HEIGHT;
  for (let exponent = Math.round(Math.log10(low)); exponent <= Math.round(Math.log10(high)); exponent++) {
    // Written from the exponent, so 0.1 stays 0.1 rather than 0.30000000000000004's cousins.
    const tick = Number(`1e${exponent}`);
    const position = x(tick).toFixed(1);
    parts.push(`<line x1="${position}" y1="${plotTop}" x2="${position}" y2="${plotBottom}" class="grid"/>`);
    parts.push(
      `<text x="${position}" y="${plotBottom + 16}" class="tick">${escapeXml(panel.tick(tick))}</text>`,
    );
  }
  panel.bars.forEach((bar, index) => {
    const y = plotTop + index * ROW_HEIGHT;
    const middle = y + ROW_HEIGHT / 2;
    parts.push(`<text x="${LABEL_WIDTH - 8}" y="${middle + 4}" class="label">${escapeXml(bar.label)}</text>`);
    if (bar.value > 0) {
      const end = x(bar.value);
      parts.push(
        `<rect x="${LABEL_WIDTH}" y="${y + 4}" width="${Math.max(1, end - LABEL_WIDTH).toFixed(1)}" height="${ROW_HEIGHT - 8}" fill="${COLOURS[bar.family]}"><title>${escapeXml(`${bar.label}: ${bar.text}`)}</title></rect>`,
      );
      if (bar.low !== undefined && bar.high !== undefined) {
        const from = x(bar.low).toFixed(1);
        const to = x(bar.high).toFixed(1);
        parts.push(`<line x1="${from}" y1="${middle}" x2="${to}" y2="${middle}" class="whisker"/>`);
        parts.push(`<line x1="${from}" y1="${middle - 4}" x2="${from}" y2="${middle + 4}" class="whisker"/>`);
        parts.push(`<line x1="${to}" y1="${middle - 4}" x2="${to}" y2="${middle + 4}" class="whisker"/>`);
      }
    }
    parts.push(
      `<text x="${WIDTH - VALUE_WIDTH}" y="${middle + 4}" class="value">${escapeXml(bar.text)}</text>`,
    );
  });
  return { svg: parts.join('\n'), height: PANEL_TITLE + panel.bars.length * ROW_HEIGHT + AXIS_HEIGHT };
}

function family(result: BenchResult, id: string): Bar['family'] {
  return result.subjects.find((subject) => subject.id === id)?.family ?? 'peer';
}

function label(result: BenchResult, id: string): string {
  return result.subjects.find((subject) => subject.id === id)?.label ?? id;
}

/** The chart of a result: warm launch (median, min–max whiskers) and memory per sandbox, log scales. */
export function renderSvg(result: BenchResult): string {
  const panels: Panel[] = [];
  const launch = result.launch.filter((figure) => figure.exit);
  if (launch.length > 0) {
    panels.push({
      title: 'Launch to exit of /bin/true (warm median, min–max; log scale)',
      tick: (value) => (value >= 1000 ? `${value / 1000} s` : `${value} ms`),
      bars: launch.map((figure) => ({
        label: label(result, figure.subject),
        family: family(result, figure.subject),
        value: figure.exit!.summary.median,
        low: figure.exit!.summary.min,
        high: figure.exit!.summary.max,
        text: formatMilliseconds(figure.exit!.summary.median),
      })),
    });
  }
  if (result.memory.length > 0) {
    panels.push({
      title: 'Memory per sandbox, all told (PSS of added processes + launcher growth; log scale)',
      tick: (value) => `${value} MiB`,
      bars: result.memory.map((figure) => ({
        label: label(result, figure.subject),
        family: family(result, figure.subject),
        // Plotted in MiB so that the axis falls on round numbers.
        value: figure.perSandbox / MEBIBYTE,
        text: formatBytes(figure.perSandbox),
      })),
    });
  }
  const legendHeight = 28;
  let top = 0;
  const bodies: string[] = [];
  for (const panel of panels) {
    const rendered = renderPanel(panel, top);
    bodies.push(rendered.svg);
    top += rendered.height + 10;
  }
  const legend = (['baseline', 'bulkhead', 'peer'] as const)
    .map((name, index) => {
      const x = 10 + index * 130;
      return `<rect x="${x}" y="${top + 6}" width="12" height="12" fill="${COLOURS[name]}"/><text x="${x + 18}" y="${top + 16}" class="legend">${name === 'bulkhead' ? 'Bulkhead' : name}</text>`;
    })
    .join('');
  const caption = `<text x="${WIDTH - 10}" y="${top + 16}" class="caption">${escapeXml(`${result.machine.host}, ${result.startedAt.slice(0, 10)}, ${result.options.quick ? 'quick' : 'full'} run`)}</text>`;
  const height = top + legendHeight;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">
<style>
.title { font-weight: 600; font-size: 13px; fill: #111; }
.label { text-anchor: end; fill: #222; }
.value { fill: #222; }
.tick { text-anchor: middle; fill: #666; font-size: 10px; }
.grid { stroke: #e3e3e3; stroke-width: 1; }
.whisker { stroke: #111; stroke-width: 1; }
.legend { fill: #222; }
.caption { text-anchor: end; fill: #666; font-size: 10px; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
${bodies.join('\n')}
${legend}
${caption}
</svg>
`;
}
