/**
 * The control protocol between the host and the guest init (native/guest-init.c), carried over a
 * virtio-serial port. A frame is: type (1 byte), length (4 bytes, little-endian), payload.
 */
export const FRAME = {
  /** host -> guest: a seccomp program (struct sock_filter[]) to install after the guest's own. */
  program: 'P',
  /** host -> guest: the launch, as `key\0value\0` records. */
  launch: 'L',
  /** host -> guest: stdin bytes; an empty frame ends the input. */
  stdin: 'I',
  /** host -> guest: a signal number (1 byte) for the whole payload. */
  signal: 'S',
  /** host -> guest: the exit report arrived. */
  ack: 'A',
  /** guest -> host: init is up and waits for the launch. */
  ready: 'R',
  stdout: 'O',
  stderr: 'E',
  /** guest -> host: the payload's exit report, as `key=value` words. */
  exit: 'X',
  /** guest -> host: init itself failed (a mount, the cgroup); the VM is going down. */
  failure: 'F',
} as const;

export type FrameType = (typeof FRAME)[keyof typeof FRAME];

/** Largest frame the init accepts; larger stdin writes are split. */
export const MAX_FRAME_PAYLOAD = 64 * 1024;

export function encodeFrame(type: FrameType, payload: Uint8Array = new Uint8Array()): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeUInt32LE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

export interface Frame {
  type: string;
  payload: Buffer;
}

/** Splits a byte stream into frames; keeps a partial frame until the rest arrives. */
export class FrameDecoder {
  #pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const frames: Frame[] = [];
    while (this.#pending.length >= 5) {
      const length = this.#pending.readUInt32LE(1);
      if (this.#pending.length < 5 + length) break;
      frames.push({
        type: String.fromCharCode(this.#pending[0] ?? 0),
        payload: this.#pending.subarray(5, 5 + length),
      });
      this.#pending = this.#pending.subarray(5 + length);
    }
    return frames;
  }
}

/** What the guest init needs to run the payload. */
export interface GuestLaunch {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  uid: number;
  gid: number;
  /** Memory cap of the payload's cgroup in the guest, bytes. */
  memoryBytes?: number;
  /** pids.max of the payload's cgroup in the guest. */
  maxProcesses?: number;
  spawn: boolean;
  read: string[];
  write: string[];
  deny: string[];
}

export function encodeLaunch(launch: GuestLaunch): Buffer {
  const records: [string, string][] = [
    ...launch.argv.map((value): [string, string] => ['arg', value]),
    ...Object.entries(launch.env).map(([name, value]): [string, string] => ['env', `${name}=${value}`]),
    ['cwd', launch.cwd],
    ['uid', String(launch.uid)],
    ['gid', String(launch.gid)],
    ['spawn', launch.spawn ? '1' : '0'],
    ...launch.read.map((path): [string, string] => ['read', path]),
    ...launch.write.map((path): [string, string] => ['write', path]),
    ...launch.deny.map((path): [string, string] => ['deny', path]),
  ];
  if (launch.memoryBytes !== undefined && Number.isFinite(launch.memoryBytes))
    records.push(['memory', String(Math.floor(launch.memoryBytes))]);
  if (launch.maxProcesses !== undefined && Number.isFinite(launch.maxProcesses))
    records.push(['pids', String(Math.floor(launch.maxProcesses))]);
  for (const [key, value] of records) {
    if (value.includes('\0'))
      throw new TypeError(`the ${key} '${value.replaceAll('\0', '\\0')}' contains a NUL byte`);
  }
  return Buffer.from(records.map(([key, value]) => `${key}\0${value}\0`).join(''));
}

export interface GuestExitReport {
  exitCode: number | null;
  /** Signal number, or 0. */
  signal: number;
  oomKilled: boolean;
  peakMemoryBytes?: number;
  cpuMs?: number;
}

export function parseExitReport(text: string): GuestExitReport {
  const fields = new Map(
    text
      .trim()
      .split(/\s+/)
      .map((word) => {
        const [key = '', value = ''] = word.split('=');
        return [key, Number(value)] as const;
      }),
  );
  const exit = fields.get('exit') ?? -1;
  const peak = fields.get('peak') ?? -1;
  const cpu = fields.get('cpu_usec') ?? -1;
  return {
    exitCode: exit >= 0 ? exit : null,
    signal: fields.get('signal') ?? 0,
    oomKilled: (fields.get('oom') ?? 0) > 0,
    ...(peak >= 0 ? { peakMemoryBytes: peak } : {}),
    ...(cpu >= 0 ? { cpuMs: cpu / 1000 } : {}),
  };
}
