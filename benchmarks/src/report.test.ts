import { describe, expect, it } from 'vitest';
import { formatBytes, formatMilliseconds, formatRatio } from './format.js';
import { README_END, README_START, replaceReadmeSection, resultBaseName } from './output.js';
import { renderMarkdown } from './report-markdown.js';
import { logDomain, renderSvg } from './report-svg.js';
import { resultFixture, samples } from './result-fixture.js';

function tableRow(markdown: string, label: string, heading: string): string[] {
  const section = markdown.slice(markdown.indexOf(heading));
  const line = section.split('\n').find((candidate) => candidate.startsWith(`| ${label} |`));
  if (!line) throw new Error(`no row '${label}' under ${heading}`);
  return line.split(' | ').map((cell) => cell.replace(/^\| /, '').replace(/ \|$/, ''));
}

describe('Markdown report', () => {
  const markdown = renderMarkdown(resultFixture(), { chartPath: 'latest.svg' });

  it('shows each subject with its launch median, range and ratio against bare', () => {
    const row = tableRow(markdown, 'Bulkhead process (namespace)', '### Launch');
    expect(row).toContain('8.00 ms');
    expect(row).toContain('×4.00');
    expect(row).toContain('7.84 ms–8.16 ms');
    expect(row).toContain('40.0 ms');
    expect(row).toContain('10.0 ms');
  });

  it('shows memory per sandbox, the launcher growth and the largest processes', () => {
    const row = tableRow(markdown, 'MXC run()', '### Memory per sandbox');
    expect(row).toContain('512 KiB');
    expect(row).toContain('40.0 MiB');
    expect(row).toContain('10.5 MiB');
    expect(row.at(-1)).toBe('bwrap×8 2.0 MiB');
  });

  it('shows CPU ratios and concurrency outcomes', () => {
    expect(tableRow(markdown, 'Bulkhead process (namespace)', '### CPU overhead')).toContain('×1.01');
    const mxc = tableRow(markdown, 'MXC run()', '### Concurrency');
    expect(mxc).toContain('4/10');
    expect(mxc).toContain('run() completion');
  });

  it('names unavailable subjects and omitted figures with their reasons, never drops them', () => {
    expect(markdown).toContain(
      '**QEMU microvm alone** could not run here: qemu-system-x86_64 is not installed',
    );
    expect(markdown).toContain('first byte not measurable: spawn() needs Node 24');
    expect(markdown).toContain('Not measured: egress is not there yet');
  });

  it('marks noisy figures and explains why', () => {
    const result = resultFixture();
    result.launch[2]!.exit = samples(20, true);
    const noisy = renderMarkdown(result);
    expect(tableRow(noisy, 'MXC run()', '### Launch')[2]).toBe('21.0 ms ⚠');
    expect(noisy).toMatch(/- MXC run\(\), launch to exit: p95 is [\d.]+x the median/);
  });

  it('names processes a subject left running after dispose', () => {
    const result = resultFixture();
    result.memory[2]!.leftoverProcesses = ['sleep', 'socat'];
    expect(renderMarkdown(result)).toContain('- **MXC run()**: sleep, socat');
    expect(markdown).not.toContain('Still running after');
  });

  it('links the chart and lists the machine facts', () => {
    expect(markdown).toContain('![Launch and memory per subject, log scale](latest.svg)');
    expect(markdown).toContain('Landlock ABI 7');
    expect(markdown).toContain('Test CPU, 2 cores');
  });

  it('escapes characters that would break a table', () => {
    const result = resultFixture();
    result.subjects[2] = { ...result.subjects[2]!, label: 'a|b' };
    expect(renderMarkdown(result)).toContain('| a\\|b |');
  });
});

describe('SVG chart', () => {
  const svg = renderSvg(resultFixture());

  it('is one well-formed svg document with a bar per launch figure and per memory figure', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    const bars = svg.match(/<rect x="250"/g) ?? [];
    // 3 launch bars; memory: bare has 0 bytes and gets no bar, two others do.
    expect(bars).toHaveLength(5);
  });

  it('labels every subject and escapes their names', () => {
    const result = resultFixture();
    result.subjects[2] = { ...result.subjects[2]!, label: 'MXC <run> & co' };
    const escaped = renderSvg(result);
    expect(escaped).toContain('MXC &lt;run&gt; &amp; co');
    expect(escaped).not.toContain('MXC <run>');
  });

  it('draws longer bars for larger values on its log scale', () => {
    const widths = [
      ...svg.matchAll(/<rect x="250" y="[\d.]+" width="([\d.]+)"[^>]*><title>([^<]*)<\/title>/g),
    ].map((match) => [match[2]!, Number(match[1])] as const);
    const launch = Object.fromEntries(widths.filter(([title]) => title.endsWith(' ms')));
    expect(launch['bare spawn: 2.00 ms']!).toBeLessThan(launch['Bulkhead process (namespace): 8.00 ms']!);
    expect(launch['Bulkhead process (namespace): 8.00 ms']!).toBeLessThan(launch['MXC run(): 20.0 ms']!);
  });

  it('spans its log axis over whole powers of ten around the data', () => {
    expect(logDomain([2, 8, 20])).toEqual([1, 100]);
    expect(logDomain([0, 0.3, 45])).toEqual([0.1, 100]);
    expect(logDomain([])).toEqual([1, 10]);
  });
});

describe('README section', () => {
  it('replaces only what lies between the markers', () => {
    const readme = `# Title\n\nintro\n\n${README_START}\nold table\n${README_END}\n\nafter\n`;
    const updated = replaceReadmeSection(readme, '| new | table |');
    expect(updated).toContain('intro');
    expect(updated).toContain('after');
    expect(updated).toContain('| new | table |');
    expect(updated).not.toContain('old table');
    expect(replaceReadmeSection(updated, 'again')).not.toContain('| new | table |');
  });

  it('refuses a README without markers, naming them', () => {
    expect(() => replaceReadmeSection('# no markers', 'x')).toThrow(/no generated results section/);
  });
});

describe('names and units', () => {
  it('names a result file by date and host', () => {
    expect(resultBaseName(resultFixture())).toBe('2025-11-27-test-host');
    const odd = resultFixture();
    odd.machine.host = 'a b/c';
    expect(resultBaseName(odd)).toBe('2025-11-27-a-b-c');
  });

  it('formats figures with units a reader can compare', () => {
    expect(formatMilliseconds(0.4234)).toBe('0.42 ms');
    expect(formatMilliseconds(1234)).toBe('1.23 s');
    expect(formatBytes(3.4 * 1024 * 1024)).toBe('3.4 MiB');
    expect(formatBytes(-28 * 1024)).toBe('-28 KiB');
    expect(formatRatio(1.034)).toBe('×1.03');
    expect(formatRatio(undefined)).toBe('–');
  });
});
