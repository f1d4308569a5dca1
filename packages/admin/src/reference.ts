/** A readable page of the OpenAPI document, rendered on the server (no front-end bundle, no CDN). */
import { esc, layout } from './html.ts';

type Doc = { info?: { title?: string; description?: string }; paths?: Record<string, Record<string, Op>>; components?: { schemas?: Record<string, unknown> } };
type Op = { summary?: string; parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: unknown }[]; requestBody?: { content?: Record<string, { schema?: unknown }> }; responses?: Record<string, { description?: string; content?: Record<string, { schema?: unknown }> }> };

const schemaName = (s: unknown) => {
  const ref = (s as { $ref?: string } | undefined)?.$ref;
  return ref ? ref.split('/').pop()! : JSON.stringify(s);
};

export function referencePage(doc: Record<string, unknown>): string {
  const d = doc as Doc;
  const ops = Object.entries(d.paths ?? {}).flatMap(([p, methods]) => Object.entries(methods).map(([m, op]) => ({ p, m, op })));
  const body = ops
    .map(({ p, m, op }) => {
      const params = (op.parameters ?? []).map((x) => `<li><code>${esc(x.name)}</code> (${esc(x.in)}${x.required ? ', required' : ''}) ${esc(x.description ?? '')}</li>`).join('');
      const req = op.requestBody?.content ? Object.entries(op.requestBody.content).map(([t, c]) => `<code>${esc(t)}</code>: <a href="#${esc(schemaName(c.schema))}">${esc(schemaName(c.schema))}</a>`).join(', ') : '';
      const res = Object.entries(op.responses ?? {})
        .map(([code, r]) => `<li><b>${esc(code)}</b> ${esc(r.description ?? '')}${r.content ? ` — ${Object.values(r.content).map((c) => `<a href="#${esc(schemaName(c.schema))}">${esc(schemaName(c.schema))}</a>`).join(', ')}` : ''}</li>`)
        .join('');
      return `<h3 id="${esc(`${m}-${p}`)}"><code>${esc(m.toUpperCase())} ${esc(p)}</code></h3><p>${esc(op.summary ?? '')}</p>${params ? `<p>Parameters:</p><ul>${params}</ul>` : ''}${req ? `<p>Body: ${req}</p>` : ''}<p>Responses:</p><ul>${res}</ul>`;
    })
    .join('\n');
  const schemas = Object.entries(d.components?.schemas ?? {}).map(([n, s]) => `<h3 id="${esc(n)}">${esc(n)}</h3><pre>${esc(JSON.stringify(s, null, 2))}</pre>`).join('\n');
  return layout(d.info?.title ?? 'API', `<h1>${esc(d.info?.title)}</h1><p>${esc(d.info?.description)}</p><p><a href="openapi.json">openapi.json</a> · <a href="../status">status page</a></p><h2>Endpoints</h2>${body}<h2>Schemas</h2>${schemas}`);
}
