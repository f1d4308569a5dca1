/**
 * Fault test 6: Kobo version chains delivered shuffled, reversed and duplicated,
 * webhook and API copies mixed, through the real loader (two of them, racing) →
 * the newest version of every key wins, on PostgreSQL and MariaDB.
 *
 * Kobo keeps no edit time: a webhook copy's only time is its arrival, so arrival
 * order is noise here by construction, and only the lineage (`meta/deprecatedID`)
 * can order versions. Each round:
 *  - new records, each edited 0-2 times at once (chains original → edit 1 → edit 2
 *    delivered together, as in the reported failure);
 *  - existing records edited once more;
 *  - 1-3 copies of EVERY version of every touched record (old ones again: the
 *    duplicates and late retries), each a webhook body (stamped at arrival) or an
 *    API read (poll/sweep, stamped when that version was current), in shuffled,
 *    reversed (newest first) or duplicated order, in ingest jobs of 1-25 records;
 *  - a real poll through the connector, racing the deliveries.
 * Then every row must hold the simulator's current version, exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KoboSourceConfig } from '@fieldsync/config';
import { KoboConnector, parseKoboWebhook, toCanonical } from '@fieldsync/connectors';
import type { Dialect } from '@fieldsync/db';
import type { CanonicalSubmission } from '@fieldsync/model';
import { IngestBatch } from '@fieldsync/queues';
import { drained } from '@fieldsync/queues/testing';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';
import { runPoll } from '@fieldsync/sync';
import { koboTestConfig, openHarness, testLog as log, type Harness } from '@fieldsync/sync/testing';

const ROUNDS = 10;
const NEW_PER_ROUND = 40;
const EDITS_PER_ROUND = 60;
/** Another seed: LINEAGE_SEED=n. */
const SEED = Number(process.env.LINEAGE_SEED ?? 6);
const ORDERS = ['shuffled', 'reversed', 'duplicated'] as const;

/** Seeded, so a failure replays (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rec = Record<string, unknown> & { _id: number };
/** One version of a record and when it stopped being current (null: it still is). */
interface Version { record: Rec; from: number; until: number | null }

describe.each<Dialect>(['postgresql', 'mysql'])('Kobo lineage under shuffled, reversed and duplicated delivery on %s', (dialect) => {
  let h: Harness;
  let kobo: KoboSimulator;
  let asset: string;
  let connector: KoboConnector;

  beforeAll(async () => {
    h = await openHarness(dialect);
    // Two loaders, three jobs each at a time: copies of one key land in concurrent transactions.
    h.startLoader({ concurrency: 3 });
    h.startLoader({ concurrency: 3 });
    kobo = await startKoboSimulator({ seed: 61, startTime: new Date(Date.now() - 30 * 86_400_000) });
    asset = kobo.assetUids[0]!;
    connector = new KoboConnector(koboTestConfig(kobo, { forms: [asset], pageSize: 100, batchSize: 50 }).sources[0] as KoboSourceConfig, { logger: log });
  });
  afterAll(async () => {
    await h?.close();
    await kobo?.close();
  });

  it(`${ROUNDS} rounds: every key ends on its newest version, whatever order the copies came in`, async () => {
    const random = rng(SEED + (dialect === 'postgresql' ? 0 : 60));
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const shuffle = <T,>(xs: T[]) => {
      for (let i = xs.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [xs[i], xs[j]] = [xs[j]!, xs[i]!];
      }
      return xs;
    };
    const chains = new Map<number, Version[]>();
    const edit = (id: number) => {
      const chain = chains.get(id)!;
      const now = Date.now();
      chain.at(-1)!.until = now;
      chain.push({ record: kobo.editSubmission(asset, id) as Rec, from: now, until: null });
    };
    let delivered = 0;

    for (let round = 0; round < ROUNDS; round++) {
      const order = ORDERS[round % ORDERS.length]!;
      const touched = new Set<number>();
      for (const r of kobo.createSubmissions(asset, NEW_PER_ROUND, { everyS: 2 }) as Rec[]) {
        chains.set(r._id, [{ record: r, from: Date.now(), until: null }]);
        touched.add(r._id);
        const edits = Math.floor(random() * 3);
        for (let e = 0; e < edits; e++) edit(r._id);
      }
      const existing = [...chains.keys()].filter((id) => !touched.has(id));
      for (const id of shuffle(existing).slice(0, EDITS_PER_ROUND)) {
        edit(id);
        touched.add(id);
      }

      // Every version of every touched record, 1-3 copies each.
      const copies: { id: number; version: number; make: () => CanonicalSubmission }[] = [];
      for (const id of touched) {
        chains.get(id)!.forEach((v, i) => {
          const n = 1 + Math.floor(random() * 3);
          for (let c = 0; c < n; c++) {
            const via = pick(['webhook', 'webhook', 'poll', 'sweep'] as const);
            copies.push({
              id,
              version: i,
              make: via === 'webhook'
                // A REST Service body: Kobo re-reads the record at each retry, so any version can come, stamped at arrival.
                ? () => parseKoboWebhook('kobo', v.record, new Date())[0]!
                // An API read: current when it was read, which was before the next edit.
                : () => toCanonical(v.record, { sourceId: 'kobo', formId: asset, via, observedAt: new Date(v.until === null ? Date.now() : v.from + (v.until - v.from) * random()) }),
            });
          }
        });
      }
      let sequence: typeof copies;
      if (order === 'reversed') sequence = copies.sort((a, b) => b.version - a.version || a.id - b.id); // newest versions first
      else if (order === 'duplicated') sequence = shuffle([...copies, ...copies]);
      else sequence = shuffle(copies);

      const jobs: { name: string; data: { submissions: CanonicalSubmission[] }; opts: typeof IngestBatch.options }[] = [];
      for (let i = 0; i < sequence.length; ) {
        const n = 1 + Math.floor(random() * 25);
        // Stamped as they go: later jobs arrive later.
        jobs.push({ name: IngestBatch.name, data: { submissions: sequence.slice(i, i + n).map((c) => c.make()) }, opts: IngestBatch.options });
        i += n;
        if (jobs.length % 10 === 0) await new Promise((r) => setTimeout(r, 2));
      }
      delivered += sequence.length;
      // A real poll (new ids, the API's current copies) races the deliveries.
      const [poll] = await Promise.all([
        runPoll({ db: h.db, queues: h.queues, log, batchSize: 50 }, { connector, formId: asset, mode: 'poll' }),
        h.queues.ingest.addBulk(jobs),
      ]);
      expect(poll.fetched).toBeGreaterThanOrEqual(NEW_PER_ROUND);
      await drained(h.queues.ingest, 120_000);

      const rows = await h.db.prisma.submission.findMany({ where: { sourceId: 'kobo', formId: asset } });
      expect(rows).toHaveLength(chains.size);
      const wrong = rows.filter((r) => r.version !== chains.get(Number(r.key))!.at(-1)!.record['meta/instanceID']);
      // On failure: which keys, what they hold, and their chains (index of the stored version in it).
      const explain = wrong.map((r) => ({ key: r.key, via: r.via, stored: chains.get(Number(r.key))!.findIndex((v) => v.record['meta/instanceID'] === r.version), of: chains.get(Number(r.key))!.length }));
      expect({ round, order, wrong: explain }).toEqual({ round, order, wrong: [] });
      for (const r of rows) expect(r.data).toEqual(kobo.record(asset, Number(r.key)));
    }

    expect(await h.db.prisma.deadLetter.count()).toBe(0);
    const longest = Math.max(...[...chains.values()].map((c) => c.length));
    expect(longest).toBeGreaterThanOrEqual(4);
    log.info({ dialect, keys: chains.size, delivered, longest }, 'kobo lineage fault test done');
  });
});
