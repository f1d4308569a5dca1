/**
 * How deep a stored record may nest: at most 31 objects/arrays inside one
 * another, the record itself being level 1. MariaDB's JSON type refuses 32
 * (checked on 10.11: 31 nested containers are JSON_VALID, 32 are not), and
 * PostgreSQL takes far more; one limit, enforced at the door, makes both
 * databases accept the same records. A Kobo record is flat (each repeat adds
 * two levels), so real forms stay far below it.
 */
export const MAX_JSON_DEPTH = 31;

/**
 * True when JSON text nests deeper than `max`, found by scanning the text
 * (no recursion, no parse): safe on a body nested 100,000 deep. Brackets
 * inside strings do not count. The text need not be valid JSON.
 */
export function jsonTextDepthExceeds(text: string, max = MAX_JSON_DEPTH): boolean {
  // Nesting needs an opening bracket per level: a text with at most `max` of them
  // cannot exceed it. Counted with indexOf (native, fast) before the exact scan;
  // a typical webhook body has a handful, and then the scan is skipped.
  if (openingBrackets(text, max + 1) <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** How many `{` and `[` the text holds, counting no further than `stop`. */
function openingBrackets(text: string, stop: number): number {
  let n = 0;
  for (const b of ['{', '[']) {
    for (let i = text.indexOf(b); i !== -1 && n < stop; i = text.indexOf(b, i + 1)) n++;
  }
  return n;
}

/** The same for a value already in memory (the body's record, an XML conversion), iteratively. */
export function valueDepthExceeds(value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (typeof child === 'object' && child !== null) stack.push([child, d + 1]);
  }
  return false;
}
