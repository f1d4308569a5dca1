import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CanonicalSubmission } from '@fieldsync/model';
import { parseConfig, type SourceConfig } from '@fieldsync/config';
import { startKoboSimulator, koboSubmissionXml, type KoboSimulator, type KoboRestService } from '@fieldsync/simulator';
import { PayloadError } from '../connector.ts';
import { MAX_JSON_DEPTH } from '../depth.ts';
import { readWebhookBody, WebhookBodyError, type WebhookReading } from '../webhook.ts';
import { toCanonical } from './kobo.canonical.ts';
import { parseKoboWebhook } from './kobo.webhook.ts';
import { koboXmlToRecord, parseKoboXmlWebhook } from './kobo.xml.ts';

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
    expect(s!.replaces).toBe('uuid:a'); // the lineage that orders it
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

const source = (extra = ''): SourceConfig =>
  parseConfig(
    `sources:
  - id: kobo-eu
    kind: kobo
    baseUrl: http://127.0.0.1:9
    token: \${T}
    forms: [aForm]
    webhook: { basic: { username: kobo, password: "\${T}" }${extra} }
`,
    't.yaml',
    { T: 'x' },
  ).sources[0]!;
const JSON_CT = 'application/json';
const read = (body: string, contentType = JSON_CT, src = source()): WebhookReading => readWebhookBody(src, { body, contentType }, at);
const refusal = (body: string, contentType = JSON_CT): WebhookBodyError => {
  try {
    read(body, contentType);
  } catch (e) {
    if (e instanceof WebhookBodyError) return e;
    throw e;
  }
  throw new Error('not refused');
};
/** `{"x": ...}` nested so the whole body has `depth` levels of objects/arrays. */
const nested = (depth: number) => '{"x":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);

/** Delivers what the simulator's REST Service sends to a local receiver; returns each request's body and content type. */
async function deliver(records: Record<string, unknown>[], service: Omit<KoboRestService, 'url'>): Promise<{ body: string; contentType: string }[]> {
  const got: { body: string; contentType: string }[] = [];
  const receiver = createServer((req, res) => {
    let b = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      got.push({ body: b, contentType: String(req.headers['content-type']) });
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  try {
    const { sendKoboRestService } = await import('@fieldsync/simulator');
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`;
    for (const r of records) expect((await sendKoboRestService(r, { ...service, url, retryDelaysMs: [] })).ok).toBe(true);
  } finally {
    receiver.closeAllConnections();
    receiver.close();
  }
  return got;
}

describe('payload templates', () => {
  it('finds the record inside a Kobo payload_template and stores only the record', async () => {
    sim = await startKoboSimulator({ submissions: 3, seed: 5 });
    const records = sim.records(sim.assetUids[0]!);
    const bodies = await deliver(records, { payloadTemplate: '{"source": "kobo-eu", "project": {"name": "x"}, "submission": %SUBMISSION%}' });
    expect(JSON.parse(bodies[0]!.body)).toMatchObject({ source: 'kobo-eu', submission: { _id: records[0]!._id } });
    bodies.forEach((b, i) => {
      const r = read(b.body);
      expect(r.unparsed).toBeUndefined();
      expect(r.submissions).toEqual(parseKoboWebhook('kobo-eu', records[i], at));
    });
  });

  it('webhook.recordPath names the record where detection cannot (two candidates)', () => {
    const body = JSON.stringify({ before: { ...rec, _id: 1 }, data: { record: rec } });
    expect(read(body).unparsed).toMatch(/several Kobo records \(before, data\.record\): set webhook\.recordPath/);
    const [s] = read(body, JSON_CT, source(', recordPath: data.record')).submissions!;
    expect(s).toMatchObject({ key: '812', data: rec });
  });

  it('a recordPath that the body lacks is reported, not guessed around', () => {
    expect(read(JSON.stringify({ submission: rec }), JSON_CT, source(', recordPath: payload')).unparsed).toBe('webhook.recordPath "payload": the body has no "payload" there');
  });

  it('the config refuses a malformed recordPath, naming the key', () => {
    expect(() => source(', recordPath: "a..b"')).toThrow(/webhook.*recordPath|recordPath/);
  });
});

describe('XML REST Service (export_type=xml)', () => {
  it('reads kpi\'s instance XML into the JSON export\'s shape (flat group keys, repeats of 2+ as arrays, strings)', () => {
    const xml = `<?xml version='1.0' encoding='UTF-8'?>
<aForm xmlns:orx="http://openrosa.org/xforms" id="aForm" version="vAbc">
  <formhub><uuid>f1</uuid></formhub>
  <start>2026-11-16T09:00:00.000+03:00</start>
  <household>
    <respondent_age>41</respondent_age>
    <note_text> spaced &amp; &lt;kept&gt; </note_text>
    <empty/>
    <members><member_name>A</member_name><illnesses><illness>flu</illness></illnesses><illnesses><illness>cough</illness></illnesses></members>
    <members><member_name>B</member_name></members>
  </household>
  <__version__>vAbc</__version__>
  <orx:meta><orx:instanceID>uuid:b</orx:instanceID><orx:rootUuid>uuid:a</orx:rootUuid></orx:meta>
</aForm>`;
    const { record } = koboXmlToRecord(xml);
    expect(record).toEqual({
      'formhub/uuid': 'f1',
      start: '2026-11-16T09:00:00.000+03:00',
      'household/respondent_age': '41',
      'household/note_text': ' spaced & <kept> ',
      'household/members': [
        { 'household/members/member_name': 'A', 'household/members/illnesses': [{ 'household/members/illnesses/illness': 'flu' }, { 'household/members/illnesses/illness': 'cough' }] },
        { 'household/members/member_name': 'B' },
      ],
      __version__: 'vAbc',
      'meta/instanceID': 'uuid:b',
      'meta/rootUuid': 'uuid:a',
      _xform_id_string: 'aForm',
      _uuid: 'b',
    });
    const [s] = parseKoboXmlWebhook('kobo-eu', xml, at);
    // No _id in an instance: keyed on meta/rootUuid; no _submission_time: dated at receipt.
    expect(s).toMatchObject({ formId: 'aForm', key: 'uuid:a', version: 'uuid:b', submittedAt: at.toISOString(), updatedAt: at.toISOString(), via: 'webhook', data: record });
    expect(Object.hasOwn(s!.data, '_submission_time')).toBe(false);
  });

  it('with the form\'s repeats known, the XML reads as exactly the JSON record (less the database\'s own fields)', async () => {
    sim = await startKoboSimulator({ submissions: 8, seed: 9 });
    const records = sim.records(sim.assetUids[0]!);
    const bodies = await deliver(records, { exportType: 'xml' });
    const repeatPaths = ['household/members', 'household/members/illnesses'];
    let singles = 0;
    bodies.forEach((b, i) => {
      const json = records[i]!;
      const [s] = readWebhookBody(source(), { body: b.body, contentType: b.contentType }, at, { repeatPaths }).submissions!;
      const expected = Object.fromEntries(Object.entries(json).filter(([k]) => !k.startsWith('_') || k === '__version__' || k === '_xform_id_string' || k === '_uuid'));
      expect(s!.data).toEqual(expected);
      const members = json['household/members'] as Record<string, unknown>[] | undefined;
      if (members?.length === 1 || members?.some((m) => (m['household/members/illnesses'] as unknown[] | undefined)?.length === 1)) singles++;
    });
    expect(singles).toBeGreaterThan(0); // one-entry repeats were exercised
  });

  it('parses what the simulator sends as XML: every answer of the JSON record, by the same keys', async () => {
    sim = await startKoboSimulator({ submissions: 6, seed: 7 });
    const records = sim.records(sim.assetUids[0]!);
    const bodies = await deliver(records, { exportType: 'xml' });
    bodies.forEach((b, i) => {
      expect(b.contentType).toBe('application/xml');
      const r = read(b.body, b.contentType);
      expect(r.unparsed).toBeUndefined();
      const json = records[i]!;
      const [s] = r.submissions!;
      expect(s).toMatchObject({ formId: json._xform_id_string, version: json['meta/instanceID'], key: json['meta/rootUuid'] });
      // Same keys and values as the JSON export, minus the database's own fields; a single-entry
      // repeat reads as a group (documented), so compare the answers through a flattening.
      const flat = (o: Record<string, unknown>, out: Record<string, string[]> = {}) => {
        for (const [k, v] of Object.entries(o)) {
          if (Array.isArray(v)) v.forEach((e) => flat(e as Record<string, unknown>, out));
          else (out[k] ??= []).push(String(v));
        }
        return out;
      };
      const answers = Object.fromEntries(Object.entries(json).filter(([k]) => !k.startsWith('_') || k === '__version__' || k === '_xform_id_string' || k === '_uuid'));
      expect(flat(s!.data)).toEqual(flat(answers));
      for (const v of Object.values(flat(s!.data))) for (const x of v) expect(typeof x).toBe('string');
    });
    // Repeats with several entries come out as arrays, as in the JSON.
    const multi = records.findIndex((r) => Array.isArray(r['household/members']) && (r['household/members'] as unknown[]).length > 1);
    expect(multi).toBeGreaterThanOrEqual(0);
    expect(read(bodies[multi]!.body, 'application/xml').submissions![0]!.data['household/members']).toHaveLength((records[multi]!['household/members'] as unknown[]).length);
  });

  it('text/xml is XML too; malformed XML is refused; well-formed XML without a record is kept', () => {
    const xml = koboSubmissionXml(rec);
    expect(read(xml, 'text/xml; charset=utf-8').submissions).toHaveLength(1);
    expect(refusal('<aForm><open>', 'application/xml').code).toBe('malformed_xml');
    expect(refusal('not xml at all', 'application/xml').code).toBe('malformed_xml');
    expect(read('<note><to>someone</to></note>', 'application/xml').unparsed).toMatch(/no id attribute|instanceID/);
  });
});

describe('bodies no parser understands, hostile JSON', () => {
  it('valid JSON of an unknown shape is not refused: it comes back unparsed with the reason', () => {
    expect(read('{"hello": "world"}').unparsed).toMatch(/missing/);
    expect(read('"x"').unparsed).toBe('body must be a JSON object (a Kobo record) or an array of records');
    expect(read('[]').unparsed).toMatch(/empty array/);
  });

  it('malformed JSON and other media types are refused', () => {
    expect(refusal('{"_id": 1,').code).toBe('malformed_json');
    expect(refusal('', JSON_CT).code).toBe('malformed_json');
    expect(refusal('a=1', 'application/x-www-form-urlencoded').code).toBe('unsupported_media_type');
  });

  it('keeps a top-level __proto__ key (and nested ones) through parsing and the canonical schema', () => {
    const body = `{"__proto__": {"polluted": "yes"}, ${JSON.stringify(rec).slice(1, -1)}, "g": {"__proto__": 1}}`;
    const [s] = read(body).submissions!;
    const stored = CanonicalSubmission.parse(JSON.parse(JSON.stringify(s)));
    expect(Object.keys(stored.data)).toContain('__proto__');
    expect(JSON.parse(JSON.stringify(stored.data))).toEqual(JSON.parse(body));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it(`refuses JSON nested deeper than ${MAX_JSON_DEPTH} levels with a message that says so, without a stack overflow`, () => {
    const at31 = JSON.stringify({ ...rec, deep: JSON.parse(nested(MAX_JSON_DEPTH - 1)) });
    expect(read(at31).submissions).toHaveLength(1);
    const at32 = JSON.stringify({ ...rec, deep: JSON.parse(nested(MAX_JSON_DEPTH)) });
    const e = refusal(at32);
    expect(e.code).toBe('too_deep');
    expect(e.message).toBe('JSON nests deeper than 31 levels (objects and arrays), the most fieldsync stores');
    expect(refusal('['.repeat(10_000) + ']'.repeat(10_000)).code).toBe('too_deep');
    expect(refusal('{"a":'.repeat(100_000)).code).toBe('too_deep'); // not even valid: depth is checked first
    // Brackets inside strings do not count.
    expect(read(JSON.stringify({ ...rec, text: '{['.repeat(100) })).submissions).toHaveLength(1);
  });

  it('refuses XML nested too deep', () => {
    const deep = `<aForm id="aForm">${'<g>'.repeat(40)}1${'</g>'.repeat(40)}<meta><instanceID>uuid:x</instanceID></meta></aForm>`;
    expect(refusal(deep, 'application/xml').code).toBe('too_deep');
  });
});
