import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import { Readable, Writable } from 'node:stream';
import {
  encodeFrame,
  FRAME,
  FrameDecoder,
  type GuestExitReport,
  MAX_FRAME_PAYLOAD,
  parseExitReport,
} from './control-channel.js';

function signalName(number: number): NodeJS.Signals | null {
  for (const [name, value] of Object.entries(constants.signals))
    if (value === number) return name as NodeJS.Signals;
  return null;
}

/**
 * The payload inside the guest, seen from the host as a child process: its stdio is demultiplexed
 * from the control port, and it "exits" once the VMM is gone, with the status the guest reported.
 * This is the seam that lets core's `createChildProcessSandbox` own the lifecycle (timeout, kill,
 * dispose) of a VM exactly as it does for a local process tree.
 */
export class GuestProcess extends EventEmitter {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly pid: number | undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** Resolves when init is up; rejects when the VMM ends or init fails before that. */
  readonly ready: Promise<void>;
  report: GuestExitReport | undefined;
  /** init's own failure, when it reported one. */
  failure: string | undefined;
  /** What the VMM itself printed (errors of QEMU or of the jail). */
  vmmOutput = '';
  readonly #vmm: ChildProcess;

  constructor(vmm: ChildProcess, onReport: (report: GuestExitReport) => void) {
    super();
    this.#vmm = vmm;
    this.pid = vmm.pid;
    const control = vmm.stdout!;
    const toGuest = vmm.stdin!;
    // The VMM may die with input still queued; that is the sandbox ending, not an error.
    toGuest.on('error', () => {});
    const send = (buffer: Buffer) => {
      if (!toGuest.destroyed && toGuest.writable) toGuest.write(buffer);
    };
    this.stdout = new Readable({ read: () => control.resume() });
    this.stderr = new Readable({ read: () => control.resume() });
    this.stdin = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (let offset = 0; offset < chunk.length; offset += MAX_FRAME_PAYLOAD) {
          send(encodeFrame(FRAME.stdin, chunk.subarray(offset, offset + MAX_FRAME_PAYLOAD)));
        }
        callback();
      },
      final(callback) {
        send(encodeFrame(FRAME.stdin));
        callback();
      },
    });
    vmm.stderr?.on('data', (chunk: Buffer) => {
      if (this.vmmOutput.length < 16_384) this.vmmOutput += chunk.toString('utf8');
    });

    let resolveReady!: () => void;
    let rejectReady!: (error: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    this.ready.catch(() => {});

    const decoder = new FrameDecoder();
    control.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.type === FRAME.stdout || frame.type === FRAME.stderr) {
          const stream = frame.type === FRAME.stdout ? this.stdout : this.stderr;
          // Backpressure: a reader that stops reading stops the guest, through the control port.
          if (!stream.push(Buffer.from(frame.payload))) control.pause();
        } else if (frame.type === FRAME.ready) {
          resolveReady();
        } else if (frame.type === FRAME.exit) {
          this.report = parseExitReport(frame.payload.toString('utf8'));
          send(encodeFrame(FRAME.ack));
          onReport(this.report);
        } else if (frame.type === FRAME.failure) {
          this.failure = frame.payload.toString('utf8');
        }
      }
    });

    vmm.once('error', (error) => {
      rejectReady(error);
      this.emit('error', error);
    });
    // 'close' comes after the VMM exited and its stdio closed: every frame has been read.
    vmm.once('close', (code, signal) => {
      rejectReady(
        new Error(
          this.failure ??
            `the VMM ended before the guest was ready (${signal ?? `exit ${code}`})${this.vmmOutput ? `: ${this.vmmOutput.trim()}` : ''}`,
        ),
      );
      if (this.report) {
        this.exitCode = this.report.exitCode;
        this.signalCode = this.report.signal ? signalName(this.report.signal) : null;
      } else {
        // No report: the VM was killed (timeout, kill(), dispose) or the guest died.
        this.signalCode = 'SIGKILL';
      }
      this.stdout.push(null);
      this.stderr.push(null);
      this.emit('exit', this.exitCode, this.signalCode);
    });
  }

  /** Sends a frame to the guest init. */
  send(type: (typeof FRAME)[keyof typeof FRAME], payload?: Uint8Array): void {
    const toGuest = this.#vmm.stdin!;
    if (!toGuest.destroyed && toGuest.writable) toGuest.write(encodeFrame(type, payload));
  }

  /** Signals the payload inside the guest (not the VM). */
  signalPayload(signal: NodeJS.Signals): void {
    const number = constants.signals[signal];
    if (number !== undefined) this.send(FRAME.signal, Uint8Array.of(number));
  }

  /** The facade `createChildProcessSandbox` takes. */
  asChildProcess(): ChildProcess {
    return this as unknown as ChildProcess;
  }
}
