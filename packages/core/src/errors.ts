/**
 * The one error class of Bulkhead. Every error carries a stable UPPER_SNAKE `code` that callers may
 * branch on, and a message that says what happened, why, and how to fix it.
 *
 * `instanceof` breaks when two copies of this package are installed (a plugin's and the harness's),
 * so the class is branded with a global symbol and `BulkheadError.isInstance()` checks the brand.
 */
const brand = Symbol.for('bulkhead.error');

export type BulkheadErrorCode =
  | 'UNENFORCEABLE_CAPABILITY'
  | 'NO_SUITABLE_TIER'
  | 'TIER_UNAVAILABLE'
  | 'UNKNOWN_TIER'
  | 'SPECIFICATION_VERSION_MISMATCH'
  | 'INVALID_LAUNCH_SPEC'
  | 'LAUNCH_FAILED'
  | 'SANDBOX_DISPOSED'
  | 'MANIFEST_PARSE_ERROR'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_NOT_FOUND'
  | 'POLICY_VIOLATION'
  | 'POLICY_INVALID'
  | 'MXC_UNSUPPORTED_FIELD'
  | 'HOST_REQUIREMENT_MISSING'
  | 'INTERNAL_ERROR'
  // Open for tiers and plugins: their own codes stay UPPER_SNAKE.
  | (string & {});

export interface BulkheadErrorOptions {
  /** The tier the error concerns. */
  tier?: string;
  /** The capability key the error concerns (`network.allowlist`, `resources.memory`, ...). */
  capability?: string;
  /** A file the error concerns (a manifest, a policy file, a device node). */
  path?: string;
  /** 1-based line in `path`. */
  line?: number;
  /** 1-based column in `path`. */
  column?: number;
  /** The command or change that fixes it, as a user would type it. */
  fix?: string;
  /** Anything else a caller may want to inspect. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class BulkheadError extends Error {
  readonly code: BulkheadErrorCode;
  readonly tier?: string;
  readonly capability?: string;
  readonly path?: string;
  readonly line?: number;
  readonly column?: number;
  readonly fix?: string;
  readonly details?: Record<string, unknown>;
  readonly [brand] = true;

  constructor(code: BulkheadErrorCode, message: string, options: BulkheadErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BulkheadError';
    this.code = code;
    if (options.tier !== undefined) this.tier = options.tier;
    if (options.capability !== undefined) this.capability = options.capability;
    if (options.path !== undefined) this.path = options.path;
    if (options.line !== undefined) this.line = options.line;
    if (options.column !== undefined) this.column = options.column;
    if (options.fix !== undefined) this.fix = options.fix;
    if (options.details !== undefined) this.details = options.details;
  }

  /** True for any Bulkhead error, whichever copy of this package created it. */
  static isInstance(value: unknown): value is BulkheadError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
  }

  /** True for a Bulkhead error with the given code. */
  static hasCode(value: unknown, code: BulkheadErrorCode): value is BulkheadError {
    return BulkheadError.isInstance(value) && value.code === code;
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      tier: this.tier,
      capability: this.capability,
      path: this.path,
      line: this.line,
      column: this.column,
      fix: this.fix,
      details: this.details,
    };
  }
}

/** A capability the chosen tier cannot enforce on this host: launching would silently weaken it. */
export class UnenforceableCapabilityError extends BulkheadError {
  constructor(
    tier: string,
    capability: string,
    reason: string,
    fix?: string,
    options: Omit<BulkheadErrorOptions, 'tier' | 'capability' | 'fix'> = {},
  ) {
    super(
      'UNENFORCEABLE_CAPABILITY',
      `Tier '${tier}' cannot enforce '${capability}' on this host: ${reason}.${fix ? ` Fix: ${fix}` : ''}`,
      { ...options, tier, capability, ...(fix === undefined ? {} : { fix }) },
    );
    this.name = 'UnenforceableCapabilityError';
  }
}
