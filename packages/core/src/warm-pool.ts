import { onProcessExit } from './process-exit.js';

export interface WarmPoolOptions<Item> {
  /** Idle items kept per key; 0 disables the pool. */
  size: number;
  /**
   * Keys kept at once (default 4): filling another discards the items of the least recently used
   * key, so that a caller whose launches each differ (a fresh workspace per task) does not collect
   * items nobody will take.
   */
  maxKeys?: number;
  /** Called when an item is booted and waits in the pool (e.g. so it does not keep the process alive). */
  idle(item: Item): void;
  /** Whether an idle item can still be handed out (its VM may have died meanwhile). */
  usable(item: Item): boolean;
  discard(item: Item): Promise<void>;
  /** At process exit: only synchronous work runs then. */
  discardSync(item: Item): void;
}

export interface WarmPool<Item> {
  /**
   * An idle item for `key`, or undefined when none is ready (or the pool is off). Either way the pool
   * for `key` is refilled in the background with `boot`; an item is handed out once, never returned.
   */
  take(key: string, boot: () => Promise<Item>, options?: { refill?: boolean }): Promise<Item | undefined>;
  /**
   * Tops the pool for `key` up to its size: for a caller that took with `refill: false` because the
   * boot's own work (a spawn, say) would have delayed its launch, and calls this once that is done.
   */
  refill(key: string, boot: () => Promise<Item>): void;
  /** Discards every idle item. */
  drain(): Promise<void>;
}

/** Booted, idle resources per shape, each handed out once. */
export function createWarmPool<Item>(options: WarmPoolOptions<Item>): WarmPool<Item> {
  const pending = new Map<string, Promise<Item | undefined>[]>();
  const waiting = new Set<Item>();
  let exitHook = false;

  const maxKeys = Math.max(1, options.maxKeys ?? 4);
  /** Ends the items of a key nobody asked for lately, once booted (unless taken meanwhile). */
  const evict = (key: string) => {
    const list = pending.get(key) ?? [];
    pending.delete(key);
    for (const next of list) {
      void next.then(async (item) => {
        if (item === undefined || !waiting.delete(item)) return;
        await options.discard(item);
      });
    }
  };
  const fill = (key: string, boot: () => Promise<Item>) => {
    const list = pending.get(key) ?? [];
    // Most recently filled last: Map keeps insertion order.
    pending.delete(key);
    pending.set(key, list);
    for (const stale of [...pending.keys()].slice(0, Math.max(0, pending.size - maxKeys))) evict(stale);
    while (list.length < options.size) {
      list.push(
        boot().then(
          (item) => {
            waiting.add(item);
            options.idle(item);
            return item;
          },
          // A failed background boot only means the next launch boots cold.
          () => undefined,
        ),
      );
    }
    if (!exitHook) {
      exitHook = true;
      onProcessExit(() => {
        for (const item of waiting) options.discardSync(item);
      });
    }
  };

  return {
    async take(key, boot, takeOptions = {}) {
      if (options.size <= 0) return undefined;
      const next = pending.get(key)?.shift();
      if (takeOptions.refill !== false) fill(key, boot);
      const item = next ? await next : undefined;
      if (item === undefined) return undefined;
      waiting.delete(item);
      if (options.usable(item)) return item;
      await options.discard(item);
      return undefined;
    },
    refill(key, boot) {
      if (options.size > 0) fill(key, boot);
    },
    async drain() {
      const all = [...pending.values()].flat();
      pending.clear();
      for (const next of all) {
        const item = await next;
        if (item === undefined) continue;
        waiting.delete(item);
        await options.discard(item);
      }
    },
  };
}
