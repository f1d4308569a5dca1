/**
 * Attachments end to end (issue 15, test 3): Kobo and ODK simulators → poll →
 * ingest (rows) → attachment queue → a real S3-compatible server (s3rver) and a
 * local directory, on real PostgreSQL and MariaDB and Redis.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from 'bullmq';
import S3rver from 's3rver';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { parseConfig, type FieldsyncConfig, type KoboSourceConfig, type OdkSourceConfig } from '@fieldsync/config';
import { KoboConnector, OdkConnector, type SourceConnector } from '@fieldsync/connectors';
import { drained } from '@fieldsync/queues/testing';
import {
  attachmentBytes, findKoboNode, koboQuestion, sha256Hex, startBlobHost, startKoboSimulator, startOdkSimulator,
  type BlobHost, type KoboQuestion, type KoboSimulator, type OdkSimulator,
} from '@fieldsync/simulator';
import { openHarness, testLog as log, until, type Harness } from '@fieldsync/sync/testing';
import { replayDeadLetters, runPoll } from '@fieldsync/sync';
import type { CanonicalSubmission } from '@fieldsync/model';
import type { Dialect } from '@fieldsync/db';
import { TypedTables } from '@fieldsync/tables';
import { enqueueAttachments, startAttachmentWorker } from './attachments.ts';

const ODK_FORM = {
  xmlFormId: 'site_visit',
  fields: [
    { name: 'site', type: 'string' as const },
    { name: 'photo_front', type: 'image' as const },
    { name: 'photo_back', type: 'image' as const },
  ],
};

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe.each<Dialect>(['postgresql', 'mysql'])('attachments to object storage on %s', (dialect) => {
  let h: Harness;
  let kobo: KoboSimulator;
  let odk: OdkSimulator;
  let blobs: BlobHost;
  let s3: S3rver | undefined;
  let s3Port: number;
  let s3Dir: string;
  let mediaDir: string;
  let config: FieldsyncConfig;
  let media: Worker;
  let asset: string;
  const connectors: Record<string, SourceConnector> = {};
  const startS3 = async () => {
    s3 = new S3rver({ port: s3Port, address: '127.0.0.1', silent: true, directory: s3Dir, configureBuckets: [{ name: 'media' }] });
    await s3.run();
  };
  const client = () => new S3Client({ endpoint: `http://127.0.0.1:${s3Port}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });

  beforeAll(async () => {
    h = await openHarness(dialect);
    s3Port = await freePort();
    s3Dir = await mkdtemp(join(tmpdir(), 'fs-s3rver-'));
    mediaDir = await mkdtemp(join(tmpdir(), 'fs-media-'));
    await startS3();
    kobo = await startKoboSimulator({ seed: 15 });
    asset = kobo.assetUids[0]!;
    // Two images on every record: the stock photo (always answered) and a second one.
    kobo.deployVersion(asset, (survey) => {
      (findKoboNode(survey, 'photo') as KoboQuestion).answer = (_r, c) => `dwelling-${c.seq}.jpg`;
      survey.push(koboQuestion('image', 'photo_roof', (_r, c) => `roof-${c.seq}.jpg`));
    });
    blobs = await startBlobHost();
    // Central keeping blobs in S3: every file download is a 307 to the blob host.
    odk = await startOdkSimulator({ seed: 15, forms: [ODK_FORM], blobs });
    config = parseConfig(
      JSON.stringify({
        attachments: {
          store: { s3: { endpoint: `http://127.0.0.1:${s3Port}`, region: 'us-east-1', bucket: 'media', prefix: 'fs/', pathStyle: true, accessKeyId: '${AWS_ACCESS_KEY_ID}', secretAccessKey: '${AWS_SECRET_ACCESS_KEY}' } },
          concurrency: 2, attempts: 6, backoffMs: 200, timeoutMs: 10_000,
        },
        sources: [
          { id: 'kobo', kind: 'kobo', baseUrl: kobo.url, token: '${KOBO_TOKEN}', forms: [asset], http: { timeoutMs: 5000, retries: 2, backoffMs: 50, maxBackoffMs: 500 } },
          // The same server into a directory instead (a per-source store).
          { id: 'kobo-dir', kind: 'kobo', baseUrl: kobo.url, token: '${KOBO_TOKEN}', forms: [asset], attachments: { store: { dir: mediaDir } }, http: { timeoutMs: 5000, retries: 2, backoffMs: 50, maxBackoffMs: 500 } },
          { id: 'odk', kind: 'odk', baseUrl: odk.url, projectId: odk.projectId, forms: [ODK_FORM.xmlFormId], auth: { session: { email: odk.email, password: '${ODK_PASSWORD}' } }, http: { timeoutMs: 5000, retries: 2, backoffMs: 50, maxBackoffMs: 500 } },
        ],
      }),
      'test.json',
      { KOBO_TOKEN: kobo.token, ODK_PASSWORD: odk.password, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
    );
    connectors.kobo = new KoboConnector(config.sources[0] as KoboSourceConfig, { logger: log });
    connectors['kobo-dir'] = new KoboConnector(config.sources[1] as KoboSourceConfig, { logger: log });
    connectors.odk = new OdkConnector(config.sources[2] as OdkSourceConfig, { logger: log });
    h.startLoader({ config, afterCommit: (stored) => enqueueAttachments({ db: h.db, queues: h.queues, config, log }, stored) });
    media = startAttachmentWorker({ settings: h.settings, db: h.db, queues: h.queues, config, log });
  });
  afterAll(async () => {
    await media?.close();
    await h?.close();
    await kobo?.close();
    await odk?.close();
    await blobs?.close();
    await s3?.close();
    await rm(s3Dir, { recursive: true, force: true });
    await rm(mediaDir, { recursive: true, force: true });
  });

  /** A poll of one source/form through the real pipeline, then both queues drained. */
  const sync = async (sourceId: string, mode: 'poll' | 'backfill' = 'poll') => {
    const formId = sourceId === 'odk' ? ODK_FORM.xmlFormId : asset;
    await runPoll({ db: h.db, queues: h.queues, log, batchSize: 100 }, { connector: connectors[sourceId]!, formId, mode });
    await drained(h.queues.ingest);
  };
  const settle = () => drained(h.queues.attachments, 60_000);
  const rows = (sourceId: string) => h.db.prisma.attachment.findMany({ where: { sourceId }, orderBy: { name: 'asc' } });
  const object = async (key: string) => {
    const c = client();
    try {
      const r = await c.send(new GetObjectCommand({ Bucket: 'media', Key: key }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } finally {
      c.destroy();
    }
  };
  /** Per file question of one typed row: [file name, `<question>_stored`], tables and columns found through the data dictionary. */
  const typedFiles = async (sourceId: string, key: string): Promise<[unknown, unknown][]> => {
    const dict = dialect === 'postgresql' ? 'fieldsync._fieldsync_columns' : '_fieldsync_columns';
    const cols = await h.db.sql.query<{ path: string; part: string; table_name: string; column_name: string }>(
      `SELECT path, part, table_name, column_name FROM ${dict} WHERE source_id = ? AND field_type = 'binary' AND part IN ('', 'stored')`, [sourceId],
    );
    const out: [unknown, unknown][] = [];
    for (const name of cols.filter((c) => c.part === '')) {
      const stored = cols.find((c) => c.path === name.path && c.part === 'stored')!;
      const table = dialect === 'postgresql' ? `fieldsync."${name.table_name}"` : `\`${name.table_name}\``;
      const [row] = await h.db.sql.query<{ n: unknown; s: unknown }>(`SELECT ${name.column_name} AS n, ${stored.column_name} AS s FROM ${table} WHERE _key = ?`, [key]);
      if (row) out.push([row.n, row.s]);
    }
    return out.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  };
  /** What the typed table must show: each stored file's name and location. */
  const attachmentCells = async (sourceId: string, key: string) =>
    (await rows(sourceId)).filter((r) => r.submissionKey === key).map((r) => [r.name, r.location]);
  const koboDownloads = () => kobo.requests.filter((r) => r.path.includes('/attachments/'));
  const odkAttachmentCalls = () => odk.requests.filter((r) => r.path.includes('/attachments'));

  it('a Kobo and an ODK submission with two images each → all four files in the bucket with the right bytes and hash; the presigned host never sees credentials', async () => {
    const [rec] = kobo.createSubmissions(asset, 1);
    const instanceId = odk.createSubmission(ODK_FORM.xmlFormId, { answers: { site: 'A', photo_front: 'front-1.jpg', photo_back: 'back-1.jpg' } });
    await sync('kobo');
    await sync('odk');
    await settle();

    const k = await rows('kobo');
    expect(k.map((r) => r.name)).toEqual([`dwelling-${rec!._id}.jpg`, `roof-${rec!._id}.jpg`].sort());
    const o = await rows('odk');
    expect(o.map((r) => [r.submissionKey, r.name])).toEqual([[instanceId, 'back-1.jpg'], [instanceId, 'front-1.jpg']]);
    for (const r of [...k, ...o]) {
      const key = `fs/${r.sourceId}/${r.formId}/${r.submissionKey}/${r.name}`;
      expect(r.location).toBe(`s3://media/${key}`);
      const bytes = await object(key);
      expect(bytes.equals(attachmentBytes(r.name))).toBe(true);
      expect(r.sha256).toBe(sha256Hex(bytes));
      expect(Number(r.size)).toBe(bytes.length);
    }
    expect(k.map((r) => r.questionPath).sort()).toEqual(['photo', 'photo_roof']);
    // ODK: Central's ETag (the md5) kept; the files came through the 307, which carried no Authorization.
    expect(o.every((r) => /^"[0-9a-f]{32}"$/.test(r.etag ?? ''))).toBe(true);
    expect(blobs.requests.filter((r) => r.status === 200)).toHaveLength(2);
    expect(blobs.requests.every((r) => !r.authorization)).toBe(true);
    expect(odkAttachmentCalls().every((r) => r.auth === 'bearer')).toBe(true);
    // The data rows are there too, of course.
    expect(await h.db.prisma.submission.count({ where: { sourceId: { in: ['kobo', 'odk'] } } })).toBe(2);
  });

  it('the typed tables show each stored location next to the file name (the row was typed before the file arrived); a rebuild gives the same', async () => {
    const kobKey = String(kobo.records(asset)[0]!._id);
    const odkKey = (await rows('odk'))[0]!.submissionKey;
    const want = { kobo: await attachmentCells('kobo', kobKey), odk: await attachmentCells('odk', odkKey) };
    expect(want.kobo).toHaveLength(2);
    expect(want.odk).toHaveLength(2);
    // Filled by the attachment worker: the loader had typed these rows before any file was stored.
    expect(await typedFiles('kobo', kobKey)).toEqual(want.kobo);
    expect(await typedFiles('odk', odkKey)).toEqual(want.odk);
    // A rebuild from Submission + Attachment gives the same cells.
    const tables = new TypedTables(dialect, { refreshMs: 0 });
    await tables.rebuild(h.db, 'kobo', asset);
    await tables.rebuild(h.db, 'odk', ODK_FORM.xmlFormId);
    expect(await typedFiles('kobo', kobKey)).toEqual(want.kobo);
    expect(await typedFiles('odk', odkKey)).toEqual(want.odk);
  });

  it('a re-sync (a full backfill re-reading every record) downloads nothing', async () => {
    kobo.clearRequests();
    odk.clearRequests();
    const before = blobs.requests.length;
    await sync('kobo', 'backfill');
    await sync('odk', 'backfill');
    await settle();
    expect(koboDownloads()).toHaveLength(0);
    // Not even a listing: Central's attachmentsExpected is already stored.
    expect(odkAttachmentCalls()).toHaveLength(0);
    expect(blobs.requests.length).toBe(before);
    expect(await h.db.prisma.attachment.count({ where: { sourceId: { in: ['kobo', 'odk'] } } })).toBe(4);
    // The loader rewrote the typed rows with the files already recorded: their locations stay (looked up in the same batch).
    for (const r of await h.db.prisma.attachment.findMany({ where: { sourceId: { in: ['kobo', 'odk'] } } })) {
      expect(await typedFiles(r.sourceId, r.submissionKey)).toContainEqual([r.name, r.location]);
    }
    // A job that still gets through (a replay, a race) finds the row and skips the download.
    const again = kobo.records(asset).map((r) => ({ sourceId: 'kobo', formId: asset, key: String(r._id), deleted: false, data: r }) as unknown as CanonicalSubmission);
    expect(await enqueueAttachments({ db: h.db, queues: h.queues, config, log }, again)).toBe(0);
  });

  it('a 500 on one file: retried, then only that file is dead-lettered; the other is stored; a replay after the fix stores it', async () => {
    const [rec] = kobo.createSubmissions(asset, 1);
    const bad = `roof-${rec!._id}.jpg`;
    kobo.failFile(bad, 1_000);
    kobo.clearRequests();
    await sync('kobo');
    await settle();
    const names = (await rows('kobo')).filter((r) => r.submissionKey === String(rec!._id)).map((r) => r.name);
    expect(names).toEqual([`dwelling-${rec!._id}.jpg`]);
    // Every attempt (6) asked once: no retry storm inside an attempt.
    expect(koboDownloads().filter((r) => r.status === 500)).toHaveLength(6);
    const dead = await h.db.prisma.deadLetter.findMany({ where: { queue: 'attachments', replayedAt: null } });
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]!.payload)).toMatchObject({ sourceId: 'kobo', key: String(rec!._id), name: bad });
    expect(dead[0]!.error).toMatch(/500/);

    kobo.failFile(bad, 0);
    expect(await replayDeadLetters(h.db, h.queues)).toBe(1);
    await settle();
    const row = await h.db.prisma.attachment.findUniqueOrThrow({ where: { sourceId_formId_submissionKey_name: { sourceId: 'kobo', formId: asset, submissionKey: String(rec!._id), name: bad } } });
    expect(row.sha256).toBe(sha256Hex(attachmentBytes(bad)));
  });

  it('the data rows load while the storage is down; the files follow once it is back', async () => {
    await s3!.close();
    s3 = undefined;
    const [rec] = kobo.createSubmissions(asset, 1);
    await sync('kobo'); // returns once the ingest queue is drained: the rows did not wait for storage
    expect(await h.db.prisma.submission.count({ where: { sourceId: 'kobo', key: String(rec!._id) } })).toBe(1);
    const pending = async () => Object.values(await h.queues.attachments.getJobCounts('delayed', 'active', 'waiting')).reduce((a, b) => a + b, 0);
    expect(await until(pending, (n) => n > 0, 5_000)).toBeGreaterThan(0);
    expect((await rows('kobo')).filter((r) => r.submissionKey === String(rec!._id))).toHaveLength(0);
    await startS3();
    await settle();
    expect((await rows('kobo')).filter((r) => r.submissionKey === String(rec!._id)).map((r) => r.name)).toHaveLength(2);
  });

  it('a local directory store: files written whole (temp + rename), hash recorded, location a file:// URL', async () => {
    await sync('kobo-dir');
    await settle();
    const d = await rows('kobo-dir');
    // Every Kobo record made so far, two files each.
    expect(d.length).toBe(2 * kobo.records(asset).length);
    for (const r of d) {
      expect(r.location.startsWith('file://')).toBe(true);
      const bytes = await readFile(fileURLToPath(r.location));
      expect(bytes.equals(attachmentBytes(r.name))).toBe(true);
      expect(r.sha256).toBe(sha256Hex(bytes));
      expect(fileURLToPath(r.location)).toBe(join(mediaDir, 'kobo-dir', asset, r.submissionKey, r.name));
    }
  });
  it('ODK: a file Collect has not uploaded yet (listed with exists: false) is listed again later; the one already there is stored at once', async () => {
    odk.holdUpload('late-2.jpg');
    const id = odk.createSubmission(ODK_FORM.xmlFormId, { answers: { site: 'B', photo_front: 'early-2.jpg', photo_back: 'late-2.jpg' } });
    await sync('odk');
    const mine = async () => (await rows('odk')).filter((r) => r.submissionKey === id).map((r) => r.name);
    expect(await until(mine, (n) => n.length === 1)).toEqual(['early-2.jpg']);
    odk.holdUpload('late-2.jpg', false);
    await settle();
    expect(await mine()).toEqual(['early-2.jpg', 'late-2.jpg']);
    expect(await h.db.prisma.deadLetter.count({ where: { queue: 'attachments', sourceId: 'odk' } })).toBe(0);
  });
  it('ODK: a session that expired since the last download is renewed once (a 401, a new login) and the files still arrive', async () => {
    odk.expireSessions();
    odk.clearRequests();
    const id = odk.createSubmission(ODK_FORM.xmlFormId, { answers: { site: 'C', photo_front: 'front-3.jpg', photo_back: 'back-3.jpg' } });
    await sync('odk');
    await settle();
    expect((await rows('odk')).filter((r) => r.submissionKey === id).map((r) => r.name)).toEqual(['back-3.jpg', 'front-3.jpg']);
    expect(odkAttachmentCalls().filter((r) => r.status === 401).length).toBeGreaterThan(0);
    expect(await h.db.prisma.deadLetter.count({ where: { queue: 'attachments', sourceId: 'odk' } })).toBe(0);
  });
});
