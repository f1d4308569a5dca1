import { afterEach, describe, expect, it } from 'vitest';
import { SocrataSource, type SocrataSourceConfig } from '@fieldsync/config';
import { CanonicalSubmission } from '@fieldsync/model';
import { PET_DATASET, startSocrataSimulator, type SocrataSimulator, type SocrataSimulatorOptions } from '@fieldsync/simulator';
import { AuthError, storedIndexOf, type Cursor, type PullPage } from '../connector.ts';
import { SocrataConnector, soqlLiteral } from './socrata.connector.ts';

let sim: SocrataSimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function setup(o: SocrataSimulatorOptions, source: Record<string, unknown> = {}) {
  sim = await startSocrataSimulator(o);
  const config: SocrataSourceConfig = SocrataSource.parse({ id: 'soc', kind: 'socrata', baseUrl: sim.url, datasets: [PET_DATASET], pageSize: 100, http: { timeoutMs: 5000, retries: 3, backoffMs: 10, maxBackoffMs: 50 }, ...source });
  return { sim, connector: new SocrataConnector(config) };
}

async function pages(it: AsyncIterable<PullPage>): Promise<PullPage[]> {
  const out: PullPage[] = [];
  for await (const p of it) out.push(p);
  return out;
}

describe('SocrataConnector', () => {
  it('builds valid canonical submissions keyed by :id with :version and :updated_at', async () => {
    const { connector, sim } = await setup({ pets: 250 });
    const all = (await pages(connector.pull(PET_DATASET, null, { via: 'poll' }))).flatMap((p) => p.submissions);
    expect(all).toHaveLength(250);
    for (const s of all) expect(CanonicalSubmission.safeParse(s).success).toBe(true);
    const r = sim.dataset(PET_DATASET).byId()[0]!;
    expect(all[0]).toMatchObject({ key: r[':id'], version: r[':version'], updatedAt: r[':updated_at'], submittedAt: r[':created_at'], deleted: false });
  });

  it('a row edited behind the keyset during a walk is read again by the next pull', async () => {
    const { connector, sim } = await setup({ pets: 300 });
    const ds = sim.dataset(PET_DATASET);
    let cursor: Cursor | undefined;
    let edited = '';
    for await (const p of connector.pull(PET_DATASET, null, { via: 'poll' })) {
      if (!edited) {
        edited = p.submissions[0]!.key; // already read
        ds.edit(edited, { animal_s_name: 'Edited behind' });
        ds.edit(ds.byId().at(-1)![':id'] as string, { animal_s_name: 'Edited ahead' }); // newer, read in this walk
      }
      cursor = p.cursor;
    }
    const again = (await pages(connector.pull(PET_DATASET, cursor!, { via: 'poll' }))).flatMap((p) => p.submissions);
    expect(again.find((s) => s.key === edited)?.data.animal_s_name).toBe('Edited behind');
  });

  it('resumes a walk cut short from its mid-walk cursor, without the rows already read', async () => {
    const { connector } = await setup({ pets: 250 });
    const walk = connector.pull(PET_DATASET, null, { via: 'poll' })[Symbol.asyncIterator]();
    const first = (await walk.next()).value as PullPage;
    await walk.return?.();
    expect(first.cursor).toMatchObject({ walk: { afterId: first.submissions.at(-1)!.key } });
    const rest = (await pages(connector.pull(PET_DATASET, first.cursor!, { via: 'poll' }))).flatMap((p) => p.submissions);
    expect(rest).toHaveLength(150);
    expect(rest.some((s) => first.submissions.some((f) => f.key === s.key))).toBe(false);
  });

  it('filters on a configured business column with a quoted literal and keeps its high-water mark', async () => {
    const { connector, sim } = await setup({ pets: 120 }, { updatedColumn: 'license_issue_date' });
    const one = await pages(connector.pull(PET_DATASET, null, { via: 'poll' }));
    const cursor = one.at(-1)!.cursor!;
    const newest = [...sim.dataset(PET_DATASET).rows.values()].map((r) => r.license_issue_date as string).sort().at(-1)!;
    expect(cursor).toMatchObject({ column: 'license_issue_date', since: newest });
    sim.dataset(PET_DATASET).add({ license_number: 'N-1', license_issue_date: '2030-01-01T00:00:00.000' });
    sim.resetLog();
    const two = (await pages(connector.pull(PET_DATASET, cursor, { via: 'poll' }))).flatMap((p) => p.submissions);
    expect(two.map((s) => s.data.license_number)).toEqual(['N-1']);
    expect(sim.resourceRequests().find((r) => r.query.$select === ':*,*')?.query.$where).toBe(`license_issue_date > '${newest}'`);
    expect(soqlLiteral("O'Brien")).toBe("'O''Brien'");
  });

  it('tolerates SODA 2.0 (legacy types header, $limit at most 50,000)', async () => {
    const { connector } = await setup({ pets: 30, legacy: true }, { pageSize: 50_000 });
    expect((await pages(connector.pull(PET_DATASET, null, { via: 'poll' }))).flatMap((p) => p.submissions)).toHaveLength(30);
  });

  it('names the appToken key when the portal refuses the token', async () => {
    const { connector } = await setup({ pets: 5, appToken: 'right' }, { appToken: 'wrong' });
    await expect(pages(connector.pull(PET_DATASET, null, { via: 'poll' }))).rejects.toBeInstanceOf(AuthError);
  });

  it('a sweep tombstones stored keys the dataset no longer has, keeping their version', async () => {
    const { connector, sim } = await setup({ pets: 150 });
    const ds = sim.dataset(PET_DATASET);
    const gone = ds.byId()[42]!;
    const stored = new Map([...ds.rows.values()].map((r) => [r[':id'] as string, { key: r[':id'] as string, version: r[':version'] as string, updatedAt: new Date(r[':updated_at'] as string), submittedAt: new Date(r[':created_at'] as string), deleted: false }]));
    ds.remove(gone[':id'] as string);
    const out = [];
    for await (const p of connector.sweep(PET_DATASET, storedIndexOf(stored))) out.push(...p.submissions);
    expect(out).toEqual([expect.objectContaining({ key: gone[':id'], deleted: true, version: gone[':version'], via: 'sweep' })]);
  });
});
