/**
 * Form definitions through the poll runner: simulator → connector → FormSchema,
 * on real Redis and databases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KoboSourceConfig } from '@fieldsync/config';
import { OdkSource } from '@fieldsync/config';
import { loadFormSchemas, type Dialect } from '@fieldsync/db';
import { drained } from '@fieldsync/queues/testing';
import { KoboConnector, OdkConnector, type SourceConnector } from '@fieldsync/connectors';
import { koboQuestion, startKoboSimulator, startOdkSimulator, type KoboSimulator, type OdkSimulator } from '@fieldsync/simulator';
import type { FormField } from '@fieldsync/model';
import { runPoll, type PollMode } from './poll.runner.ts';
import { openHarness, koboTestConfig, testLog as log, type Harness } from './testing.ts';

const paths = (fields: FormField[]): string[] => fields.flatMap((f) => [f.path.join('/'), ...paths(f.children ?? [])]);

describe.each<Dialect>(['postgresql', 'mysql'])('form definitions on %s', (dialect) => {
  let h: Harness;
  let kobo: KoboSimulator;
  let odk: OdkSimulator;
  let asset: string;
  let koboConnector: KoboConnector;
  let odkConnector: OdkConnector;
  const FORM = 'household_survey';

  beforeAll(async () => {
    h = await openHarness(dialect);
    h.startLoader();
    kobo = await startKoboSimulator({ submissions: 20, seed: 3 });
    asset = kobo.assetUids[0]!;
    koboConnector = new KoboConnector(koboTestConfig(kobo, { forms: [asset] }).sources[0] as KoboSourceConfig, { logger: log });
    odk = await startOdkSimulator({ submissions: 20, seed: 3 });
    odkConnector = new OdkConnector(
      OdkSource.parse({
        kind: 'odk', id: 'odk', baseUrl: odk.url, projectId: 1, forms: [FORM], overlapMs: 0,
        auth: { session: { email: odk.email, password: odk.password } },
        http: { timeoutMs: 5000, retries: 2, backoffMs: 10, maxBackoffMs: 200 },
      }),
      { logger: log },
    );
  });
  afterAll(async () => {
    await h?.close();
    await kobo?.close();
    await odk?.close();
  });

  const poll = async (connector: SourceConnector, formId: string, mode: PollMode) => {
    const summary = await runPoll({ db: h.db, queues: h.queues, log, batchSize: 500 }, { connector, formId, mode });
    await drained(h.queues.ingest);
    return summary;
  };

  it('Kobo: a backfill stores one row per deployed version; a version deployed later is stored by the next poll', async () => {
    const v1 = kobo.records(asset)[0]!.__version__ as string;
    const v2 = kobo.deployVersion(asset, (s) => void s.push(koboQuestion('integer', 'household_size', () => '4', { label: ['Household size', null] })));
    kobo.createSubmissions(asset, 5);
    await poll(koboConnector, asset, 'backfill');
    let defs = await loadFormSchemas(h.db, 'kobo', asset);
    expect(defs.map((d) => d.version)).toEqual([v1, v2]); // the saved draft between them is not a deployed version
    expect(paths(defs[0]!.fields)).not.toContain('household_size');
    expect(paths(defs[1]!.fields)).toContain('household_size');
    expect(await h.db.prisma.formSchema.count({ where: { sourceId: 'kobo', formId: asset } })).toBe(2);

    // A poll soon after asks nothing (the definitions are fresh) …
    kobo.clearRequests();
    await poll(koboConnector, asset, 'poll');
    expect(kobo.requests.filter((r) => !r.path.endsWith('/data/'))).toEqual([]);

    // … until a record carries a version we do not hold.
    const v3 = kobo.deployVersion(asset, (s) => void s.push(koboQuestion('text', 'roof', () => 'iron')));
    kobo.createSubmissions(asset, 2);
    await poll(koboConnector, asset, 'poll');
    defs = await loadFormSchemas(h.db, 'kobo', asset);
    expect(defs.map((d) => d.version)).toEqual([v1, v2, v3]);
    expect(paths(defs[2]!.fields)).toContain('roof');
    expect(await h.db.prisma.submission.count({ where: { sourceId: 'kobo', formId: asset } })).toBe(27);
  });

  it('ODK: a backfill stores the published version; a version published later is stored by the next poll', async () => {
    await poll(odkConnector, FORM, 'backfill');
    expect((await loadFormSchemas(h.db, 'odk', FORM)).map((d) => d.version)).toEqual(['2026.1']);
    const v2 = odk.publishVersion(FORM, (fields) => void fields.push({ name: 'roof', type: 'string', label: { 'English (en)': 'Roof', 'French (fr)': 'Toit' } }));
    odk.createSubmission(FORM);
    await poll(odkConnector, FORM, 'poll');
    const defs = await loadFormSchemas(h.db, 'odk', FORM);
    expect(defs.map((d) => d.version)).toEqual(['2026.1', v2]);
    expect(defs[1]!.fields.find((f) => f.name === 'roof')).toMatchObject({ type: 'text', labels: { 'French (fr)': 'Toit' } });
  });

  it('a definition that cannot be read does not fail the poll; the sweep stores it later', async () => {
    const v3 = odk.publishVersion(FORM, (fields) => void fields.push({ name: 'fence', type: 'int' }));
    odk.createSubmission(FORM);
    odk.failNext({ status: 404, path: '/versions', code: 404.1, message: 'Could not find the resource you were looking for.' });
    const s = await poll(odkConnector, FORM, 'poll');
    expect(await h.db.prisma.syncRun.findUniqueOrThrow({ where: { id: s.runId } })).toMatchObject({ outcome: 'ok' });
    expect((await loadFormSchemas(h.db, 'odk', FORM)).map((d) => d.version)).not.toContain(v3);
    await poll(odkConnector, FORM, 'sweep');
    expect((await loadFormSchemas(h.db, 'odk', FORM)).map((d) => d.version)).toContain(v3);
  });
});
