import { describe, expect, it } from 'vitest';
import { encodeFrame, encodeLaunch, FRAME, FrameDecoder, parseExitReport } from './control-channel.js';

describe('control channel frames', () => {
  it('reassembles frames split at any byte', () => {
    const stream = Buffer.concat([
      encodeFrame(FRAME.stdout, Buffer.from('hello')),
      encodeFrame(FRAME.stderr, Buffer.from('')),
      encodeFrame(FRAME.exit, Buffer.from('exit=3 signal=0')),
    ]);
    for (let split = 0; split <= stream.length; split++) {
      const decoder = new FrameDecoder();
      const frames = [...decoder.push(stream.subarray(0, split)), ...decoder.push(stream.subarray(split))];
      expect(frames.map((frame) => [frame.type, frame.payload.toString()])).toEqual([
        ['O', 'hello'],
        ['E', ''],
        ['X', 'exit=3 signal=0'],
      ]);
    }
  });

  it('encodes the launch as key\\0value\\0 records the init parses', () => {
    const launch = encodeLaunch({
      argv: ['sh', '-c', 'echo $A'],
      env: { A: 'x=y' },
      cwd: '/work',
      uid: 1000,
      gid: 1000,
      memoryBytes: 64 * 1024 * 1024,
      maxProcesses: Number.POSITIVE_INFINITY,
      spawn: false,
      read: ['/usr'],
      write: ['/work'],
      deny: ['/work/.env'],
    });
    const fields = launch.toString().split('\0');
    expect(fields.slice(0, 6)).toEqual(['arg', 'sh', 'arg', '-c', 'arg', 'echo $A']);
    expect(fields).toContain('A=x=y');
    expect(fields.join(' ')).toContain('spawn 0');
    expect(fields.join(' ')).toContain('memory 67108864');
    // An unlimited count is no record at all, not "Infinity".
    expect(fields).not.toContain('pids');
  });

  it('refuses an argument with a NUL byte instead of splitting it', () => {
    expect(() =>
      encodeLaunch({
        argv: ['a\0b'],
        env: {},
        cwd: '/',
        uid: 0,
        gid: 0,
        spawn: true,
        read: [],
        write: [],
        deny: [],
      }),
    ).toThrow(/NUL/);
  });

  it('reads the exit report', () => {
    expect(parseExitReport('exit=-1 signal=9 oom=1 peak=1048576 cpu_usec=2500')).toEqual({
      exitCode: null,
      signal: 9,
      oomKilled: true,
      peakMemoryBytes: 1048576,
      cpuMs: 2.5,
    });
    expect(parseExitReport('exit=0 signal=0 oom=-1 peak=-1 cpu_usec=-1')).toEqual({
      exitCode: 0,
      signal: 0,
      oomKilled: false,
    });
  });
});
