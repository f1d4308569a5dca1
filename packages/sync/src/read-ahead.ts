/**
 * Asks the source for the next item as soon as the current one is handed out, so
 * fetching page N+1 (the source's time, the network, JSON parsing) overlaps with
 * the caller's work on page N (mapping, enqueueing, saving the cursor). Order and
 * errors are the source's: an error surfaces when the caller reaches it. At most
 * one item is held ahead.
 */
export async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let next = it.next();
  // Observed below; this only keeps a failure the caller never reaches (it stopped first) from being unhandled.
  next.catch(() => {});
  let done = false;
  try {
    for (;;) {
      const r = await next;
      if (r.done) {
        done = true;
        return;
      }
      next = it.next();
      next.catch(() => {});
      yield r.value;
    }
  } finally {
    // The caller stopped early (break, throw): let the fetch in flight settle, then close the source.
    if (!done) {
      await next.catch(() => {});
      await it.return?.(undefined);
    }
  }
}
