/**
 * An in-process ODK Central (v2026.2.2) for tests and the quick start: sessions,
 * Basic auth rules, the forms list, and the OData Submissions feed with Central's
 * order, keyset paging, filters, soft deletes and error codes.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import {
  HOUSEHOLD_FORM, generateAnswers, mulberry32, toODataRow, uuidFrom, withMeta,
  type OdkAnswers, type OdkField, type OdkFormSpec, type OdkReviewState, type Rng, type SimSubmission,
} from './odk.data.ts';
import {
  OdkProblem, decodeSkiptoken, edmx, encodeSkiptoken, evaluate, mentionsDeletedAt, orderBy, parseFilter, parseSelect, problems, serviceDocument,
  type Filter,
} from './odk.odata.ts';
import { formFields, xform } from './odk.xform.ts';
import { FileFaults, attachmentBytes, md5Hex, type BlobHost } from '../attachments.ts';

export interface OdkSimulatorOptions {
  /** Default 0: any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /**
   * Central's configured domain: `@odata.nextLink` and `@odata.context` are built
   * from it, not from the address the client called. Default: the simulator's own URL.
   */
  domain?: string;
  /** Pretend to sit behind TLS (as behind Central's nginx): Basic auth is then accepted. Default false. */
  secure?: boolean;
  /** The one web user. Defaults: admin@example.org / odk-sim-password. */
  email?: string;
  password?: string;
  /** Session lifetime. Default 24 h, like Central. */
  sessionTtlMs?: number;
  /** Seed of all generated ids and answers. Default 1. */
  seed?: number;
  /** Default 1. */
  projectId?: number;
  /** Forms published at start. Default: [HOUSEHOLD_FORM]. */
  forms?: OdkFormSpec[];
  /** Seeded submissions for each start form. Default 0. */
  submissions?: number;
  /** Clock (ms) for every timestamp the simulator sets. Default Date.now. */
  now?: () => number;
  /**
   * Keep attachment blobs "in S3": file downloads answer 307 to a presigned URL on
   * this host (as Central does with S3 blob storage) instead of the bytes.
   */
  blobs?: BlobHost;
}

/** A failure served instead of the next matching request. */
export interface OdkFault {
  status: number;
  /** Sent as the Retry-After header, in seconds. */
  retryAfterS?: number;
  /** Only requests whose path contains this (or matches it) take the fault; default any. */
  path?: string | RegExp;
  code?: number;
  message?: string;
}

export interface OdkRequestLogEntry {
  method: string;
  /** Path without the query. */
  path: string;
  /** Decoded query parameters. */
  query: Record<string, string>;
  status: number;
  auth: 'bearer' | 'basic' | 'none';
  at: Date;
}

export type OdkTime = Date | string | number;

export interface CreateSubmissionOptions {
  /** Answers shaped like the OData row (groups as objects, repeats as arrays); default: generated from the seed. */
  answers?: OdkAnswers;
  /** submissionDate; default the clock. Several submissions may share one millisecond. */
  at?: OdkTime;
  /** The instanceID (becomes `__id`); default generated. */
  instanceId?: string;
  submitterId?: number;
  submitterName?: string;
  deviceId?: string | null;
  projectId?: number;
}

export interface MutateOptions {
  at?: OdkTime;
  projectId?: number;
}

/** One published version of a form (Central's form_defs). */
interface SimFormVersion {
  version: string;
  fields: OdkField[];
  xml: string;
  publishedAt: number;
}

interface SimForm {
  projectId: number;
  xmlFormId: string;
  name: string;
  version: string;
  fields: OdkField[];
  /** The current definition's XForm. */
  xml: string;
  /** Published versions, oldest first. */
  versions: SimFormVersion[];
  /** The spec the current definition came from (languages, choice style). */
  spec?: OdkFormSpec;
  state: 'open' | 'closing' | 'closed';
  createdAt: number;
  publishedAt: number | null;
  subs: SimSubmission[];
  byId: Map<string, SimSubmission>;
}

const SUPPORTED_PARAMS = ['$format', '$count', '$skip', '$top', '$filter', '$wkt', '$expand', '$select', '$skiptoken', '$orderby', '$search'];
const SUBMITTERS = [
  { id: 5, name: 'Amina Diallo' },
  { id: 7, name: 'Kwame Mensah' },
  { id: 9, name: 'Lucía Fernández' },
];

const ms = (t: OdkTime) => (t instanceof Date ? t.getTime() : typeof t === 'number' ? t : Date.parse(t));
const one = (v: unknown): string | undefined => (Array.isArray(v) ? one(v[v.length - 1]) : typeof v === 'string' ? v : undefined);
const isTrue = (v: unknown) => one(v)?.toLowerCase() === 'true';

export class OdkSimulator {
  /** Base URL the simulator listens on, e.g. http://127.0.0.1:41234 (no trailing slash). */
  url = '';
  /** The configured domain used in links. */
  domain = '';
  readonly projectId: number;
  readonly email: string;
  readonly password: string;
  /** Every request served, oldest first. */
  readonly requests: OdkRequestLogEntry[] = [];

  private server?: Server;
  private readonly forms = new Map<string, SimForm>();
  private readonly sessions = new Map<string, { createdAt: number; expiresAt: number }>();
  private readonly faults: OdkFault[] = [];
  private readonly rnd: Rng;
  private readonly now: () => number;
  private seq = 0;
  private generated = 0;
  private readonly fileFaults = new FileFaults();
  private readonly pendingUploads = new Set<string>();

  private constructor(private readonly opts: OdkSimulatorOptions) {
    this.projectId = opts.projectId ?? 1;
    this.email = opts.email ?? 'admin@example.org';
    this.password = opts.password ?? 'odk-sim-password';
    this.rnd = mulberry32(opts.seed ?? 1);
    this.now = opts.now ?? Date.now;
  }

  static async start(opts: OdkSimulatorOptions = {}): Promise<OdkSimulator> {
    const sim = new OdkSimulator(opts);
    for (const spec of opts.forms ?? [HOUSEHOLD_FORM]) {
      sim.publishForm(spec);
      if (opts.submissions) sim.seedSubmissions(spec.xmlFormId, opts.submissions);
    }
    const server = sim.app().listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    sim.server = server;
    sim.url = `http://${host}:${addr.port}`;
    sim.domain = (opts.domain ?? sim.url).replace(/\/+$/, '');
    return sim;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  }

  // -------------------------------------------------------------------------
  // Control API (what a Central user or Collect would do)

  /**
   * Publishes a form (or a new version of one: existing submissions keep their
   * formVersion). `draft: true` creates a form that is listed with publishedAt null
   * and has no OData feed yet, like a never-published Central form.
   */
  publishForm(spec: OdkFormSpec, o: { projectId?: number; draft?: boolean; at?: OdkTime } = {}): void {
    const projectId = o.projectId ?? this.projectId;
    const key = `${projectId}/${spec.xmlFormId}`;
    const at = o.at === undefined ? this.now() : ms(o.at);
    const existing = this.forms.get(key);
    const form: SimForm = existing ?? {
      projectId, xmlFormId: spec.xmlFormId, name: spec.name ?? spec.xmlFormId, version: '', fields: [], xml: '', versions: [],
      state: 'open', createdAt: at, publishedAt: null, subs: [], byId: new Map(),
    };
    form.name = spec.name ?? form.name;
    form.version = spec.version ?? (existing ? `${existing.version}.1` : '1');
    if (!o.draft && form.versions.some((v) => v.version === form.version)) throw new Error(`form ${spec.xmlFormId} already has a version "${form.version}"`);
    form.fields = withMeta(spec.fields);
    form.xml = xform({ ...spec, name: form.name, version: form.version }, form.fields);
    form.spec = { ...spec, name: form.name, version: form.version, fields: form.fields };
    if (!o.draft) {
      form.publishedAt = at;
      form.versions.push({ version: form.version, fields: form.fields, xml: form.xml, publishedAt: at });
    }
    this.forms.set(key, form);
  }

  /**
   * Publishes a new version of a published form: `mutate` edits a copy of the
   * current fields in place (add a question, change a type) or returns new ones.
   * Later submissions carry the new `__system.formVersion`. Returns the version.
   */
  publishVersion(xmlFormId: string, mutate: (fields: OdkField[]) => OdkField[] | void, o: { version?: string; projectId?: number; at?: OdkTime } = {}): string {
    const form = this.form(xmlFormId, o.projectId, true);
    const copy = structuredClone(form.fields);
    const fields = mutate(copy) ?? copy;
    const version = o.version ?? `${form.version}.1`;
    this.publishForm({ ...form.spec, xmlFormId, fields, version }, { projectId: form.projectId, at: o.at });
    return version;
  }

  /** Adds `count` generated submissions, 1 ms apart (by default) ending at `endAt` (default the clock). */
  seedSubmissions(xmlFormId: string, count: number, o: { endAt?: OdkTime; stepMs?: number; projectId?: number } = {}): string[] {
    const end = o.endAt === undefined ? this.now() : ms(o.endAt);
    const step = o.stepMs ?? 1;
    return Array.from({ length: count }, (_, i) => this.createSubmission(xmlFormId, { at: end - (count - 1 - i) * step, projectId: o.projectId }));
  }

  /** A new submission; returns its `__id`. */
  createSubmission(xmlFormId: string, o: CreateSubmissionOptions = {}): string {
    const form = this.form(xmlFormId, o.projectId, true);
    const index = this.generated++;
    const submitter = SUBMITTERS[index % SUBMITTERS.length]!;
    const id = o.instanceId ?? uuidFrom(this.rnd);
    if (form.byId.has(id)) throw new Error(`submission ${id} already exists`);
    const s: SimSubmission = {
      seq: ++this.seq,
      id,
      instanceId: id,
      answers: structuredClone(o.answers ?? generateAnswers(form.fields, this.rnd, index)),
      createdAt: o.at === undefined ? this.now() : ms(o.at),
      updatedAt: null,
      deletedAt: null,
      reviewState: null,
      edits: 0,
      submitterId: o.submitterId ?? submitter.id,
      submitterName: o.submitterName ?? submitter.name,
      deviceId: o.deviceId === undefined ? `collect:${uuidFrom(this.rnd).slice(5, 21).replace(/-/g, '')}` : o.deviceId,
      formVersion: form.version,
    };
    form.subs.push(s);
    form.byId.set(id, s);
    return id;
  }

  /** An edit: new instanceID, reviewState `edited`, edits + 1, updatedAt set; submissionDate unchanged. Returns the new instanceID. */
  editSubmission(xmlFormId: string, id: string, answers: OdkAnswers = {}, o: MutateOptions & { instanceId?: string } = {}): string {
    const s = this.live(xmlFormId, id, o.projectId);
    s.answers = { ...s.answers, ...structuredClone(answers) };
    s.instanceId = o.instanceId ?? uuidFrom(this.rnd);
    s.reviewState = 'edited';
    s.edits += 1;
    s.updatedAt = o.at === undefined ? this.now() : ms(o.at);
    return s.instanceId;
  }

  /** A review-state change: sets reviewState and updatedAt, nothing else. */
  setReviewState(xmlFormId: string, id: string, state: OdkReviewState, o: MutateOptions = {}): void {
    const s = this.live(xmlFormId, id, o.projectId);
    s.reviewState = state;
    s.updatedAt = o.at === undefined ? this.now() : ms(o.at);
  }

  /** Soft delete: leaves the default feed and the count; updatedAt untouched. */
  deleteSubmission(xmlFormId: string, id: string, o: MutateOptions = {}): void {
    const s = this.live(xmlFormId, id, o.projectId);
    s.deletedAt = o.at === undefined ? this.now() : ms(o.at);
  }

  /** Restore: back in the feed, deletedAt null, updatedAt untouched (null again if never edited). */
  restoreSubmission(xmlFormId: string, id: string, o: { projectId?: number } = {}): void {
    const s = this.sub(xmlFormId, id, o.projectId);
    if (s.deletedAt === null) throw new Error(`submission ${id} is not deleted`);
    s.deletedAt = null;
  }

  /** Purge (Central does this 30 days after a delete): the row is gone from every feed. */
  purgeSubmission(xmlFormId: string, id: string, o: { projectId?: number } = {}): void {
    const form = this.form(xmlFormId, o.projectId);
    const s = this.sub(xmlFormId, id, o.projectId);
    form.subs.splice(form.subs.indexOf(s), 1);
    form.byId.delete(id);
  }

  /** The row as the feed would serve it with `$expand=*` (deleted ones too), or undefined. */
  row(xmlFormId: string, id: string, o: { projectId?: number; expand?: boolean } = {}): OdkAnswers | undefined {
    const form = this.form(xmlFormId, o.projectId);
    const s = form.byId.get(id);
    return s && toODataRow(form.fields, s, { expand: o.expand ?? true });
  }

  /** `__id`s newest first, as the default feed orders them. */
  submissionIds(xmlFormId: string, o: { projectId?: number; includeDeleted?: boolean } = {}): string[] {
    return this.ordered(this.form(xmlFormId, o.projectId).subs.filter((s) => o.includeDeleted || s.deletedAt === null)).map((s) => s.id);
  }

  /** Sessions that are open now (logged in, not expired, not logged out). */
  openSessions(): number {
    const now = this.now();
    return [...this.sessions.values()].filter((s) => s.expiresAt > now).length;
  }

  /** Every session token stops working now (next request → 401.2). */
  expireSessions(): void {
    const now = this.now();
    for (const s of this.sessions.values()) s.expiresAt = Math.min(s.expiresAt, now - 1);
  }

  /** Serves these failures, in order, instead of the next matching requests. */
  failNext(...faults: OdkFault[]): void {
    this.faults.push(...faults);
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  /** The next `times` downloads of the attachment with this file name answer `status` (default 500). */
  failFile(name: string, times: number, status = 500): void {
    this.fileFaults.fail(name, times, status);
  }

  /** Collect has not uploaded this file yet: listed with `exists: false`, its download 404s (until uploaded). */
  holdUpload(name: string, held = true): void {
    if (held) this.pendingUploads.add(name);
    else this.pendingUploads.delete(name);
  }

  // -------------------------------------------------------------------------
  // State helpers

  private form(xmlFormId: string, projectId = this.projectId, mustBePublished = false): SimForm {
    const f = this.forms.get(`${projectId}/${xmlFormId}`);
    if (!f || (mustBePublished && f.publishedAt === null)) throw new Error(`no published form ${xmlFormId} in project ${projectId}`);
    return f;
  }

  private sub(xmlFormId: string, id: string, projectId?: number): SimSubmission {
    const s = this.form(xmlFormId, projectId).byId.get(id);
    if (!s) throw new Error(`no submission ${id} in ${xmlFormId}`);
    return s;
  }

  private live(xmlFormId: string, id: string, projectId?: number): SimSubmission {
    const s = this.sub(xmlFormId, id, projectId);
    if (s.deletedAt !== null) throw new Error(`submission ${id} is deleted`);
    return s;
  }

  /** Central's default order: `createdAt DESC, id DESC` — newest first, ties by serial id. */
  private ordered(subs: SimSubmission[]): SimSubmission[] {
    return [...subs].sort((a, b) => b.createdAt - a.createdAt || b.seq - a.seq);
  }

  // -------------------------------------------------------------------------
  // HTTP

  private app() {
    const app = express();
    app.disable('x-powered-by');
    app.set('query parser', 'simple');

    app.use((req, res, next) => {
      const auth = req.headers.authorization?.startsWith('Bearer ') ? 'bearer' : req.headers.authorization?.startsWith('Basic ') ? 'basic' : 'none';
      res.on('finish', () => {
        const query = Object.fromEntries(Object.entries(req.query).map(([k, v]) => [k, one(v) ?? '']));
        this.requests.push({ method: req.method, path: req.path, query, status: res.statusCode, auth, at: new Date() });
      });
      const i = this.faults.findIndex((f) => f.path === undefined || (typeof f.path === 'string' ? req.path.includes(f.path) : f.path.test(req.path)));
      if (i < 0) return next();
      const [f] = this.faults.splice(i, 1);
      if (f!.retryAfterS !== undefined) res.setHeader('Retry-After', String(f!.retryAfterS));
      res.status(f!.status).json({ message: f!.message ?? `Simulated failure ${f!.status}`, code: f!.code ?? f!.status });
    });

    app.post('/v1/sessions', express.json(), (req, res) => {
      const { email, password } = (req.body ?? {}) as { email?: unknown; password?: unknown };
      if (typeof email !== 'string' || !email || typeof password !== 'string' || !password) throw problems.missingParameters({ email, password });
      if (email !== this.email || password !== this.password) throw problems.authenticationFailed();
      const createdAt = this.now();
      const session = { createdAt, expiresAt: createdAt + (this.opts.sessionTtlMs ?? 24 * 3600_000) };
      const token = randomBytes(48).toString('base64').replace(/[+/=]/g, '').slice(0, 64);
      this.sessions.set(token, session);
      res.json({ createdAt: new Date(session.createdAt).toISOString(), expiresAt: new Date(session.expiresAt).toISOString(), token, csrf: randomBytes(24).toString('hex') });
    });

    app.use('/v1', (req, _res, next) => {
      this.authenticate(req);
      next();
    });

    // Central (since v2023.1): the session whose token authenticates this request ends; `{ success: true }`.
    // Basic auth has no session to end: 404.1.
    app.delete('/v1/sessions/current', (req, res) => {
      const header = req.headers.authorization ?? '';
      if (!header.startsWith('Bearer ')) throw problems.notFound();
      this.sessions.delete(header.slice(7));
      res.json({ success: true });
    });

    app.get('/v1/projects/:projectId/forms', (req, res) => {
      const projectId = Number(req.params.projectId);
      const list = [...this.forms.values()].filter((f) => f.projectId === projectId);
      if (!list.length && projectId !== this.projectId) throw problems.notFound();
      res.json(list.map((f) => this.formJson(f)));
    });

    // `:xmlFormId.svc` by hand: xmlFormIds may contain dots.
    app.get(/^\/v1\/projects\/(\d+)\/forms\/([^/]+)\.svc(\/.*)?$/, (req, res) => {
      const params = req.params as unknown as Record<string, string | undefined>;
      const form = this.forms.get(`${params[0]}/${decodeURIComponent(params[1]!)}`);
      if (!form || form.publishedAt === null) throw problems.notFound();
      const rest = params[2] ?? '';
      const serviceRoot = req.path.slice(0, req.path.length - rest.length);
      res.setHeader('OData-Version', '4.0');
      if (rest === '' || rest === '/') {
        res.type('application/json; odata.metadata=minimal').send(JSON.stringify(serviceDocument(form.fields, `${this.domain}${serviceRoot}/$metadata`)));
      } else if (rest === '/$metadata') {
        res.type('application/xml').send(edmx(form.xmlFormId, form.fields));
      } else if (rest === '/Submissions') {
        res.json(this.feed(form, req, serviceRoot));
      } else {
        // Single records and the repeat entity sets are not simulated.
        throw problems.notFound();
      }
    });

    // The form's definition: XForm (current or one version), `/fields`, the version list.
    // By hand: xmlFormIds may contain dots; a blank version is addressed as `___`.
    const published = (projectId: string, xmlFormId: string): SimForm => {
      const form = this.forms.get(`${projectId}/${decodeURIComponent(xmlFormId)}`);
      if (!form || form.publishedAt === null) throw problems.notFound();
      return form;
    };
    const versionOf = (form: SimForm, v: string): SimFormVersion => {
      const want = decodeURIComponent(v) === '___' ? '' : decodeURIComponent(v);
      const found = form.versions.find((x) => x.version === want);
      if (!found) throw problems.notFound();
      return found;
    };
    const params = (req: Request) => req.params as unknown as Record<string, string>;
    app.get(/^\/v1\/projects\/(\d+)\/forms\/([^/]+)\/versions\/([^/]+)\.xml$/, (req, res) => {
      const p = params(req);
      res.type('application/xml').send(versionOf(published(p[0]!, p[1]!), p[2]!).xml);
    });
    app.get(/^\/v1\/projects\/(\d+)\/forms\/([^/]+)\/versions\/([^/]+)\/fields$/, (req, res) => {
      const p = params(req);
      res.json(formFields(versionOf(published(p[0]!, p[1]!), p[2]!).fields, isTrue(req.query.odata)));
    });
    app.get(/^\/v1\/projects\/(\d+)\/forms\/([^/]+)\/versions$/, (req, res) => {
      const p = params(req);
      const form = published(p[0]!, p[1]!);
      res.json([...form.versions].reverse().map((v) => ({ ...this.formJson(form), version: v.version, publishedAt: new Date(v.publishedAt).toISOString() })));
    });
    app.get(/^\/v1\/projects\/(\d+)\/forms\/([^/]+)\/fields$/, (req, res) => {
      const p = params(req);
      res.json(formFields(published(p[0]!, p[1]!).fields, isTrue(req.query.odata)));
    });
    app.get(/^\/v1\/projects\/(\d+)\/forms\/([^/]+)\.xml$/, (req, res) => {
      const p = params(req);
      res.type('application/xml').send(published(p[0]!, p[1]!).xml);
    });
    // Attachments: the list `[{name, exists}]`, and each file with `ETag: "<md5>"` (304 on If-None-Match),
    // or a 307 to a presigned URL when blobs live "in S3" (`blobs`).
    const submissionOf = (p: Record<string, string>): SimSubmission => {
      const s = published(p[0]!, p[1]!).byId.get(decodeURIComponent(p[2]!));
      if (!s || s.deletedAt !== null) throw problems.notFound();
      return s;
    };
    app.get(/^\/v1\/projects\/(\d+)\/forms\/([^/]+)\/submissions\/([^/]+)\/attachments$/, (req, res) => {
      const p = params(req);
      const s = submissionOf(p);
      res.json(imageFiles(published(p[0]!, p[1]!).fields, s.answers).map((name) => ({ name, exists: !this.pendingUploads.has(name) })));
    });
    app.get(/^\/v1\/projects\/(\d+)\/forms\/([^/]+)\/submissions\/([^/]+)\/attachments\/([^/]+)$/, (req, res) => {
      const p = params(req);
      const s = submissionOf(p);
      const name = decodeURIComponent(p[3]!);
      if (!imageFiles(published(p[0]!, p[1]!).fields, s.answers).includes(name) || this.pendingUploads.has(name)) throw problems.notFound();
      const fault = this.fileFaults.take(name);
      if (fault !== undefined) return void res.status(fault).json({ message: `Simulated failure ${fault}`, code: fault });
      const bytes = attachmentBytes(name);
      const etag = `"${md5Hex(bytes)}"`;
      if (req.headers['if-none-match'] === etag) return void res.status(304).setHeader('ETag', etag).end();
      if (this.opts.blobs) return void res.redirect(307, this.opts.blobs.presign(bytes, 'image/jpeg'));
      res.status(200).set({ 'content-type': 'image/jpeg', 'content-length': String(bytes.length), etag }).end(bytes);
    });
    app.get(/^\/v1\/projects\/(\d+)\/forms\/([^/]+)$/, (req, res) => {
      const p = params(req);
      const form = this.forms.get(`${p[0]}/${decodeURIComponent(p[1]!)}`);
      if (!form) throw problems.notFound();
      res.json(this.formJson(form));
    });

    app.use((_req: Request, _res: Response, next: NextFunction) => next(problems.notFound()));
    app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
      if (err instanceof OdkProblem) return void res.status(err.status).json({ message: err.message, code: err.code, ...(err.details ? { details: err.details } : {}) });
      const status = (err as { status?: number }).status ?? 500;
      res.status(status).json({ message: status === 400 ? 'Could not parse the request body.' : 'Internal Server Error', code: status === 400 ? 400.1 : 500.1 });
    });
    return app;
  }

  /** Central's rules (lib/http/preprocessors.js): Bearer session, or Basic only over HTTPS. */
  private authenticate(req: Request): void {
    const header = req.headers.authorization;
    if (header?.startsWith('Bearer ')) {
      const s = this.sessions.get(header.slice(7));
      if (!s || s.expiresAt <= this.now()) throw problems.authenticationFailed();
    } else if (header?.startsWith('Basic ')) {
      // Central trusts nginx's X-Forwarded-Proto to know it is behind TLS.
      if (!this.opts.secure && req.headers['x-forwarded-proto'] !== 'https') throw problems.httpsOnly();
      const m = /^([^:]+):(.+)$/.exec(Buffer.from(header.slice(6), 'base64').toString('utf8'));
      if (!m || m[1] !== this.email || m[2] !== this.password) throw problems.authenticationFailed();
    } else {
      throw problems.authenticationFailed();
    }
  }

  private formJson(f: SimForm) {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      projectId: f.projectId, xmlFormId: f.xmlFormId, state: f.state, enketoId: null, enketoOnceId: null,
      createdAt: iso(f.createdAt), updatedAt: null, keyId: null, version: f.version,
      hash: null, sha: null, sha256: null, draftToken: null, publishedAt: iso(f.publishedAt), name: f.name, webformsEnabled: false,
    };
  }

  private feed(form: SimForm, req: Request, serviceRoot: string): Record<string, unknown> {
    const q = req.query as Record<string, unknown>;
    for (const key of Object.keys(q)) if (!SUPPORTED_PARAMS.includes(key)) throw problems.notImplemented(key);
    const expand = one(q.$expand);
    const select = one(q.$select);
    if (expand && expand !== '*') throw problems.unsupportedExpand(expand);
    if (expand && select) throw problems.selectWithExpand();
    const skiptoken = one(q.$skiptoken);
    const cursor = skiptoken ? decodeSkiptoken(skiptoken) : null;
    const order = one(q.$orderby);
    if (order && cursor) throw problems.notImplemented('using $orderby and $skiptoken together');
    const filterText = one(q.$filter);
    const filter: Filter | null = filterText ? parseFilter(filterText) : null;
    const selection = select && select !== '*' ? parseSelect(select, form.fields) : undefined;

    const now = this.now();
    const withDeleted = mentionsDeletedAt(filter);
    const matching = form.subs.filter((s) => (withDeleted || s.deletedAt === null) && (!filter || evaluate(filter, s, now) === true));
    const sorted = order ? [...matching].sort(orderBy(order)) : this.ordered(matching);

    // Keyset: rows after the skiptoken's submission in (createdAt, id) DESC order. Central finds
    // that submission even when it was deleted since; an unknown instanceId matches nothing.
    let rest = sorted;
    if (cursor) {
      const c = form.byId.get(cursor.instanceId);
      rest = c ? sorted.filter((s) => s.createdAt < c.createdAt || (s.createdAt === c.createdAt && s.seq < c.seq)) : [];
    }
    const offset = cursor ? 0 : Math.max(0, Number.parseInt(one(q.$skip) ?? '', 10) || 0);
    const topN = Number.parseInt(one(q.$top) ?? '', 10);
    const top = Number.isNaN(topN) ? Infinity : Math.max(0, topN);
    const page = rest.slice(offset, offset + top);
    const remaining = rest.length - offset - page.length;

    const body: Record<string, unknown> = {
      value: page.map((s) => toODataRow(form.fields, s, { expand: expand === '*', select: selection, wkt: isTrue(q.$wkt) })),
      '@odata.context': `${this.domain}${serviceRoot}/$metadata#Submissions`,
    };
    if (remaining > 0 && page.length > 0) {
      // lib/util/http.js urlWithQueryParams: the request's own query, $skip dropped, $skiptoken set.
      const next = new URL(req.originalUrl, 'http://x');
      next.searchParams.delete('$skip');
      next.searchParams.set('$skiptoken', encodeSkiptoken(page[page.length - 1]!.id));
      body['@odata.nextLink'] = `${this.domain}${next.pathname}${next.search}`;
    }
    if (isTrue(q.$count)) body['@odata.count'] = matching.length;
    return body;
  }
}

/** File names of answered image questions, repeats included, in document order. */
function imageFiles(fields: OdkField[], answers: OdkAnswers): string[] {
  const out: string[] = [];
  for (const f of fields) {
    const v = (answers as Record<string, unknown>)[f.name];
    if (f.type === 'image' && typeof v === 'string' && v) out.push(v);
    else if (f.type === 'group' && v && typeof v === 'object') out.push(...imageFiles(f.children ?? [], v as OdkAnswers));
    else if (f.type === 'repeat' && Array.isArray(v)) for (const e of v) out.push(...imageFiles(f.children ?? [], e as OdkAnswers));
  }
  return [...new Set(out)];
}

export const startOdkSimulator = (opts?: OdkSimulatorOptions): Promise<OdkSimulator> => OdkSimulator.start(opts);
