import { describe, expect, it } from 'vitest';
import { jsonTextDepthExceeds } from './depth.ts';

const nested = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);

describe('jsonTextDepthExceeds', () => {
  it('is exact at the limit, whether the bracket count alone settles it or the scan must', () => {
    expect(jsonTextDepthExceeds(nested(3), 3)).toBe(false); // 3 brackets: settled by the count
    expect(jsonTextDepthExceeds(nested(4), 3)).toBe(true);
    // Many brackets side by side: the count exceeds the limit, the depth does not.
    expect(jsonTextDepthExceeds(`[${'{},'.repeat(50)}[]]`, 3)).toBe(false);
    expect(jsonTextDepthExceeds(`[${'{},'.repeat(50)}[[[{}]]]]`, 3)).toBe(true);
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    expect(jsonTextDepthExceeds(JSON.stringify({ a: '[[[[[[', b: 'say \\"{{{{"' }), 2)).toBe(false);
    expect(jsonTextDepthExceeds(JSON.stringify({ a: '[[[[[[', b: [[1]] }), 2)).toBe(true);
  });
});
