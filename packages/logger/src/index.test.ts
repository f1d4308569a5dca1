import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger, safeUrl } from './index.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk, _e, cb) { lines.push(String(chunk)); cb(); } });
  return { lines, destination };
}

describe('logger', () => {
  it('redacts tokens, passwords and authorization headers', () => {
    const { lines, destination } = capture();
    const log = createLogger('t', { destination, level: 'info' });
    log.info({ token: 'tok-123', source: { auth: { password: 'pw-456' } }, req: { headers: { authorization: 'Token abc-789' } } }, 'hello');
    const out = lines.join('');
    expect(out).toContain('hello');
    for (const secret of ['tok-123', 'pw-456', 'abc-789']) expect(out).not.toContain(secret);
    expect(out).toContain('[redacted]');
  });

  it('strips passwords from URLs', () => {
    expect(safeUrl('postgresql://u:hunter2@db:5432/x')).not.toContain('hunter2');
  });
});
