/**
 * Progress on stderr, so stdout stays clean for whoever pipes the bench: one rewritten line on a
 * terminal, whole lines (at each start and end of a step) in CI logs.
 */
export class Progress {
  readonly #stream: NodeJS.WriteStream;
  readonly #interactive: boolean;
  readonly #started = performance.now();
  #lineOpen = false;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
    this.#interactive = stream.isTTY === true && process.env.CI === undefined;
  }

  #elapsed(): string {
    const seconds = Math.round((performance.now() - this.#started) / 1000);
    return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
  }

  /** A step that has a count: rewritten in place on a terminal, printed at its start and end otherwise. */
  update(section: string, detail: string, done: number, total: number): void {
    const text = `[${this.#elapsed()}] ${section}: ${detail} ${done}/${total}`;
    if (this.#interactive) {
      this.#stream.write(`\r\x1b[2K${text}`);
      this.#lineOpen = true;
    } else if (done === 0 || done === total) {
      this.#stream.write(`${text}\n`);
    }
  }

  /** A line that stays. */
  log(message: string): void {
    if (this.#lineOpen) {
      this.#stream.write('\r\x1b[2K');
      this.#lineOpen = false;
    }
    this.#stream.write(`[${this.#elapsed()}] ${message}\n`);
  }

  done(): void {
    if (this.#lineOpen) this.#stream.write('\r\x1b[2K');
    this.#lineOpen = false;
  }
}
