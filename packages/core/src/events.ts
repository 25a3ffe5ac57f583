import { EventEmitter } from 'node:events';
import type { TierName } from './capabilities.js';
import type { SandboxResult, Violation } from './provider.js';

export interface SandboxLaunchedEvent {
  sandboxId: string;
  tier: TierName;
  command: string[];
  manifestDigest: string;
}

export interface SandboxExitedEvent {
  sandboxId: string;
  tier: TierName;
  result: SandboxResult;
}

export interface BulkheadEventMap {
  'sandbox:launched': [SandboxLaunchedEvent];
  'sandbox:exited': [SandboxExitedEvent];
  violation: [Violation];
  warning: [{ sandboxId?: string; tier?: TierName; message: string }];
}

/** Lifecycle and violation events of every sandbox started through `launch()` in this process. */
export const bulkheadEvents = new EventEmitter<BulkheadEventMap>();
