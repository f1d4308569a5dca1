/** Tiny server-side HTML: every interpolated value goes through esc(). */
export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1b1f24;background:#fafbfc}
h1{font-size:1.4rem;margin:0 0 .5rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:1rem}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7;font-weight:600}
.ok{color:#116329}.bad{color:#b91c1c;font-weight:600}.muted{color:#6b7280}
nav a{margin-right:1rem}form.inline{display:inline}button{margin:.1rem;cursor:pointer}
pre{background:#fff;border:1px solid #d0d7de;padding:.5rem;overflow:auto;max-height:30rem}
code{font-size:12px}.err{max-width:28rem;white-space:pre-wrap;word-break:break-word}
`;

export function layout(title: string, body: string, opts: { refreshS?: number } = {}): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
${opts.refreshS ? `<meta http-equiv="refresh" content="${opts.refreshS}">` : ''}
<meta name="viewport" content="width=device-width,initial-scale=1"><style>${STYLE}</style></head><body>${body}</body></html>`;
}
