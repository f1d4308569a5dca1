import type { AddressInfo } from 'node:net';
import { setMaxListeners } from 'node:events';
import type { Server } from 'node:http';
import { KoboStore, type KoboAnswers, type KoboRecord } from './kobo.records.ts';
import type { KoboChoices, KoboNode } from './kobo.form.ts';
import { createKoboApp, type KoboFault, type KoboRequestLog, type KoboServerState } from './kobo.server.ts';
import { sendKoboRestService, type KoboDeliveryResult, type KoboRestService } from './kobo.sender.ts';
import { FileFaults } from '../attachments.ts';

export { KoboStore, submissionTime, type KoboAnswers, type KoboAsset, type KoboRecord, type KoboVersion } from './kobo.records.ts';
export { SURVEY as KOBO_SURVEY, KOBO_CHOICES, KOBO_TRANSLATIONS, koboQuestion, findKoboNode, cloneSurvey, type KoboNode, type KoboQuestion, type KoboSection, type KoboQuestionType, type KoboLabel, type KoboContent, type KoboChoices } from './kobo.form.ts';
export { createKoboApp, DEFAULT_LIMIT as KOBO_DEFAULT_LIMIT, MAX_LIMIT as KOBO_MAX_LIMIT, type KoboFault, type KoboRequestLog } from './kobo.server.ts';
export { sendKoboRestService, koboSubmissionXml, KOBO_RETRY_DELAYS_MS, type KoboRestService, type KoboDeliveryAttempt, type KoboDeliveryResult } from './kobo.sender.ts';

export interface KoboSimulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** API token clients must send as `Authorization: Token <token>`. Default `kobo-sim-token`. */
  token?: string;
  /** PRNG seed: same seed + same calls → same records. Default 1. */
  seed?: number;
  /** Survey assets to create; default one. `uid` defaults to a seeded Kobo-style uid. */
  assets?: { uid?: string; name?: string }[];
  /** Share of new submissions with household members (the repeat group). Default: as seeded records always were (about 80 %). */
  repeatShare?: number;
  /** Submissions created in every asset at start. Default 0. */
  submissions?: number;
  /** First `_id` handed out (ids are unique across assets). Default 1. */
  firstId?: number;
  /** Simulated receive time of the first submission; later ones follow 5–300 s apart, never past the real clock. Default: 30 days ago. */
  startTime?: Date;
  /** Base of absolute URLs in answers (`next`, …), e.g. to pose as a server behind a proxy. Default: the Host the client called. */
  publicUrl?: string;
  /** How many deployed versions the asset detail embeds (kpi: DEFAULT_API_PAGE_SIZE, 100); the rest only via `/versions/`. */
  embeddedVersions?: number;
  /** A REST Service: every newly created (or revealed) submission is POSTed to it; never edits or deletes. */
  restService?: KoboRestService;
}

export interface KoboSimulator {
  /** Base URL, e.g. `http://127.0.0.1:40123` (the `baseUrl` of a Kobo source). */
  readonly url: string;
  readonly token: string;
  /** Uids of the survey assets, in creation order. */
  readonly assetUids: string[];
  /** Every request received (faulted and refused ones included), oldest first. */
  readonly requests: readonly KoboRequestLog[];
  /** Forgets the request log. */
  clearRequests(): void;
  /** The next requests (one each, in order, any path) answer with these faults. */
  failNext(...faults: KoboFault[]): void;
  /** The next `times` downloads of the attachment with this file name answer `status` (default 500). */
  failFile(name: string, times: number, status?: number): void;
  /** Adds a survey asset; returns its uid. */
  addAsset(o?: { uid?: string; name?: string }): string;
  /** Redeploys a form; later records and edits carry the new `__version__`. Returns the version uid. */
  deploy(assetUid: string): string;
  /**
   * Deploys a changed form: `mutate` edits copies of the current survey (see
   * `koboQuestion`, `findKoboNode`) and choice lists in place, or returns a new
   * survey. Later records are filled in with it and carry the new `__version__`.
   * Returns the version uid.
   */
  deployVersion(assetUid: string, mutate: (survey: KoboNode[], choices: KoboChoices) => KoboNode[] | void): string;
  /** Creates `count` submissions. `hidden`: their `_id`s are taken now but they stay invisible until {@link reveal}. */
  createSubmissions(assetUid: string, count: number, opts?: { hidden?: boolean; everyS?: number }): KoboRecord[];
  /** Makes hidden submissions visible (all when `ids` is omitted): smaller `_id`s appearing after larger ones. */
  reveal(assetUid: string, ids?: number[]): KoboRecord[];
  /** Edits a submission (default: a corrected age and a comment; `null` removes an answer). Returns the new version. */
  editSubmission(assetUid: string, id: number, answers?: KoboAnswers): KoboRecord;
  /** Sets or clears a submission's validation status (no new version, no timestamp). Returns the record. */
  validateSubmission(assetUid: string, id: number, status: 'validation_status_approved' | 'validation_status_not_approved' | 'validation_status_on_hold' | null): KoboRecord;
  /** Hard-deletes a submission; false if there was none. */
  deleteSubmission(assetUid: string, id: number): boolean;
  /** Current visible records, `_id` ascending (copies). */
  records(assetUid: string): KoboRecord[];
  /** One current record (copy), or undefined. */
  record(assetUid: string, id: number): KoboRecord | undefined;
  /** Attaches (or with null detaches) the REST Service used for new submissions. */
  setRestService(service: KoboRestService | null): void;
  /** Waits for every REST Service delivery started so far; returns all results, oldest first. */
  flushRestService(): Promise<KoboDeliveryResult[]>;
  /** Stops the server and abandons pending REST Service retries. */
  close(): Promise<void>;
  /** The underlying state, for tests that need more. */
  readonly store: KoboStore;
}

/** Starts an in-process KoboToolbox (kpi v2 API) on a local port. */
export async function startKoboSimulator(opts: KoboSimulatorOptions = {}): Promise<KoboSimulator> {
  const store = new KoboStore({
    seed: opts.seed ?? 1,
    firstId: opts.firstId ?? 1,
    ...(opts.repeatShare !== undefined ? { repeatShare: opts.repeatShare } : {}),
    startTime: opts.startTime ?? new Date(Date.now() - 30 * 86_400_000),
  });
  const state: KoboServerState = { store, token: opts.token ?? 'kobo-sim-token', faults: [], log: [], publicUrl: opts.publicUrl, embeddedVersions: opts.embeddedVersions, fileFaults: new FileFaults() };
  const server: Server = await new Promise((resolve, reject) => {
    const s = createKoboApp(state).listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  store.publicBase = (opts.publicUrl ?? url).replace(/\/$/, '');

  let restService = opts.restService ?? null;
  const deliveries: Promise<KoboDeliveryResult>[] = [];
  const abort = new AbortController();
  // Every pending delivery listens for close(); there can be thousands.
  setMaxListeners(0, abort.signal);
  // Kobo fires only on creation, and re-reads the record at every attempt.
  const deliver = (assetUid: string, recs: KoboRecord[]) => {
    if (!restService) return;
    const service = { domain: new URL(store.publicBase).host, ...restService };
    for (const r of recs) {
      const current = () => store.assets.get(assetUid)?.records.get(r._id);
      deliveries.push(sendKoboRestService(current, service, { signal: abort.signal }));
    }
  };

  const assetUids = (opts.assets ?? [{}]).map((a) => store.addAsset(a).uid);
  // A library block: present in unfiltered listings, so `q=asset_type:survey` matters.
  store.addAsset({ name: 'Library: contact details block', assetType: 'block' });
  for (const uid of assetUids) deliver(uid, store.create(uid, opts.submissions ?? 0));

  return {
    url,
    token: state.token,
    assetUids,
    store,
    get requests() {
      return state.log;
    },
    clearRequests: () => void (state.log.length = 0),
    failNext: (...faults) => void state.faults.push(...faults),
    failFile: (name, times, status) => state.fileFaults!.fail(name, times, status),
    addAsset: (o = {}) => {
      const uid = store.addAsset(o).uid;
      assetUids.push(uid);
      return uid;
    },
    deploy: (uid) => store.deploy(uid),
    deployVersion: (uid, mutate) => store.deployVersion(uid, mutate),
    createSubmissions: (uid, count, o = {}) => {
      const recs = store.create(uid, count, o);
      if (!o.hidden) deliver(uid, recs);
      return recs;
    },
    reveal: (uid, ids) => {
      const recs = store.reveal(uid, ids);
      deliver(uid, recs);
      return recs;
    },
    editSubmission: (uid, id, answers) => store.edit(uid, id, answers),
    validateSubmission: (uid, id, status) => store.validate(uid, id, status),
    deleteSubmission: (uid, id) => store.delete(uid, id),
    records: (uid) => structuredClone(store.visible(uid)),
    record: (uid, id) => {
      const r = store.get(uid).records.get(id);
      return r && structuredClone(r);
    },
    setRestService: (s) => void (restService = s),
    flushRestService: () => Promise.all(deliveries),
    close: async () => {
      abort.abort();
      const closed = new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
      server.closeAllConnections(); // keep-alive sockets would hold close() open
      await closed;
    },
  };
}
