/**
 * A form's definition as ODK Central serves it: the XForm (as pyxform ≥ 4
 * writes it from an XLSForm, or hand-written with inline choices) and the
 * `/fields` list Central derives from it (lib/data/schema.js getFormFields).
 */
import { walkFields, type OdkField, type OdkFormSpec, type OdkLabel } from './odk.data.ts';

/** The XForm bind type of a question, which `/fields` reports as `type`. */
export function bindType(f: OdkField): string {
  switch (f.type) {
    case 'select_one':
    case 'select_multiple':
    case 'note':
    case 'calculate':
      return 'string';
    case 'image':
      return 'binary';
    default:
      return f.type;
  }
}

/** lib/util/util.js sanitizeOdataIdentifier. */
export const sanitizeOdataIdentifier = (name: string) => name.replace(/^([^a-z_])/i, '_$1').replace(/([^a-z0-9_]+)/gi, '_');

export interface OdkFieldEntry {
  path: string;
  name: string;
  type: string;
  binary: true | null;
  selectMultiple: true | null;
}

/** `GET …/fields` (`?odata=true` sanitises names and path segments as the OData feed does), depth first. */
export function formFields(fields: OdkField[], odata: boolean): OdkFieldEntry[] {
  const clean = odata ? sanitizeOdataIdentifier : (s: string) => s;
  return walkFields(fields).map(({ path, field }) => ({
    path: `/${path.split('/').map(clean).join('/')}`,
    name: clean(field.name),
    type: field.type === 'group' ? 'structure' : field.type === 'repeat' ? 'repeat' : bindType(field),
    binary: field.type === 'image' ? true : null,
    selectMultiple: field.type === 'select_multiple' ? true : null,
  }));
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const BODY_TAG: Partial<Record<OdkField['type'], string>> = { select_one: 'select1', select_multiple: 'select', image: 'upload' };

/** The XForm of one version of a form. Root element `data`, as pyxform names it. */
export function xform(spec: OdkFormSpec & { version: string }, fields: OdkField[]): string {
  const langs = spec.languages ?? [];
  const inline = spec.choiceStyle === 'inline';
  const root = 'data';
  const texts = new Map<string, Record<string, string>>(); // itext id → text by language
  const instances: string[] = [];
  const binds: string[] = [];
  const listsDone = new Set<string>();

  const byLang = (label: OdkLabel): Record<string, string> =>
    typeof label === 'string' ? Object.fromEntries(langs.map((lang) => [lang, label])) : label;
  const plain = (label: OdkLabel): string => (typeof label === 'string' ? label : (Object.values(label)[0] ?? ''));
  /** `<label>` of a question: an itext reference with translations, else the text. */
  const labelXml = (id: string, label: OdkLabel | undefined): string => {
    if (label === undefined) return '';
    if (!langs.length) return `<label>${esc(plain(label))}</label>`;
    texts.set(`${id}:label`, byLang(label));
    return `<label ref="jr:itext('${id}:label')"/>`;
  };

  const model = (fs: OdkField[], pre: string, indent: string): string =>
    fs
      .map((f) => {
        const ref = `${pre}/${f.name}`;
        if (f.type === 'group' || f.type === 'repeat') {
          const inner = model(f.children ?? [], ref, `${indent}  `);
          const el = (attrs: string) => `${indent}<${f.name}${attrs}>\n${inner}\n${indent}</${f.name}>`;
          // pyxform writes a repeat's template and one initial instance; Central reads the first only.
          return f.type === 'repeat' ? `${el(' jr:template=""')}\n${el('')}` : el('');
        }
        return `${indent}<${f.name}/>`;
      })
      .join('\n');

  const bindsFor = (fs: OdkField[], pre: string) => {
    for (const f of fs) {
      const ref = `${pre}/${f.name}`;
      if (f.type === 'group' || f.type === 'repeat') {
        bindsFor(f.children ?? [], ref);
        continue;
      }
      if (ref === `/${root}/meta/instanceID`) {
        binds.push(`<bind jr:preload="uid" nodeset="${ref}" readonly="true()" type="string"/>`);
        continue;
      }
      const extra = f.type === 'note' ? ' readonly="true()"' : f.type === 'calculate' ? ` calculate="${esc(f.calculation ?? "''")}"` : '';
      binds.push(`<bind nodeset="${ref}"${extra} type="${bindType(f)}"/>`);
    }
  };

  const choicesXml = (f: OdkField, indent: string): string => {
    const list = f.list ?? f.name;
    const names = f.choices ?? [];
    const labelOf = (c: string) => f.choiceLabels?.[c] ?? c;
    if (inline) {
      return names.map((c) => `${indent}<item>\n${indent}  <label>${esc(plain(labelOf(c)))}</label>\n${indent}  <value>${esc(c)}</value>\n${indent}</item>`).join('\n');
    }
    if (!listsDone.has(list)) {
      listsDone.add(list);
      const items = names.map((c, i) => {
        if (langs.length) {
          texts.set(`${list}-${i}`, byLang(labelOf(c)));
          return `          <item>\n            <itextId>${list}-${i}</itextId>\n            <name>${esc(c)}</name>\n          </item>`;
        }
        return `          <item>\n            <label>${esc(plain(labelOf(c)))}</label>\n            <name>${esc(c)}</name>\n          </item>`;
      });
      instances.push(`      <instance id="${esc(list)}">\n        <root>\n${items.join('\n')}\n        </root>\n      </instance>`);
    }
    const label = langs.length ? '<label ref="jr:itext(itextId)"/>' : '<label ref="label"/>';
    return `${indent}<itemset nodeset="instance('${esc(list)}')/root/item">\n${indent}  <value ref="name"/>\n${indent}  ${label}\n${indent}</itemset>`;
  };

  const body = (fs: OdkField[], pre: string, indent: string): string =>
    fs
      .flatMap((f) => {
        const ref = `${pre}/${f.name}`;
        if (f.name === 'meta' && pre === `/${root}`) return [];
        if (f.type === 'calculate') return [];
        const label = labelXml(ref, f.label);
        if (f.type === 'group') return [`${indent}<group ref="${ref}">\n${indent}  ${label}\n${body(f.children ?? [], ref, `${indent}  `)}\n${indent}</group>`];
        if (f.type === 'repeat')
          return [`${indent}<group ref="${ref}">\n${indent}  ${label}\n${indent}  <repeat nodeset="${ref}">\n${body(f.children ?? [], ref, `${indent}    `)}\n${indent}  </repeat>\n${indent}</group>`];
        const tag = BODY_TAG[f.type] ?? 'input';
        const media = f.type === 'image' ? ' accept="image/*"' : '';
        const inner = [label, ...(f.type === 'select_one' || f.type === 'select_multiple' ? [`\n${choicesXml(f, `${indent}  `)}`] : [])].join('');
        return [`${indent}<${tag}${media} ref="${ref}">${inner ? `\n${indent}  ${inner.trimStart()}\n${indent}` : ''}</${tag}>`];
      })
      .join('\n');

  bindsFor(fields, `/${root}`);
  const bodyXml = body(fields, `/${root}`, '    ');
  const itext = langs.length
    ? `      <itext>\n${langs
        .map((lang, i) => {
          const entries = [...texts].filter(([, t]) => t[lang] !== undefined).map(([id, t]) => `          <text id="${esc(id)}">\n            <value>${esc(t[lang]!)}</value>\n          </text>`);
          return `        <translation${i === 0 ? ' default="true()"' : ''} lang="${esc(lang)}">\n${entries.join('\n')}\n        </translation>`;
        })
        .join('\n')}\n      </itext>\n`
    : '';
  return `<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:ev="http://www.w3.org/2001/xml-events" xmlns:h="http://www.w3.org/1999/xhtml" xmlns:jr="http://openrosa.org/javarosa" xmlns:odk="http://www.opendatakit.org/xforms" xmlns:orx="http://openrosa.org/xforms" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <h:head>
    <h:title>${esc(spec.name ?? spec.xmlFormId)}</h:title>
    <model odk:xforms-version="1.0.0">
${itext}      <instance>
        <${root} id="${esc(spec.xmlFormId)}"${spec.version ? ` version="${esc(spec.version)}"` : ''}>
${model(fields, `/${root}`, '          ')}
        </${root}>
      </instance>
${instances.join('\n')}${instances.length ? '\n' : ''}${binds.map((b) => `      ${b}`).join('\n')}
    </model>
  </h:head>
  <h:body>
${bodyXml}
  </h:body>
</h:html>
`;
}
