import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CanonicalSubmission } from '@fieldsync/model';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';
import { PayloadError } from '../connector.ts';
import { toCanonical } from './kobo.canonical.ts';
import { parseKoboWebhook } from './kobo.webhook.ts';

const at = new Date('2026-11-20T10:00:00.000Z');
const rec = {
  _id: 812,
  'formhub/uuid': 'f1',
  'household/respondent_age': '41',
  __version__: 'vAbc',
  'meta/instanceID': 'uuid:b',
  'meta/rootUuid': 'uuid:a',
  _xform_id_string: 'aForm',
  _uuid: 'b',
  _submission_time: '2026-11-16T09:12:44',
};
const without = (k: string) => Object.fromEntries(Object.entries(rec).filter(([x]) => x !== k));
const fails = (body: unknown, hints = {}) => () => parseKoboWebhook('kobo-eu', body, at, hints);

let sim: KoboSimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe('parseKoboWebhook', () => {
  it('parses what the simulator REST Service POSTs', async () => {
    const parsed: CanonicalSubmission[] = [];
    const receiver = createServer((req, res) => {
      let s = '';
      req.on('data', (c) => (s += c));
      req.on('end', () => {
        parsed.push(...parseKoboWebhook('kobo-eu', JSON.parse(s), new Date()));
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      sim = await startKoboSimulator({ restService: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`, retryDelaysMs: [] } });
      const uid = sim.assetUids[0]!;
      const created = sim.createSubmissions(uid, 3);
      expect((await sim.flushRestService()).every((r) => r.ok)).toBe(true);
      expect(parsed.map((s) => s.key).sort()).toEqual(created.map((r) => String(r._id)).sort());
      for (const s of parsed) {
        const r = created.find((x) => String(x._id) === s.key)!;
        expect(() => CanonicalSubmission.parse(s)).not.toThrow();
        expect(s).toMatchObject({ sourceId: 'kobo-eu', formId: uid, version: r['meta/instanceID'], via: 'webhook', deleted: false, data: r });
        expect(s.updatedAt).toBe(`${r._submission_time}.000Z`);
      }
    } finally {
      receiver.closeAllConnections();
      receiver.close();
    }
  });

  it('builds the canonical submission from a bare record', () => {
    const [s] = parseKoboWebhook('kobo-eu', rec, at);
    expect(s).toEqual({
      sourceId: 'kobo-eu',
      formId: 'aForm',
      key: '812',
      version: 'uuid:b',
      updatedAt: '2026-11-16T09:12:44.000Z',
      submittedAt: '2026-11-16T09:12:44.000Z',
      deleted: false,
      observedAt: at.toISOString(),
      data: rec,
      via: 'webhook',
    });
  });

  it('dates an edited version (meta/deprecatedID) at its observation', () => {
    const [s] = parseKoboWebhook('kobo-eu', { ...rec, 'meta/deprecatedID': 'uuid:a' }, at);
    expect(s!.updatedAt).toBe(at.toISOString());
    expect(s!.submittedAt).toBe('2026-11-16T09:12:44.000Z');
  });

  it('reads _submission_time as UTC whatever the local zone', () => {
    const tz = process.env.TZ;
    process.env.TZ = 'Africa/Nairobi';
    try {
      const s = toCanonical(rec, { sourceId: 's', formId: 'f', observedAt: at, via: 'poll' });
      expect(s.submittedAt).toBe('2026-11-16T09:12:44.000Z');
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  it('accepts an array of records', () => {
    const out = parseKoboWebhook('kobo-eu', [rec, { ...rec, _id: 813, 'meta/instanceID': 'uuid:c' }], at);
    expect(out.map((s) => [s.key, s.version])).toEqual([['812', 'uuid:b'], ['813', 'uuid:c']]);
  });

  it('keys a field subset on meta/rootUuid, then meta/instanceID; takes formId from the hint', () => {
    const subset = without('_id');
    expect(parseKoboWebhook('k', subset, at)[0]!.key).toBe('uuid:a');
    const bare = { 'meta/instanceID': 'uuid:b', _submission_time: rec._submission_time };
    expect(parseKoboWebhook('k', bare, at, { formId: 'aForm' })[0]).toMatchObject({ key: 'uuid:b', formId: 'aForm' });
    // _uuid stands in for a missing instanceID, written the same way.
    expect(parseKoboWebhook('k', without('meta/instanceID'), at)[0]!.version).toBe('uuid:b');
  });

  it.each([
    ['null', null, 'body must be a JSON object'],
    ['a string', 'hello', 'body must be a JSON object'],
    ['a number', 42, 'body must be a JSON object'],
    ['an empty array', [], 'body is an empty array'],
    ['an array with a non-object', [rec, 'x'], 'record 1 must be a JSON object'],
    ['no _xform_id_string and no hint', without('_xform_id_string'), 'missing "_xform_id_string" (or pass ?formId=)'],
    ['no meta/instanceID nor _uuid', Object.fromEntries(Object.entries(rec).filter(([k]) => k !== 'meta/instanceID' && k !== '_uuid')), 'missing "meta/instanceID"'],
    ['no _submission_time', without('_submission_time'), 'missing "_submission_time"'],
    ['a bad _submission_time', { ...rec, _submission_time: 'yesterday' }, '"_submission_time" is not a timestamp: "yesterday"'],
    ['a non-integer _id', { ...rec, _id: 'abc' }, '"_id" must be an integer, got "abc"'],
    ['an empty _xform_id_string', { ...rec, _xform_id_string: '' }, '"_xform_id_string" must be a non-empty string'],
    ['a bad record inside an array', [rec, without('_submission_time')], 'record 1: missing "_submission_time"'],
    ['a form id too long', { ...rec, _xform_id_string: 'a'.repeat(300) }, 'formId:'],
  ])('refuses %s', (_name, body, message) => {
    expect(fails(body)).toThrow(PayloadError);
    expect(fails(body)).toThrow(message);
  });

  it('refuses a body whose form differs from ?formId=', () => {
    expect(fails(rec, { formId: 'aOther' })).toThrow('"_xform_id_string" is "aForm" but ?formId= says "aOther"');
    expect(parseKoboWebhook('k', rec, at, { formId: 'aForm' })).toHaveLength(1);
  });
});
