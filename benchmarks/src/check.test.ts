import { describe, expect, it } from 'vitest';
import { checkResult, MISSION_TARGETS } from './check.js';
import { resultFixture, samples } from './result-fixture.js';
import { summarize } from './statistics.js';

const MEBIBYTE = 1024 * 1024;

function levelOf(report: ReturnType<typeof checkResult>, figure: string) {
  return report.findings.find((finding) => finding.figure === figure)?.level;
}

describe('check mode: mission targets', () => {
  it('passes a result within every target, against an identical baseline', () => {
    const report = checkResult(resultFixture(), resultFixture());
    expect(report.failed).toBe(false);
    expect(report.findings.filter((finding) => finding.level === 'fail')).toEqual([]);
    expect(levelOf(report, 'launch:process-namespace:exit')).toBe('pass');
    expect(levelOf(report, 'memory:process-namespace:per-sandbox')).toBe('pass');
    expect(levelOf(report, 'cpu:process-namespace:cpu-bound')).toBe('pass');
  });

  it('fails a Bulkhead launch at or above 200 ms', () => {
    const result = resultFixture();
    result.launch[1]!.exit = samples(MISSION_TARGETS.launchMs + 50);
    const report = checkResult(result, resultFixture());
    expect(report.failed).toBe(true);
    expect(levelOf(report, 'launch:process-namespace:exit')).toBe('fail');
  });

  it('fails a cold first launch at or above 200 ms, but not a slow import', () => {
    const result = resultFixture();
    result.cold[1]!.prepare = samples(500);
    result.cold[1]!.launch = samples(510);
    expect(levelOf(checkResult(result), 'cold:process-namespace:first-launch')).toBe('pass');
    result.cold[1]!.firstLaunch = samples(300);
    expect(levelOf(checkResult(result), 'cold:process-namespace:first-launch')).toBe('fail');
  });

  it('only warns when the missed launch figure is too noisy to trust', () => {
    const result = resultFixture();
    result.launch[1]!.exit = samples(250, true);
    const report = checkResult(result, resultFixture());
    expect(levelOf(report, 'launch:process-namespace:exit')).toBe('warn');
    expect(report.failed).toBe(false);
  });

  it('fails a CPU-bound ratio at or above 1.05', () => {
    const result = resultFixture();
    result.cpu[0]!.ratio = 1.2;
    expect(levelOf(checkResult(result), 'cpu:process-namespace:cpu-bound')).toBe('fail');
  });

  it('only warns about a CPU ratio whose back-to-back pairs disagree by more than the margin', () => {
    const result = resultFixture();
    result.cpu[0]!.ratio = 1.2;
    result.cpu[0]!.pairRatios = summarize([0.8, 1.0, 1.2, 1.3, 1.4]);
    expect(levelOf(checkResult(result), 'cpu:process-namespace:cpu-bound')).toBe('warn');
    result.cpu[0]!.pairRatios = summarize([1.19, 1.2, 1.2, 1.21, 1.22]);
    expect(levelOf(checkResult(result), 'cpu:process-namespace:cpu-bound')).toBe('fail');
  });

  it('fails memory per sandbox at or above 60 MB', () => {
    const result = resultFixture();
    result.memory[1]!.perSandbox = 61 * MEBIBYTE;
    const report = checkResult(result, resultFixture());
    expect(levelOf(report, 'memory:process-namespace:per-sandbox')).toBe('fail');
    expect(report.failed).toBe(true);
  });

  it('holds peers to nothing: a slow peer neither fails nor passes a target', () => {
    const result = resultFixture();
    result.launch[2]!.exit = samples(900);
    const report = checkResult(result, resultFixture());
    expect(
      report.findings.some((finding) => finding.figure === 'launch:mxc:exit' && finding.level !== 'warn'),
    ).toBe(false);
  });

  it('does not hold a row exempted on this host (a micro-VM under TCG) to the targets, and says so', () => {
    const result = resultFixture();
    result.subjects[1] = { ...result.subjects[1]!, targetExemption: 'its guest runs under tcg emulation' };
    result.memory[1]!.perSandbox = 120 * MEBIBYTE;
    const report = checkResult(result);
    expect(levelOf(report, 'memory:process-namespace:per-sandbox')).toBeUndefined();
    expect(levelOf(report, 'subject:process-namespace')).toBe('warn');
    expect(report.failed).toBe(false);
  });

  it('warns that a Bulkhead tier that could not run had no target checked', () => {
    const result = resultFixture();
    result.subjects[1] = { ...result.subjects[1]!, available: false, reason: 'bwrap missing' };
    result.launch.splice(1, 1);
    result.cold.splice(1, 1);
    result.memory.splice(1, 1);
    result.cpu = [];
    const report = checkResult(result, resultFixture());
    expect(levelOf(report, 'subject:process-namespace')).toBe('warn');
  });
});

describe('check mode: regressions against the baseline', () => {
  it('fails a Bulkhead figure more than 25% worse than the baseline', () => {
    const result = resultFixture();
    result.launch[1]!.exit = samples(14);
    const report = checkResult(result, resultFixture());
    expect(levelOf(report, 'launch:process-namespace:exit')).toBe('pass');
    const regression = report.findings.find(
      (finding) => finding.figure === 'launch:process-namespace:exit' && finding.level === 'fail',
    );
    expect(regression?.message).toMatch(/regressed 75%/);
    expect(report.failed).toBe(true);
  });

  it('lets a change of up to 25% through', () => {
    const result = resultFixture();
    result.launch[1]!.exit = samples(8 * 1.2);
    expect(checkResult(result, resultFixture()).failed).toBe(false);
  });

  it('ignores changes below the noise floor, whatever their percentage', () => {
    const result = resultFixture();
    // 2 ms -> 2.9 ms is +45%, 8 ms -> 12 ms +50%: both within what a busy machine does.
    result.launch[0]!.exit = samples(2.9);
    result.launch[1]!.exit = samples(12);
    result.launch[1]!.firstByte = samples(9.9);
    expect(
      checkResult(result, resultFixture()).findings.filter((finding) => finding.level !== 'pass'),
    ).toEqual([]);
  });

  it('judges timings at the baseline machine speed: a machine that ran slower as a whole is no regression', () => {
    const result = resultFixture();
    // Everything, the bare spawn included, ran 1.6 times slower: a busy CI machine.
    result.launch[0]!.exit = samples(2 * 1.6);
    result.launch[1]!.exit = samples(8 * 1.6 * 1.1);
    const report = checkResult(result, resultFixture());
    expect(report.findings.filter((finding) => /regressed/.test(finding.message))).toEqual([]);
    expect(report.failed).toBe(false);
  });

  it('still fails a regression beyond the machine slowdown, and says what it would have been', () => {
    const result = resultFixture();
    result.launch[0]!.exit = samples(2 * 1.3);
    result.launch[1]!.exit = samples(20);
    const report = checkResult(result, resultFixture());
    const regression = report.findings.find(
      (finding) => finding.figure === 'launch:process-namespace:exit' && /regressed/.test(finding.message),
    );
    expect(regression?.level).toBe('fail');
    expect(regression?.message).toMatch(/at the baseline machine's speed: this one ran ×1\.30/);
  });

  it('only warns about a missed absolute target when the machine ran much slower than the baseline', () => {
    const slow = resultFixture();
    slow.launch[0]!.exit = samples(2 * 1.5);
    slow.launch[1]!.exit = samples(250);
    expect(levelOf(checkResult(slow, resultFixture()), 'launch:process-namespace:exit')).toBe('warn');
    const usual = resultFixture();
    usual.launch[1]!.exit = samples(250);
    expect(levelOf(checkResult(usual, resultFixture()), 'launch:process-namespace:exit')).toBe('fail');
  });

  it('only warns about a regression of a noisy figure', () => {
    const result = resultFixture();
    result.launch[1]!.firstByte = samples(30, true);
    const report = checkResult(result, resultFixture());
    const finding = report.findings.find(
      (candidate) =>
        candidate.figure === 'launch:process-namespace:first-byte' && /regressed/.test(candidate.message),
    );
    expect(finding?.level).toBe('warn');
  });

  it("only warns about a peer's regression", () => {
    const result = resultFixture();
    result.memory[2]!.perSandbox = 40 * MEBIBYTE;
    const report = checkResult(result, resultFixture());
    expect(levelOf(report, 'memory:mxc:per-sandbox')).toBe('warn');
    expect(report.failed).toBe(false);
  });

  it('warns, without comparing, when there is no baseline or it has another schema', () => {
    expect(levelOf(checkResult(resultFixture()), 'baseline')).toBe('warn');
    const old = { ...resultFixture(), schemaVersion: 0 } as unknown as ReturnType<typeof resultFixture>;
    const result = resultFixture();
    result.launch[1]!.exit = samples(100);
    const report = checkResult(result, old);
    expect(levelOf(report, 'baseline')).toBe('warn');
    expect(report.findings.some((finding) => /regressed/.test(finding.message))).toBe(false);
  });
});
