import { describe, expect, it } from 'vitest';
import { parseConfig } from '@fieldsync/config';
import { anyAttachments, attachmentSettings } from './settings.ts';
import { attachmentKey, keySegment } from './store.ts';

const kobo = (id: string, extra: object = {}) => ({ id, kind: 'kobo', baseUrl: 'https://kf.example.org', token: '${T}', forms: ['a'], ...extra });
const cfg = (o: object) => parseConfig(JSON.stringify(o), 'x.json', { T: 't', K: 'key', S: 'secret' });

describe('attachment settings', () => {
  it('off unless configured', () => {
    const c = cfg({ sources: [kobo('k')] });
    expect(attachmentSettings(c, c.sources[0]!)).toBeNull();
    expect(anyAttachments(c)).toBe(false);
  });

  it('top-level store for every source; a source may switch off or bring its own store', () => {
    const c = cfg({
      attachments: { store: { s3: { bucket: 'b', pathStyle: true, endpoint: 'http://minio:9000', accessKeyId: '${K}', secretAccessKey: '${S}' } }, attempts: 3 },
      sources: [kobo('a'), kobo('b', { attachments: { enabled: false } }), kobo('c', { attachments: { store: { dir: '/m' } } })],
    });
    const [a, b, c3] = c.sources;
    expect(attachmentSettings(c, a!)).toMatchObject({ attempts: 3, store: { s3: { bucket: 'b', region: 'us-east-1', prefix: '', pathStyle: true, accessKeyId: 'key', secretAccessKey: 'secret' } } });
    expect(attachmentSettings(c, b!)).toBeNull();
    expect(attachmentSettings(c, c3!)).toMatchObject({ store: { dir: '/m' } });
  });

  it('a source with its own store needs no top-level key; enabled with no store anywhere is a clear error', () => {
    const c = cfg({ sources: [kobo('a', { attachments: { store: { dir: '/m' } } }), kobo('b', { attachments: { enabled: true } })] });
    expect(attachmentSettings(c, c.sources[0]!)).toMatchObject({ store: { dir: '/m' }, attempts: 5, concurrency: 4 });
    expect(() => attachmentSettings(c, c.sources[1]!)).toThrow(/sources\.b\.attachments: enabled but no store/);
  });

  it('refuses a store with both or neither of s3 and dir', () => {
    expect(() => cfg({ attachments: { store: {} }, sources: [kobo('a')] })).toThrow(/attachments/);
    expect(() => cfg({ attachments: { store: { dir: '/m', s3: { bucket: 'b' } } }, sources: [kobo('a')] })).toThrow(/attachments/);
  });

  it('keys cannot climb out of the prefix', () => {
    expect(keySegment('..')).toBe('_');
    expect(keySegment('a/../b')).toBe('a_.._b');
    expect(attachmentKey('p/', { sourceId: 's', formId: 'f', key: '../x', name: '../../etc/passwd' })).toBe('p/s/f/.._x/.._.._etc_passwd');
  });
});
