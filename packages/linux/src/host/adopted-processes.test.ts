import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { becomeChildSubreaper, processParent, reapAdoptedProcess } from './adopted-processes.js';

describe('reapAdoptedProcess', () => {
  it('reaps the pid-namespace init bubblewrap leaves behind once this process adopted it', async () => {
    // As a harness (or a container's PID 1) would: orphans of this worker's children come to it.
    expect(becomeChildSubreaper()).toBe(true);
    const bubblewrap = spawn(
      'bwrap',
      ['--unshare-user', '--unshare-pid', '--ro-bind', '/', '/', '--info-fd', '3', '--', 'true'],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] },
    );
    let info = '';
    bubblewrap.stdio[3]!.on('data', (chunk: Buffer) => {
      info += chunk.toString();
    });
    await once(bubblewrap, 'exit');
    const init = Number(/"child-pid"\s*:\s*(\d+)/.exec(info)?.[1]);
    expect(init).toBeGreaterThan(0);
    // bwrap's monitor is gone; its init is (or soon is) this process's child, which libuv never reaps.
    let adopted = processParent(init);
    for (let attempt = 0; attempt < 300 && adopted && !adopted.zombie; attempt++) {
      await delay(10);
      adopted = processParent(init);
    }
    expect(adopted).toEqual({ parent: process.pid, zombie: true });
    reapAdoptedProcess(init);
    expect(processParent(init)).toBeUndefined();
  });
});
