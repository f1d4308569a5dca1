/**
 * KoboToolbox end to end below the HTTP edge: simulator → connector → poll
 * runner → ingest queue → loader → database, on real Redis and databases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KoboSourceConfig } from '@fieldsync/config';
import { loadCursor, type Dialect } from '@fieldsync/db';
import { IngestBatch } from '@fieldsync/queues';
import { drained } from '@fieldsync/queues/testing';
import { KoboConnector, parseKoboWebhook, type SourceConnector, type StoredIndex } from '@fieldsync/connectors';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';
import { runPoll, type PollMode } from './poll.runner.ts';
import { openHarness, koboTestConfig, testLog as log, type Harness } from './testing.ts';

describe.each<Dialect>(['postgresql', 'mysql'])('Kobo sync on %s', (dialect) => {
  let h: Harness;
  let kobo: KoboSimulator;
  let asset: string;
  let connector: KoboConnector;

  beforeAll(async () => {
    h = await openHarness(dialect);
    h.startLoader();
    kobo = await startKoboSimulator({ submissions: 2500, seed: 11 });
    asset = kobo.assetUids[0]!;
    connector = new KoboConnector(koboTestConfig(kobo, { forms: [asset], pageSize: 1000, batchSize: 500 }).sources[0] as KoboSourceConfig, { logger: log });
  });
  afterAll(async () => {
    await h?.close();
    await kobo?.close();
  });

  const poll = async (mode: PollMode) => {
    const summary = await runPoll({ db: h.db, queues: h.queues, log, batchSize: 500 }, { connector, formId: asset, mode });
    await drained(h.queues.ingest);
    return summary;
  };
  const rows = () => h.db.prisma.submission.count({ where: { sourceId: 'kobo', formId: asset } });
  const row = (id: number) => h.db.prisma.submission.findUniqueOrThrow({ where: { sourceId_formId_key: { sourceId: 'kobo', formId: asset, key: String(id) } } });

  it('a sweep before the first poll is skipped (nothing to reconcile yet) and says so in the import log', async () => {
    kobo.clearRequests();
    const s = await poll('sweep');
    expect(s.enqueued).toBe(0);
    expect(kobo.requests).toHaveLength(0);
    expect(await h.db.prisma.syncRun.findFirstOrThrow({ where: { id: s.runId } })).toMatchObject({ mode: 'sweep', outcome: 'skipped' });
  });

  it('a poll over 2,500 records in pages of 1,000 loads 2,500 rows and stores the cursor and a SyncRun', async () => {
    kobo.clearRequests();
    const s = await poll('poll');
    expect(s.fetched).toBe(2500);
    expect(await rows()).toBe(2500);
    const dataPages = kobo.requests.filter((r) => r.path.includes('/data/'));
    expect(dataPages.length).toBe(3);
    const maxId = Math.max(...kobo.records(asset).map((r) => r._id));
    expect(await loadCursor(h.db, 'kobo', asset)).toEqual({ lastId: maxId, lastTime: kobo.record(asset, maxId)!._submission_time });
    const run = await h.db.prisma.syncRun.findFirstOrThrow({ where: { id: s.runId } });
    expect(run).toMatchObject({ mode: 'poll', outcome: 'ok', fetched: 2500, enqueued: 2500 });
    expect(run.finishedAt).not.toBeNull();
  });

  it('a second poll adds only what is new and leaves loaded rows untouched', async () => {
    const before = await row(1);
    const cursor = (await loadCursor(h.db, 'kobo', asset)) as { lastId: number; lastTime: string };
    kobo.createSubmissions(asset, 10);
    const s = await poll('poll');
    expect(await rows()).toBe(2510);
    // The overlap window re-reads what was received in the 5 minutes before the newest record read (late-visible records); nothing older.
    const since = new Date(Date.parse(`${cursor.lastTime}Z`) - 300_000).toISOString().slice(0, 19);
    const window = kobo.records(asset).filter((r) => r._id <= cursor.lastId && String(r._submission_time) >= since).length;
    expect(window).toBeGreaterThan(0);
    expect(s.fetched).toBe(10 + window);
    expect(await row(1)).toEqual(before);
    expect(await h.db.prisma.syncRun.count({ where: { sourceId: 'kobo', mode: 'poll', outcome: 'ok' } })).toBe(2);
  });

  it('the sweep brings edits in, a late webhook of the original does not undo them, deletions are marked', async () => {
    const original = kobo.record(asset, 5)!;
    const edited = kobo.editSubmission(asset, 5);
    expect(edited['meta/deprecatedID']).toBe(original['meta/instanceID']);
    kobo.deleteSubmission(asset, 7);

    await poll('sweep');
    let r = await row(5);
    expect(r.version).toBe(edited['meta/instanceID']);
    expect(r.data).toEqual(edited);
    expect((await row(7)).deleted).toBe(true);
    expect((await row(7)).data).toMatchObject({ _id: 7 }); // the row and its data are kept

    // The REST Service delivers the original late (Kobo retries for up to ~15 minutes).
    const late = parseKoboWebhook('kobo', original, new Date());
    await h.queues.ingest.add(IngestBatch.name, { submissions: late }, IngestBatch.options);
    await drained(h.queues.ingest);
    r = await row(5);
    expect(r.version).toBe(edited['meta/instanceID']);
    expect(r.data).toEqual(edited);
    expect(await rows()).toBe(2510);
  });

  it('a reviewer approving a record (no new version, no timestamp) shows after the sweep', async () => {
    const id = kobo.records(asset).find((r) => JSON.stringify(r._validation_status) === '{}')!._id;
    const original = kobo.record(asset, id)!;
    kobo.validateSubmission(asset, id, 'validation_status_approved');
    await poll('poll'); // nothing in the data API reveals it to an incremental poll
    expect(((await row(id)).data as Record<string, unknown>)._validation_status).toEqual({});
    await poll('sweep');
    const r = await row(id);
    expect(r.version).toBe(original['meta/instanceID']);
    expect(r.data).toMatchObject({ _validation_status: { uid: 'validation_status_approved', label: 'Approved' } });
    // The original, delivered late by the REST Service, does not undo the review.
    await h.queues.ingest.add(IngestBatch.name, { submissions: parseKoboWebhook('kobo', original, new Date()) }, IngestBatch.options);
    await drained(h.queues.ingest);
    expect((await row(id)).data).toMatchObject({ _validation_status: { uid: 'validation_status_approved' } });
  });

  it('a form that received only webhooks is swept before its first poll: edits and missed records come in', async () => {
    const other = kobo.addAsset({ name: 'webhook only' });
    const [a, b] = kobo.createSubmissions(other, 2);
    await h.queues.ingest.add(IngestBatch.name, { submissions: parseKoboWebhook('kobo', a!, new Date()) }, IngestBatch.options);
    await drained(h.queues.ingest);
    const edited = kobo.editSubmission(other, a!._id);
    const s = await runPoll({ db: h.db, queues: h.queues, log, batchSize: 500 }, { connector: new KoboConnector(koboTestConfig(kobo, { forms: [other] }).sources[0] as KoboSourceConfig, { logger: log }), formId: other, mode: 'sweep' });
    await drained(h.queues.ingest);
    expect(await h.db.prisma.syncRun.findFirstOrThrow({ where: { id: s.runId } })).toMatchObject({ mode: 'sweep', outcome: 'ok' });
    const got = await h.db.prisma.submission.findMany({ where: { sourceId: 'kobo', formId: other }, orderBy: { key: 'asc' } });
    expect(got.map((r) => [r.key, r.version])).toEqual([[String(a!._id), edited['meta/instanceID']], [String(b!._id), b!['meta/instanceID']]].sort());
    expect(got.find((r) => r.key === String(a!._id))!.replaces).toBe(a!['meta/instanceID']);
  });

  it("a webhook retry carrying an older edit never undoes the API's newer one; one carrying a newer edit wins", async () => {
    const id = 20;
    const v0 = kobo.record(asset, id)!;
    const v1 = kobo.editSubmission(asset, id);
    const v2 = kobo.editSubmission(asset, id);
    const hook = async (r: Record<string, unknown>) => {
      await h.queues.ingest.add(IngestBatch.name, { submissions: parseKoboWebhook('kobo', r, new Date()) }, IngestBatch.options);
      await drained(h.queues.ingest);
    };
    await hook(v1); // replaces v0, which is stored: it wins
    expect((await row(id)).version).toBe(v1['meta/instanceID']);
    await poll('sweep'); // the API's current copy, v2
    expect((await row(id)).version).toBe(v2['meta/instanceID']);
    await hook(v1); // a late retry of edit 1, stamped later than the sweep's read
    await hook(v0);
    expect((await row(id)).version).toBe(v2['meta/instanceID']);
    const v3 = kobo.editSubmission(asset, id);
    await hook(v3); // re-read at a retry: it replaces what we hold
    expect((await row(id)).data).toEqual(v3);
  });

  it('a sweep also loads records every poll missed (below the cursor)', async () => {
    const [hidden] = kobo.createSubmissions(asset, 1, { hidden: true });
    kobo.createSubmissions(asset, 1);
    await poll('poll'); // sees the newer one; the hidden one is not visible yet
    kobo.reveal(asset, [hidden!._id]);
    await poll('sweep');
    expect((await row(hidden!._id)).version).toBe(hidden!['meta/instanceID']);
  });

  it('a record whose webhook lands while the sweep walks, and that the walk cannot see, is not taken for a deletion', async () => {
    // Not visible in the data API yet (attachments still saving), but its REST Service call arrives mid-walk.
    const [slow] = kobo.createSubmissions(asset, 1, { hidden: true });
    let delivered = false;
    const sweeping: SourceConnector = Object.assign(Object.create(connector) as KoboConnector, {
      async *sweep(formId: string, stored: StoredIndex, opts?: { signal?: AbortSignal }) {
        for await (const page of connector.sweep(formId, stored, opts)) {
          if (!delivered) {
            delivered = true;
            await h.queues.ingest.add(IngestBatch.name, { submissions: parseKoboWebhook('kobo', slow!, new Date()) }, IngestBatch.options);
            await drained(h.queues.ingest);
          }
          yield page;
        }
      },
    });
    await runPoll({ db: h.db, queues: h.queues, log, batchSize: 500 }, { connector: sweeping, formId: asset, mode: 'sweep' });
    await drained(h.queues.ingest);
    expect(delivered).toBe(true);
    expect(await row(slow!._id)).toMatchObject({ deleted: false, version: slow!['meta/instanceID'] });
    kobo.reveal(asset, [slow!._id]);
  });

  it('429 with Retry-After, then 500 once: the poll still completes with every record', async () => {
    kobo.failNext({ status: 429, retryAfterS: 1 }, { status: 500 });
    kobo.clearRequests();
    const s = await poll('backfill');
    const visible = kobo.records(asset).length;
    expect(s.fetched).toBe(visible);
    expect(kobo.requests.filter((r) => r.status === 429 || r.status === 500)).toHaveLength(2);
    expect(await h.db.prisma.submission.count({ where: { formId: asset, deleted: false } })).toBe(visible);
    const run = await h.db.prisma.syncRun.findFirstOrThrow({ where: { id: s.runId } });
    expect(run).toMatchObject({ mode: 'backfill', outcome: 'ok', fetched: visible });
  });
});
