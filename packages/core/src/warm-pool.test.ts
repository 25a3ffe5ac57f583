import { describe, expect, it } from 'vitest';
import { createWarmPool } from './warm-pool.js';

function pool(size = 1) {
  const discarded: number[] = [];
  let booted = 0;
  const warm = createWarmPool<{ id: number; usable: boolean }>({
    size,
    idle: () => {},
    usable: (item) => item.usable,
    discard: async (item) => {
      discarded.push(item.id);
    },
    discardSync: (item) => discarded.push(item.id),
  });
  const boot = async () => ({ id: ++booted, usable: true });
  return { warm, boot, discarded, booted: () => booted };
}

describe('createWarmPool', () => {
  it('hands out nothing at first, then what it booted meanwhile, each item once', async () => {
    const { warm, boot, booted } = pool();
    expect(await warm.take('shape', boot)).toBeUndefined();
    expect(booted()).toBe(1);
    expect((await warm.take('shape', boot))?.id).toBe(1);
    expect((await warm.take('other', boot))?.id).toBeUndefined();
    expect((await warm.take('shape', boot))?.id).toBe(2);
  });

  it('with refill: false boots only when asked to refill', async () => {
    const { warm, boot, booted } = pool();
    expect(await warm.take('shape', boot, { refill: false })).toBeUndefined();
    expect(booted()).toBe(0);
    warm.refill('shape', boot);
    expect((await warm.take('shape', boot, { refill: false }))?.id).toBe(1);
    expect(booted()).toBe(1);
  });

  it('discards an item that is no longer usable instead of handing it out', async () => {
    const { warm, discarded } = pool();
    await warm.take('shape', async () => ({ id: 7, usable: false }));
    expect(await warm.take('shape', async () => ({ id: 8, usable: true }))).toBeUndefined();
    expect(discarded).toEqual([7]);
  });

  it('adds one exit listener to the process, however many pools it makes', async () => {
    const before = process.listenerCount('exit');
    for (let index = 0; index < 20; index++) {
      const { warm, boot } = pool();
      warm.refill('shape', boot);
      await warm.drain();
    }
    expect(process.listenerCount('exit') - before).toBeLessThanOrEqual(1);
  });

  it('keeps items for at most maxKeys keys, discarding those of the least recently filled', async () => {
    const discarded: string[] = [];
    const warm = createWarmPool<string>({
      size: 1,
      maxKeys: 2,
      idle: () => {},
      usable: () => true,
      discard: async (item) => {
        discarded.push(item);
      },
      discardSync: () => {},
    });
    const bootFor = (key: string) => async () => `${key}-item`;
    warm.refill('first', bootFor('first'));
    warm.refill('second', bootFor('second'));
    // Filling `first` again makes `second` the least recent: a third key evicts it, not `first`.
    warm.refill('first', bootFor('first'));
    warm.refill('third', bootFor('third'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(discarded).toEqual(['second-item']);
    expect(await warm.take('second', bootFor('second'), { refill: false })).toBeUndefined();
    expect(await warm.take('first', bootFor('first'), { refill: false })).toBe('first-item');
    expect(await warm.take('third', bootFor('third'), { refill: false })).toBe('third-item');
  });

  it('keeps none with size 0, and drain discards every idle item', async () => {
    const off = pool(0);
    off.warm.refill('shape', off.boot);
    expect(await off.warm.take('shape', off.boot)).toBeUndefined();
    expect(off.booted()).toBe(0);
    const { warm, boot, discarded } = pool(2);
    warm.refill('shape', boot);
    await warm.drain();
    expect(discarded.sort()).toEqual([1, 2]);
  });
});
