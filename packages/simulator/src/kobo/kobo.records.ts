import { cloneSurvey, defaultEdit, fillSurvey, KOBO_CHOICES, mediaPaths, SURVEY, surveyContent, type KoboChoices, type KoboContent, type KoboNode } from './kobo.form.ts';
import { Rng } from './kobo.random.ts';

/** A submission exactly as the Kobo data API returns it: flat, every answer a string. */
export type KoboRecord = Record<string, unknown> & { _id: number };

export interface KoboAsset {
  uid: string;
  name: string;
  /** Only `survey` assets have data; a `block` (library question block) shows up in unfiltered listings. */
  assetType: 'survey' | 'block';
  owner: string;
  dateCreated: Date;
  dateModified: Date;
  /** Deployed versions, oldest first; the last one is current (`__version__` of new records and edits). */
  versions: KoboVersion[];
  /** Every saved version (drafts saved before a deploy too), oldest first: what `/versions/` lists. */
  history: KoboVersion[];
  formhubUuid: string;
  /** The draft content (`content` of the asset detail): the form as last saved. */
  content: KoboContent;
  /** The form new records are filled in with (that of the current deployed version). */
  survey: KoboNode[];
  /** Its choice lists. */
  choices: KoboChoices;
  /** Visible records by `_id`. */
  records: Map<number, KoboRecord>;
  /** Records whose `_id` is taken but that the API does not show yet (slow attachment save). */
  hidden: Map<number, KoboRecord>;
}

/** One saved version of an asset's form. */
export interface KoboVersion {
  uid: string;
  /** Set when this version was deployed (drafts: undefined). */
  deployedAt?: Date;
  dateModified: Date;
  content: KoboContent;
}

export interface KoboStoreOptions {
  seed: number;
  /** First `_id` the server hands out. */
  firstId: number;
  /** Simulated receive time of the first submission. */
  startTime: Date;
  /** Share of records with repeat entries (see AnswerContext). */
  repeatShare?: number;
}

/** Answers a test can set on an edit: a string sets, `null` removes (unanswered), arrays for repeats. */
export type KoboAnswers = Record<string, string | null | Record<string, string>[]>;

/** `_submission_time` format: UTC, no zone, whole seconds. */
export function submissionTime(d: Date): string {
  return d.toISOString().slice(0, 19);
}

const SYSTEM_PREFIXES = ['_', 'formhub/', 'meta/'];
const isAnswer = (k: string) => !SYSTEM_PREFIXES.some((p) => k.startsWith(p));

/**
 * The server's state: assets and their records, with the mutations tests need.
 * `_id`s are unique across all assets and only grow, as on the real server.
 */
export class KoboStore {
  readonly assets = new Map<string, KoboAsset>();
  /** Absolute base for `download_url`s; set once the server listens. */
  publicBase = 'http://127.0.0.1';
  private readonly rng: Rng;
  /** visible() per asset, until its records change (every change goes through this class). */
  private readonly sortedCache = new WeakMap<KoboAsset, KoboRecord[]>();
  /** Each record's JSON, until it changes (an edit is a new object; validate() changes one in place). */
  private readonly jsonCache = new WeakMap<KoboRecord, string>();
  private readonly repeatShare: number | undefined;
  private nextId: number;
  private clock: number;

  constructor(opts: KoboStoreOptions) {
    this.rng = new Rng(opts.seed);
    this.repeatShare = opts.repeatShare;
    this.nextId = opts.firstId;
    this.clock = Math.floor(opts.startTime.getTime() / 1000) * 1000;
  }

  addAsset(o: { uid?: string; name?: string; assetType?: KoboAsset['assetType'] } = {}): KoboAsset {
    const r = this.rng;
    const created = new Date(this.clock - 86_400_000);
    const survey = cloneSurvey(SURVEY);
    const choices = structuredClone(KOBO_CHOICES);
    const content = surveyContent(survey, choices);
    const first: KoboVersion[] = o.assetType === 'block' ? [] : [{ uid: r.uid('v'), deployedAt: created, dateModified: created, content }];
    const asset: KoboAsset = {
      uid: o.uid ?? r.uid('a'),
      name: o.name ?? `Household survey ${this.assets.size + 1}`,
      assetType: o.assetType ?? 'survey',
      owner: 'fieldsync_demo',
      dateCreated: created,
      dateModified: created,
      versions: first,
      history: [...first],
      formhubUuid: r.uuid().replaceAll('-', ''),
      content,
      survey,
      choices,
      records: new Map(),
      hidden: new Map(),
    };
    if (this.assets.has(asset.uid)) throw new Error(`asset ${asset.uid} exists`);
    this.assets.set(asset.uid, asset);
    return asset;
  }

  get(uid: string): KoboAsset {
    const a = this.assets.get(uid);
    if (!a || a.assetType !== 'survey') throw new Error(`no survey asset "${uid}"`);
    return a;
  }

  /** Redeploys the form: later records and edits carry the new `__version__`. */
  deploy(uid: string): string {
    return this.deployVersion(uid, () => undefined);
  }

  /**
   * Saves a changed form (a draft version, as kpi does on every save) and
   * deploys it: `mutate` edits a copy of the current form in place or returns
   * a new one. Later records are filled in with it and carry its `__version__`.
   */
  deployVersion(uid: string, mutate: (survey: KoboNode[], choices: KoboChoices) => KoboNode[] | void): string {
    const a = this.get(uid);
    const draft = cloneSurvey(a.survey);
    const choices = structuredClone(a.choices);
    const survey = mutate(draft, choices) ?? draft;
    const at = new Date(this.now());
    const content = surveyContent(survey, choices);
    const changed = JSON.stringify(content) !== JSON.stringify(a.content);
    if (changed) a.history.push({ uid: this.rng.uid('v'), dateModified: new Date(at.getTime() - 1000), content });
    const v: KoboVersion = { uid: this.rng.uid('v'), deployedAt: at, dateModified: at, content };
    a.versions.push(v);
    a.history.push(v);
    a.survey = survey;
    a.choices = choices;
    a.content = content;
    a.dateModified = at;
    return v.uid;
  }

  /**
   * New submissions with fresh `_id`s; `hidden` ones take their `_id` now but show up only on {@link reveal}.
   * `everyS`: seconds between their receive times (default 5-300, random) — a busy server hands out many ids a second.
   */
  create(uid: string, count: number, o: { hidden?: boolean; everyS?: number } = {}): KoboRecord[] {
    const a = this.get(uid);
    const out: KoboRecord[] = [];
    for (let i = 0; i < count; i++) {
      this.clock += (o.everyS ?? this.rng.int(5, 300)) * 1000;
      const rec = this.newRecord(a, new Date(this.now()));
      (o.hidden ? a.hidden : a.records).set(rec._id, rec);
      this.sortedCache.delete(a);
      out.push(structuredClone(rec));
    }
    return out;
  }

  /** Makes hidden records visible (all when `ids` is omitted); returns them. */
  reveal(uid: string, ids?: number[]): KoboRecord[] {
    const a = this.get(uid);
    const out: KoboRecord[] = [];
    for (const id of ids ?? [...a.hidden.keys()]) {
      const rec = a.hidden.get(id);
      if (!rec) throw new Error(`no hidden record ${id} in ${uid}`);
      a.hidden.delete(id);
      a.records.set(id, rec);
      this.sortedCache.delete(a);
      out.push(structuredClone(rec));
    }
    return out;
  }

  /**
   * Edits a record as Kobo does: same `_id`, `_submission_time`, `meta/rootUuid`,
   * `_submitted_by`; new `meta/instanceID` and `_uuid`; the old instanceID in
   * `meta/deprecatedID`; the current `__version__`. No timestamp changes.
   */
  edit(uid: string, id: number, answers?: KoboAnswers): KoboRecord {
    const a = this.get(uid);
    const cur = a.records.get(id);
    if (!cur) throw new Error(`no record ${id} in ${uid}`);
    const next: Record<string, unknown> = Object.fromEntries(Object.entries(cur).filter(([k]) => isAnswer(k)));
    for (const [k, v] of Object.entries(answers ?? defaultEdit(this.rng, cur))) {
      if (v === null) delete next[k];
      else next[k] = v;
    }
    const instance = this.rng.uuid();
    const rec = this.compose(a, {
      id,
      answers: next,
      instanceId: `uuid:${instance}`,
      rootUuid: cur['meta/rootUuid'] as string,
      deprecatedId: cur['meta/instanceID'] as string,
      submittedAt: cur._submission_time as string,
      submittedBy: cur._submitted_by as string | null,
      attachments: cur._attachments as unknown[],
      validation: cur._validation_status as Record<string, unknown>,
    });
    a.records.set(id, rec);
    this.sortedCache.delete(a);
    return structuredClone(rec);
  }

  /**
   * Sets (or with null clears) a record's validation status, as a reviewer does
   * in the Kobo UI: `_validation_status` changes, nothing else — not the
   * instanceID, not a timestamp.
   */
  validate(uid: string, id: number, status: 'validation_status_approved' | 'validation_status_not_approved' | 'validation_status_on_hold' | null): KoboRecord {
    const cur = this.get(uid).records.get(id);
    if (!cur) throw new Error(`no record ${id} in ${uid}`);
    const labels = { validation_status_approved: 'Approved', validation_status_not_approved: 'Not approved', validation_status_on_hold: 'On hold' };
    this.jsonCache.delete(cur);
    cur._validation_status = status ? { timestamp: Math.floor(Date.now() / 1000), uid: status, by_whom: 'supervisor', label: labels[status] } : {};
    return structuredClone(cur);
  }

  /** Hard delete: the record vanishes, no tombstone. */
  delete(uid: string, id: number): boolean {
    const a = this.get(uid);
    this.sortedCache.delete(a);
    return a.records.delete(id) || a.hidden.delete(id);
  }

  /** Visible records, `_id` ascending (live objects: callers must not mutate). */
  /** A record as JSON text, serialized once: pages of a large form cost the simulator little CPU, as a remote server costs us none. */
  json(rec: KoboRecord): string {
    let text = this.jsonCache.get(rec);
    if (text === undefined) this.jsonCache.set(rec, (text = JSON.stringify(rec)));
    return text;
  }

  visible(uid: string): KoboRecord[] {
    const a = this.get(uid);
    let sorted = this.sortedCache.get(a);
    if (!sorted) this.sortedCache.set(a, (sorted = [...a.records.values()].sort((x, y) => x._id - y._id)));
    return sorted;
  }

  /** Server receive time: the simulated clock, never ahead of the real one. */
  private now(): number {
    return Math.min(this.clock, Math.floor(Date.now() / 1000) * 1000);
  }

  private newRecord(a: KoboAsset, received: Date): KoboRecord {
    const r = this.rng;
    const id = this.nextId++;
    const started = new Date(received.getTime() - r.int(600, 7200) * 1000);
    const answers = fillSurvey(r, { started, seq: id, ...(this.repeatShare !== undefined ? { repeatShare: this.repeatShare } : {}) }, a.survey);
    const instance = r.uuid();
    const attachments = mediaPaths(a.survey).filter((p) => typeof answers[p] === 'string').map((p, i) => {
      const file = answers[p] as string;
      const attUid = r.uid('att').slice(0, 22);
      return {
        download_url: `${this.publicBase}/api/v2/assets/${a.uid}/data/${id}/attachments/${attUid}/`,
        mimetype: 'image/jpeg',
        filename: `${a.owner}/attachments/${a.formhubUuid}/${instance}/${file}`,
        instance: id,
        id: id * 10 + i,
        uid: attUid,
        question_xpath: p,
        is_deleted: false,
        media_file_basename: file,
      };
    });
    const approved = r.chance(0.25);
    return this.compose(a, {
      id,
      answers,
      instanceId: `uuid:${instance}`,
      rootUuid: `uuid:${instance}`,
      submittedAt: submissionTime(received),
      submittedBy: r.pick(['enumerator_01', 'enumerator_02', 'enumerator_03', null]),
      attachments,
      validation: approved
        ? { timestamp: Math.floor(received.getTime() / 1000) + 3600, uid: 'validation_status_approved', by_whom: 'supervisor', label: 'Approved' }
        : {},
    });
  }

  /** One record in the key order kpi returns. */
  private compose(
    a: KoboAsset,
    f: {
      id: number;
      answers: Record<string, unknown>;
      instanceId: string;
      rootUuid: string;
      deprecatedId?: string;
      submittedAt: string;
      submittedBy: string | null;
      attachments: unknown[];
      validation: Record<string, unknown>;
    },
  ): KoboRecord {
    const geo = typeof f.answers.location === 'string' ? f.answers.location.split(' ').slice(0, 2).map(Number) : [null, null];
    return {
      _id: f.id,
      'formhub/uuid': a.formhubUuid,
      ...f.answers,
      __version__: a.versions.at(-1)!.uid,
      'meta/instanceID': f.instanceId,
      ...(f.deprecatedId ? { 'meta/deprecatedID': f.deprecatedId } : {}),
      'meta/rootUuid': f.rootUuid,
      _xform_id_string: a.uid,
      _uuid: f.instanceId.replace(/^uuid:/, ''),
      _attachments: f.attachments,
      _status: 'submitted_via_web',
      _geolocation: geo,
      _submission_time: f.submittedAt,
      _tags: [],
      _notes: [],
      _validation_status: f.validation,
      _submitted_by: f.submittedBy,
    };
  }
}
