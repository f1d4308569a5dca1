import { describe, expect, it } from 'vitest';
import { readAhead } from './read-ahead.ts';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('readAhead', () => {
  it('fetches the next item while the caller works on the current one, in order', async () => {
    const log: string[] = [];
    async function* pages() {
      for (let i = 1; i <= 3; i++) {
        log.push(`fetch ${i}`);
        await tick();
        yield i;
      }
    }
    const got: number[] = [];
    for await (const p of readAhead(pages())) {
      log.push(`work ${p}`);
      await tick();
      got.push(p);
    }
    expect(got).toEqual([1, 2, 3]);
    // Page 2 was asked for before the caller started on page 1.
    expect(log.indexOf('fetch 2')).toBeLessThan(log.indexOf('work 1'));
    expect(log.indexOf('fetch 3')).toBeLessThan(log.indexOf('work 2'));
  });

  it("surfaces the source's error when the caller reaches it, after the items before it", async () => {
    async function* failing() {
      yield 1;
      throw new Error('page 2 failed');
    }
    const got: number[] = [];
    await expect(async () => {
      for await (const p of readAhead(failing())) got.push(p);
    }).rejects.toThrow('page 2 failed');
    expect(got).toEqual([1]);
  });

  it('closes the source when the caller stops early, and a failure read ahead is not left unhandled', async () => {
    let closed = false;
    async function* src() {
      try {
        yield 1;
        throw new Error('never reached by the caller');
      } finally {
        closed = true;
      }
    }
    const unhandled: unknown[] = [];
    const on = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', on);
    try {
      for await (const p of readAhead(src())) {
        expect(p).toBe(1);
        throw new Error('caller stops');
      }
    } catch (e) {
      expect((e as Error).message).toBe('caller stops');
    }
    await tick();
    process.off('unhandledRejection', on);
    expect(closed).toBe(true);
    expect(unhandled).toEqual([]);
  });
});
