import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { CanonicalSubmission } from '@fieldsync/model';
import { PayloadError, type WebhookHints } from '../connector.ts';
import { MAX_JSON_DEPTH, valueDepthExceeds } from '../depth.ts';
import { toCanonical, type KoboRecord } from './kobo.canonical.ts';

/** The body is not well-formed XML (refused, unlike a well-formed body we cannot read). */
export class MalformedXmlError extends Error {
  override name = 'MalformedXmlError';
}
/** The XML nests deeper than fieldsync stores (see MAX_JSON_DEPTH). */
export class XmlTooDeepError extends Error {
  override name = 'XmlTooDeepError';
}

type Node = Record<string, unknown> & { ':@'?: Record<string, string> };

const parser = new XMLParser({
  preserveOrder: true, // siblings in document order, so a repeat's entries stay in order
  ignoreAttributes: false,
  attributeNamePrefix: '',
  removeNSPrefix: true, // <orx:meta><orx:instanceID> is meta/instanceID, as in the JSON
  parseTagValue: false, // every answer is a string, as in Kobo's JSON
  parseAttributeValue: false,
  trimValues: false, // answers keep their spaces; whitespace between elements is dropped below
  ignoreDeclaration: true,
  ignorePiTags: true,
  processEntities: true,
  maxNestedTags: MAX_JSON_DEPTH,
});

const nameOf = (n: Node) => Object.keys(n).find((k) => k !== ':@')!;

/**
 * Builds the JSON export's shape from a node's children: a group's questions
 * become flat `group/q` keys; a repeat (a path in `repeats`, or an element
 * that occurs more than once among its siblings) is an array of entries whose
 * keys are full paths (nested repeats nest). Empty answers and groups are
 * absent, as in Kobo's JSON. Recursion is bounded: the parser refused
 * anything deeper than MAX_JSON_DEPTH.
 */
function flatten(children: Node[], prefix: string, out: Record<string, unknown>, repeats: ReadonlySet<string>): void {
  const elements = children.filter((c) => nameOf(c) !== '#text' && nameOf(c) !== '#comment');
  const count = new Map<string, number>();
  for (const e of elements) count.set(nameOf(e), (count.get(nameOf(e)) ?? 0) + 1);
  for (const e of elements) {
    const name = nameOf(e);
    const path = prefix ? `${prefix}/${name}` : name;
    const kids = e[name] as Node[];
    const isLeaf = kids.every((k) => nameOf(k) === '#text' || nameOf(k) === '#cdata');
    if ((count.get(name) ?? 0) > 1 || repeats.has(path)) {
      const entry: Record<string, unknown> = {};
      if (isLeaf) {
        const v = text(kids);
        if (v !== '') entry[path] = v;
      } else flatten(kids, path, entry, repeats);
      if (Object.keys(entry).length === 0) continue;
      const list = (Object.hasOwn(out, path) ? out[path] : (out[path] = [])) as unknown[];
      list.push(entry);
    } else if (isLeaf) {
      const v = text(kids);
      if (v !== '') out[path] = v;
    } else flatten(kids, path, out, repeats);
  }
}

function text(kids: Node[]): string {
  return kids.map((k) => String(k['#text'] ?? (Array.isArray(k['#cdata']) ? text(k['#cdata'] as Node[]) : ''))).join('');
}

/**
 * A Kobo REST Service body with `export_type=xml`: the submission XML as Kobo
 * stores it (kpi `Instance.xml`): root element = the asset uid, with `id` (the
 * asset uid) and `version` attributes; groups nest; `meta/instanceID`.
 * Returns the record in the JSON export's shape, with `_xform_id_string` and
 * `_uuid` derived as Kobo derives them. The XML has no `_id` nor
 * `_submission_time` (they live in Kobo's database, not the instance): the key
 * is `meta/rootUuid`, else `meta/instanceID`, and the record is dated when it
 * was received. A repeat with a single entry cannot be told from a group
 * without the form: `repeats` (paths such as `household/members`, from the
 * form's definition) says which are; without it such an entry comes out as
 * flat group keys.
 */
export function koboXmlToRecord(xml: string, repeats: ReadonlySet<string> = new Set()): { record: KoboRecord; formId?: string } {
  let doc: Node[];
  try {
    doc = parser.parse(xml) as Node[];
  } catch (err) {
    if (/nested tags/i.test((err as Error).message)) throw new XmlTooDeepError(`XML nests deeper than ${MAX_JSON_DEPTH} elements`);
    throw new MalformedXmlError(`body is not well-formed XML: ${(err as Error).message}`);
  }
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new MalformedXmlError(`body is not well-formed XML: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col})`);
  const roots = doc.filter((n) => nameOf(n) !== '#text' && nameOf(n) !== '#comment');
  if (roots.length !== 1) throw new MalformedXmlError('body is not well-formed XML: expected one root element');
  const root = roots[0]!;
  const record: KoboRecord = {};
  flatten(root[nameOf(root)] as Node[], '', record, repeats);
  if (valueDepthExceeds(record, MAX_JSON_DEPTH)) throw new XmlTooDeepError(`XML repeats nest deeper than ${MAX_JSON_DEPTH} JSON levels`);
  const formId = root[':@']?.id;
  if (formId && !Object.hasOwn(record, '_xform_id_string')) record._xform_id_string = formId;
  const instanceId = record['meta/instanceID'];
  if (typeof instanceId === 'string' && !Object.hasOwn(record, '_uuid')) record._uuid = instanceId.replace(/^uuid:/, '');
  return { record, formId };
}

export function parseKoboXmlWebhook(sourceId: string, xml: string, receivedAt: Date, hints: WebhookHints = {}): CanonicalSubmission[] {
  const { record } = koboXmlToRecord(xml, new Set(hints.repeatPaths));
  const own = record._xform_id_string as string | undefined;
  if (own && hints.formId && own !== hints.formId) throw new PayloadError(`the XML root's id is "${own}" but ?formId= says "${hints.formId}"`);
  const formId = own || hints.formId;
  if (!formId) throw new PayloadError('the XML root has no id attribute (or pass ?formId=)');
  // Dated at receipt (see above); the stored data is the record without that stand-in.
  const dated = Object.hasOwn(record, '_submission_time') ? record : { ...record, _submission_time: receivedAt.toISOString() };
  const s = toCanonical(dated, { sourceId, formId, observedAt: receivedAt, via: 'webhook' });
  return [{ ...s, data: record }];
}
