import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './testing.ts';
import { decodeDeadLetterPayload, encodeDeadLetterPayload, recordDeadLetter } from './dead-letters.ts';
import type { Dialect } from './dialect.ts';

// A record the database refused for its NUL, next to text that merely looks like the escapes involved.
const payload = {
  submissions: [{ key: '1', data: { note: 'a\u0000b', nul: '\u0000', looksLikeEscape: '\\u0000 and \\u2400', symbol: '\u2400', backslashThenNul: '\\\u0000' } }],
  body: '{"raw": "x\\u0000y"}',
};

describe('dead-letter payload text', () => {
  it('holds no \\u0000 escape and decodes to exactly the payload', () => {
    const text = encodeDeadLetterPayload(payload);
    expect(JSON.stringify(payload)).toContain('\\u0000'); // what the old column held
    expect(text).not.toMatch(/(?<!\\)(\\\\)*\\u0000/);
    expect(decodeDeadLetterPayload(text)).toEqual(payload);
  });
});

describe.each<Dialect>(['postgresql', 'mysql'])('DeadLetter rows on %s', (dialect) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(dialect);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('a payload holding \\u0000 stays readable as JSON in SQL, and replays exactly', async () => {
    const id = await recordDeadLetter(t.db, { queue: 'ingest', jobName: 'ingest-batch', payload, error: 'bad byte \u0000 here', attempts: 3 });
    const row = await t.db.prisma.deadLetter.findUniqueOrThrow({ where: { id } });
    expect(decodeDeadLetterPayload(row.payload)).toEqual(payload);
    expect(row.error).toBe('bad byte \u2400 here');
    if (dialect === 'postgresql') {
      const [r] = await t.db.prisma.$queryRawUnsafe<{ note: string; raw: string }[]>(
        `SELECT (payload::jsonb)#>>'{submissions,0,data,note}' AS note, (payload::jsonb)->>'body' AS raw FROM "DeadLetter" WHERE id = $1`, id);
      expect(r).toEqual({ note: 'a\u2400b', raw: payload.body });
      // Why: the plain JSON text of the same payload is not castable.
      await expect(t.db.prisma.$queryRawUnsafe('SELECT $1::jsonb AS j', JSON.stringify(payload))).rejects.toThrow(/unsupported Unicode escape sequence|\\u0000/);
    } else {
      const [r] = await t.db.prisma.$queryRawUnsafe<{ ok: number | bigint; note: string }[]>(
        `SELECT JSON_VALID(payload) AS ok, JSON_UNQUOTE(JSON_EXTRACT(payload, '$.submissions[0].data.note')) AS note FROM DeadLetter WHERE id = ?`, id);
      expect(Number(r!.ok)).toBe(1);
      expect(r!.note).toBe('a\u2400b');
    }
  });
});
