/**
 * The OData query options Central understands, with its error codes
 * (lib/util/problem.js): `$filter` on `__id` and `__system/*` only, `$select`,
 * `$skiptoken`, and the service and metadata documents.
 */
import { SYSTEM_PROPS, walkFields, type OdkField, type Selection, type SimSubmission } from './odk.data.ts';

/** Central's error: a dotted code whose integer part is the HTTP status. */
export class OdkProblem extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
  get status(): number {
    return Math.floor(this.code);
  }
}

export const problems = {
  notFound: () => new OdkProblem(404.1, 'Could not find the resource you were looking for.'),
  authenticationFailed: () => new OdkProblem(401.2, 'Could not authenticate with the provided credentials.'),
  httpsOnly: () => new OdkProblem(401.3, 'This authentication method is only available over HTTPS'),
  missingParameters: (got: Record<string, unknown>) =>
    new OdkProblem(400.3, `Required parameters missing. Expected (email, password), got (${Object.entries(got).map(([k, v]) => `${k}: ${v === undefined ? 'undefined' : JSON.stringify(v)}`).join(', ')}).`),
  unparseable: (reason: string) => new OdkProblem(400.18, `The OData filter expression you provided could not be parsed: ${reason}`),
  propertyNotFound: (property: string) => new OdkProblem(400.23, `Could not find a property named '${property}'`),
  unsupportedSelectField: (property: string) => new OdkProblem(400.24, `The given OData select property '${property}' uses features not supported by this server.`),
  invalidSkiptoken: () => new OdkProblem(400.35, 'Invalid $skiptoken'),
  notImplemented: (feature: string) => new OdkProblem(501.1, `The requested feature ${feature} is not supported by this server.`),
  unsupportedExpression: (type: string, at: number, text: string) =>
    new OdkProblem(501.4, `The given OData filter expression uses features not supported by this server: ${type} at ${at} ("${text}")`),
  unsupportedField: (text: string, at?: number) =>
    new OdkProblem(501.5, `The given OData filter expression references fields not supported by this server: ${text}${at !== undefined ? ` at ${at}` : ''}`),
  unsupportedExpand: (text: string) =>
    new OdkProblem(501.6, `The given OData expand expression is not supported by this server: "${text}". Currently, only "$expand=*" is supported.`),
  selectWithExpand: () => new OdkProblem(501.11, "This server doesn't support $select query parameter with $expand."),
};

// ---------------------------------------------------------------------------
// $filter

/** The only filterable paths (central-backend lib/data/submission.js `filterableFields`). */
const COLUMNS: Record<string, { kind: 'string' | 'time' | 'number'; get: (s: SimSubmission) => string | number | null }> = {
  __id: { kind: 'string', get: (s) => s.id },
  '__system/submissionDate': { kind: 'time', get: (s) => s.createdAt },
  '__system/updatedAt': { kind: 'time', get: (s) => s.updatedAt },
  '__system/submitterId': { kind: 'number', get: (s) => s.submitterId },
  '__system/reviewState': { kind: 'string', get: (s) => s.reviewState },
  '__system/deletedAt': { kind: 'time', get: (s) => s.deletedAt },
};

const columnOf = (path: string) => COLUMNS[path.replace(/^\$root\/Submissions\//, '')];

type Node =
  | { t: 'or' | 'and'; l: Node; r: Node }
  | { t: 'not'; e: Node }
  | { t: 'cmp'; op: 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le'; l: Node; r: Node }
  | { t: 'member'; path: string; at: number }
  | { t: 'lit'; v: string | number | boolean | null }
  | { t: 'call'; fn: string; args: Node[]; at: number; raw: string };

export type Filter = Node;

const TOKEN = new RegExp(
  [
    String.raw`(?<ws>\s+)`,
    String.raw`(?<punct>[(),])`,
    String.raw`(?<str>'(?:[^']|'')*')`,
    String.raw`(?<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))`,
    String.raw`(?<date>\d{4}-\d{2}-\d{2})`,
    String.raw`(?<num>-?\d+(?:\.\d+)?)`,
    String.raw`(?<word>[A-Za-z_$][\w$]*(?:\/[A-Za-z_$][\w$]*)*)`,
  ].join('|'),
  'y',
);

interface Tok {
  kind: 'punct' | 'str' | 'datetime' | 'date' | 'num' | 'word';
  text: string;
  at: number;
}

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < src.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(src);
    if (!m?.groups) throw problems.unparseable(`unexpected character at ${at}: "${src.slice(at, at + 10)}"`);
    const [kind, text] = Object.entries(m.groups).find(([, v]) => v !== undefined)! as [Tok['kind'] | 'ws', string];
    if (kind !== 'ws') out.push({ kind, text, at });
  }
  return out;
}

const CMP = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le']);
const FUNCTIONS = new Set(['year', 'month', 'day', 'hour', 'minute', 'second', 'now']);

/** Parses a `$filter`; 400.18 on bad syntax, 501.x on what Central does not support. */
export function parseFilter(src: string): Filter {
  const toks = tokenize(src);
  let i = 0;
  const peek = () => toks[i];
  const isWord = (w: string) => peek()?.kind === 'word' && peek()!.text === w;
  const expect = (text: string) => {
    if (peek()?.text !== text) throw problems.unparseable(`expected "${text}" at ${peek()?.at ?? src.length}`);
    i++;
  };
  const orExpr = (): Node => {
    let l = andExpr();
    while (isWord('or')) {
      i++;
      l = { t: 'or', l, r: andExpr() };
    }
    return l;
  };
  const andExpr = (): Node => {
    let l = notExpr();
    while (isWord('and')) {
      i++;
      l = { t: 'and', l, r: notExpr() };
    }
    return l;
  };
  const notExpr = (): Node => {
    if (isWord('not')) return i++, { t: 'not', e: notExpr() };
    const l = operand();
    const op = peek();
    if (op?.kind === 'word' && CMP.has(op.text)) {
      i++;
      return { t: 'cmp', op: op.text as 'eq', l, r: operand() };
    }
    return l;
  };
  const operand = (): Node => {
    const t = toks[i++];
    if (!t) throw problems.unparseable('unexpected end of expression');
    if (t.text === '(') {
      const e = orExpr();
      expect(')');
      return e;
    }
    switch (t.kind) {
      case 'str':
        return { t: 'lit', v: t.text.slice(1, -1).replace(/''/g, "'") };
      case 'datetime':
      case 'date':
        return { t: 'lit', v: t.text };
      case 'num':
        return { t: 'lit', v: Number(t.text) };
      case 'word': {
        if (t.text === 'null') return { t: 'lit', v: null };
        if (t.text === 'true' || t.text === 'false') return { t: 'lit', v: t.text === 'true' };
        if (['and', 'or', 'not', ...CMP].includes(t.text)) throw problems.unparseable(`unexpected "${t.text}" at ${t.at}`);
        if (peek()?.text === '(') {
          i++;
          const args: Node[] = [];
          while (peek()?.text !== ')') {
            args.push(orExpr());
            if (peek()?.text === ',') i++;
            else break;
          }
          expect(')');
          const raw = src.slice(t.at, toks[i - 1]!.at + 1);
          if (!FUNCTIONS.has(t.text)) throw problems.unsupportedExpression('MethodCallExpression', t.at, raw);
          return { t: 'call', fn: t.text, args, at: t.at, raw };
        }
        if (!columnOf(t.text)) throw problems.unsupportedField(t.text, t.at);
        return { t: 'member', path: t.text, at: t.at };
      }
      default:
        throw problems.unparseable(`unexpected "${t.text}" at ${t.at}`);
    }
  };
  if (toks.length === 0) throw problems.unparseable('empty expression');
  const ast = orExpr();
  if (i < toks.length) throw problems.unparseable(`unexpected "${toks[i]!.text}" at ${toks[i]!.at}`);
  return ast;
}

/**
 * Central keeps deleted submissions out of the feed unless the filter mentions
 * `__system/deletedAt` (lib/data/odata-filter.js `odataExcludeDeleted`).
 */
export function mentionsDeletedAt(n: Filter | null): boolean {
  if (!n) return false;
  switch (n.t) {
    case 'member':
      return columnOf(n.path) === COLUMNS['__system/deletedAt'];
    case 'or':
    case 'and':
    case 'cmp':
      return mentionsDeletedAt(n.l) || mentionsDeletedAt(n.r);
    case 'not':
      return mentionsDeletedAt(n.e);
    case 'call':
      return n.args.some(mentionsDeletedAt);
    default:
      return false;
  }
}

type Value = { kind: 'string' | 'time' | 'number' | 'bool' | 'lit'; v: string | number | boolean | null };

function value(n: Node, s: SimSubmission, now: number): Value {
  switch (n.t) {
    case 'member': {
      const c = columnOf(n.path)!;
      return { kind: c.kind, v: c.get(s) };
    }
    case 'lit':
      return { kind: 'lit', v: n.v };
    case 'call': {
      if (n.fn === 'now') return { kind: 'time', v: now };
      const a = n.args[0] ? value(n.args[0], s, now) : null;
      if (!a || a.v === null) return { kind: 'number', v: null };
      const d = new Date(toTime(a));
      const parts: Record<string, number> = { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
      return { kind: 'number', v: parts[n.fn]! };
    }
    default:
      return { kind: 'bool', v: evaluate(n, s, now) };
  }
}

function toTime(x: Value): number {
  if (typeof x.v === 'number') return x.v;
  const t = Date.parse(String(x.v));
  // PostgreSQL would refuse the cast; say so as a parse error.
  if (Number.isNaN(t)) throw problems.unparseable(`"${x.v}" is not a timestamp`);
  return t;
}

function compare(a: Value, b: Value): number {
  if (a.kind === 'time' || b.kind === 'time') return toTime(a) - toTime(b);
  if (a.kind === 'number' || b.kind === 'number') return Number(a.v) - Number(b.v);
  const x = String(a.v), y = String(b.v);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** SQL three-valued logic, as the filter runs in PostgreSQL: null means "unknown", and only true rows match. */
export function evaluate(n: Filter, s: SimSubmission, now: number): boolean | null {
  switch (n.t) {
    case 'or': {
      const l = evaluate(n.l, s, now), r = evaluate(n.r, s, now);
      return l === true || r === true ? true : l === null || r === null ? null : false;
    }
    case 'and': {
      const l = evaluate(n.l, s, now), r = evaluate(n.r, s, now);
      return l === false || r === false ? false : l === null || r === null ? null : true;
    }
    case 'not': {
      const e = evaluate(n.e, s, now);
      return e === null ? null : !e;
    }
    case 'cmp': {
      const l = value(n.l, s, now), r = value(n.r, s, now);
      // eq/ne are IS [NOT] DISTINCT FROM: null-safe, never unknown.
      if (n.op === 'eq' || n.op === 'ne') {
        const same = l.v === null || r.v === null ? l.v === r.v : compare(l, r) === 0;
        return n.op === 'eq' ? same : !same;
      }
      if (l.v === null || r.v === null) return null;
      const c = compare(l, r);
      return n.op === 'gt' ? c > 0 : n.op === 'ge' ? c >= 0 : n.op === 'lt' ? c < 0 : c <= 0;
    }
    case 'lit':
      return n.v === null ? null : Boolean(n.v);
    default:
      throw problems.unparseable('expected a boolean expression');
  }
}

/** `$orderby=__system/submissionDate desc,…`: only filterable paths (501.5 otherwise). */
export function orderBy(expr: string): (a: SimSubmission, b: SimSubmission) => number {
  const keys = expr.split(',').map((part) => {
    const [path = '', dir = 'asc'] = part.trim().split(/\s+/);
    const c = columnOf(path);
    if (!c || !/^(asc|desc)$/i.test(dir)) throw problems.unsupportedField(c ? dir : path);
    return { c, sign: dir.toLowerCase() === 'desc' ? -1 : 1 };
  });
  return (a, b) => {
    for (const { c, sign } of keys) {
      const x = c.get(a), y = c.get(b);
      // asc: NULLS FIRST, desc: NULLS LAST
      if (x === null || y === null) {
        if (x !== y) return x === null ? -sign : sign;
        continue;
      }
      if (x !== y) return (x < y ? -1 : 1) * sign;
    }
    return (a.seq - b.seq) * keys[0]!.sign;
  };
}

// ---------------------------------------------------------------------------
// $skiptoken: "01" + base64 of {"instanceId": "<last __id>"}, a keyset cursor.

export function encodeSkiptoken(instanceId: string): string {
  return '01' + Buffer.from(JSON.stringify({ instanceId }), 'utf8').toString('base64');
}

export function decodeSkiptoken(token: string): { instanceId: string } {
  if (!token.startsWith('01')) throw problems.invalidSkiptoken();
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token.slice(2), 'base64').toString('utf8'));
    if (parsed && typeof parsed === 'object' && typeof (parsed as { instanceId?: unknown }).instanceId === 'string') return parsed as { instanceId: string };
  } catch {
    /* fall through */
  }
  throw problems.invalidSkiptoken();
}

// ---------------------------------------------------------------------------
// $select (lib/formats/odata.js `filterFields`)

export function parseSelect(expr: string, fields: OdkField[]): Selection {
  const byPath = new Map(walkFields(fields).map((e) => [e.path, e]));
  const sel: Selection = { fields: new Set(), id: false, system: null };
  const system = new Set<string>();
  for (const property of expr.split(',').map((p) => p.trim())) {
    if (property === '__id') sel.id = true;
    else if (property === '__system') sel.system = 'all';
    else if (property.startsWith('__system/') && (SYSTEM_PROPS as readonly string[]).includes(property.slice(9))) system.add(property.slice(9));
    else {
      const e = byPath.get(property);
      if (!e) throw problems.propertyNotFound(property);
      if (e.parents.some((p) => p.type === 'repeat')) throw problems.unsupportedSelectField(property);
      for (const p of e.parents) sel.fields!.add(p);
      sel.fields!.add(e.field);
      if (e.field.type === 'group') for (const c of walkFields(e.field.children ?? [])) if (!c.parents.some((p) => p.type === 'repeat')) sel.fields!.add(c.field);
    }
  }
  if (sel.system !== 'all' && system.size) sel.system = system;
  return sel;
}

// ---------------------------------------------------------------------------
// Service and metadata documents (lib/formats/odata.js)

const EDM: Partial<Record<OdkField['type'], string>> = {
  int: 'Edm.Int64',
  decimal: 'Edm.Decimal',
  geopoint: 'Edm.GeographyPoint',
  date: 'Edm.Date',
  dateTime: 'Edm.DateTimeOffset',
};

const odataName = (s: string) => s.replace(/[^a-zA-Z0-9_]/g, '_');

export function serviceDocument(fields: OdkField[], contextUrl: string): unknown {
  const repeats = walkFields(fields).filter((e) => e.field.type === 'repeat').map((e) => `Submissions.${e.path.split('/').map(odataName).join('.')}`);
  return {
    '@odata.context': contextUrl,
    value: [{ name: 'Submissions', kind: 'EntitySet', url: 'Submissions' }, ...repeats.map((name) => ({ name, kind: 'EntitySet', url: name }))],
  };
}

export function edmx(xmlFormId: string, fields: OdkField[]): string {
  const base = `org.opendatakit.user.${odataName(xmlFormId)}`;
  type Bag = { name: string; primary?: boolean; repeatPath?: string; props: string[] };
  const submissions: Bag = { name: 'Submissions', primary: true, props: [] };
  const entities: Bag[] = [submissions];
  const complex: Bag[] = [];
  const visit = (fs: OdkField[], out: Bag, prefix: string[], repeatCtx: string[]) => {
    for (const f of fs) {
      const name = odataName(f.name);
      const path = [...prefix, name];
      if (f.type === 'group') {
        const bag: Bag = { name: path.join('.'), props: [] };
        complex.push(bag);
        out.props.push(`<Property Name="${name}" Type="${base}.${path.join('.')}"/>`);
        visit(f.children ?? [], bag, path, repeatCtx);
      } else if (f.type === 'repeat') {
        const parentId = `__${['Submissions', ...repeatCtx].join('-')}-id`;
        const bag: Bag = { name: `Submissions.${path.join('.')}`, props: [`<Property Name="${parentId}" Type="Edm.String"/>`] };
        entities.push(bag);
        out.props.push(`<NavigationProperty Name="${name}" Type="Collection(${base}.Submissions.${path.join('.')})"/>`);
        visit(f.children ?? [], bag, path, path);
      } else {
        out.props.push(`<Property Name="${name}" Type="${EDM[f.type] ?? 'Edm.String'}"/>`);
      }
    }
  };
  visit(fields, submissions, [], []);
  const topNames = fields.map((f) => odataName(f.name));
  const entityType = (b: Bag) => `      <EntityType Name="${b.name}">
        <Key><PropertyRef Name="__id"/></Key>
        <Property Name="__id" Type="Edm.String"/>
${b.primary ? '        <Property Name="__system" Type="org.opendatakit.submission.metadata"/>\n' : ''}${b.props.map((p) => `        ${p}\n`).join('')}      </EntityType>`;
  const complexType = (b: Bag) => `      <ComplexType Name="${b.name}">\n${b.props.map((p) => `        ${p}\n`).join('')}      </ComplexType>`;
  const entitySet = (b: Bag) =>
    b.primary
      ? `        <EntitySet Name="${b.name}" EntityType="${base}.${b.name}">
          <Annotation Term="Org.OData.Capabilities.V1.ConformanceLevel" EnumMember="Org.OData.Capabilities.V1.ConformanceLevelType/Minimal"/>
          <Annotation Term="Org.OData.Capabilities.V1.BatchSupported" Bool="false"/>
          <Annotation Term="Org.OData.Capabilities.V1.CountRestrictions">
            <Record><PropertyValue Property="Countable" Bool="true"/></Record>
          </Annotation>
          <Annotation Term="Org.OData.Capabilities.V1.FilterFunctions">
            <Record>
              <PropertyValue Property="NonCountableProperties">
                <Collection>
                  <String>eq</String>
                </Collection>
              </PropertyValue>
            </Record>
          </Annotation>
          <Annotation Term="Org.OData.Capabilities.V1.FilterFunctions">
            <Record>
              <PropertyValue Property="Filterable" Bool="true"/>
              <PropertyValue Property="RequiresFilter" Bool="false"/>
              <PropertyValue Property="NonFilterableProperties">
                <Collection>
${topNames.map((n) => `                  <PropertyPath>${n}</PropertyPath>\n`).join('')}                </Collection>
              </PropertyValue>
            </Record>
          </Annotation>
          <Annotation Term="Org.OData.Capabilities.V1.SortRestrictions">
            <Record><PropertyValue Property="Sortable" Bool="false"/></Record>
          </Annotation>
          <Annotation Term="Org.OData.Capabilities.V1.ExpandRestrictions">
            <Record><PropertyValue Property="Expandable" Bool="false"/></Record>
          </Annotation>
        </EntitySet>`
      : `        <EntitySet Name="${b.name}" EntityType="${base}.${b.name}">\n        </EntitySet>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="org.opendatakit.submission">
      <ComplexType Name="metadata">
        <Property Name="submissionDate" Type="Edm.DateTimeOffset"/>
        <Property Name="updatedAt" Type="Edm.DateTimeOffset"/>
        <Property Name="deletedAt" Type="Edm.DateTimeOffset"/>
        <Property Name="submitterId" Type="Edm.String"/>
        <Property Name="submitterName" Type="Edm.String"/>
        <Property Name="attachmentsPresent" Type="Edm.Int64"/>
        <Property Name="attachmentsExpected" Type="Edm.Int64"/>
        <Property Name="status" Type="org.opendatakit.submission.Status"/>
        <Property Name="reviewState" Type="org.opendatakit.submission.ReviewState"/>
        <Property Name="deviceId" Type="Edm.String"/>
        <Property Name="edits" Type="Edm.Int64"/>
        <Property Name="formVersion" Type="Edm.String"/>
      </ComplexType>
      <EnumType Name="Status">
        <Member Name="notDecrypted"/>
        <Member Name="missingEncryptedFormData"/>
      </EnumType>
      <EnumType Name="ReviewState">
        <Member Name="hasIssues"/>
        <Member Name="edited"/>
        <Member Name="rejected"/>
        <Member Name="approved"/>
      </EnumType>
    </Schema>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="${base}">
${entities.map(entityType).join('\n')}
${complex.map(complexType).join('\n')}
      <EntityContainer Name="${xmlFormId}">
${entities.map(entitySet).join('\n')}
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>`;
}
