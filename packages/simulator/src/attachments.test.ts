/** The simulators' attachment downloads: Kobo's download_url, ODK's list/file/ETag/307, and the presigned-URL host. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachmentBytes, md5Hex, startBlobHost, type BlobHost } from './attachments.ts';
import { startKoboSimulator, type KoboSimulator } from './kobo/index.ts';
import { startOdkSimulator, type OdkSimulator } from './odk/index.ts';

const FORM = { xmlFormId: 'pics', fields: [{ name: 'a', type: 'image' as const }, { name: 'b', type: 'image' as const }] };

describe('simulated attachments', () => {
  let kobo: KoboSimulator;
  let odk: OdkSimulator;
  let s3odk: OdkSimulator;
  let blobs: BlobHost;
  beforeAll(async () => {
    kobo = await startKoboSimulator({ seed: 3 });
    odk = await startOdkSimulator({ forms: [FORM] });
    blobs = await startBlobHost();
    s3odk = await startOdkSimulator({ forms: [FORM], blobs });
  });
  afterAll(async () => {
    await Promise.all([kobo?.close(), odk?.close(), s3odk?.close(), blobs?.close()]);
  });
  const bearer = async (sim: OdkSimulator) => {
    const r = await fetch(`${sim.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: sim.email, password: sim.password }) });
    return `Bearer ${((await r.json()) as { token: string }).token}`;
  };

  it('the same file name always gives the same bytes', () => {
    expect(attachmentBytes('x.jpg').equals(attachmentBytes('x.jpg'))).toBe(true);
    expect(attachmentBytes('x.jpg').equals(attachmentBytes('y.jpg'))).toBe(false);
  });

  it('Kobo: download_url streams the file with Token auth, 401 without; failFile answers 500 N times', async () => {
    const rec = kobo.createSubmissions(kobo.assetUids[0]!, 20).find((r) => (r._attachments as unknown[]).length > 0)!;
    const att = (rec._attachments as { download_url: string; media_file_basename: string }[])[0]!;
    expect((await fetch(att.download_url)).status).toBe(401);
    const auth = { authorization: `Token ${kobo.token}` };
    kobo.failFile(att.media_file_basename, 2);
    expect((await fetch(att.download_url, { headers: auth })).status).toBe(500);
    expect((await fetch(att.download_url, { headers: auth })).status).toBe(500);
    const ok = await fetch(att.download_url, { headers: auth });
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer()).equals(attachmentBytes(att.media_file_basename))).toBe(true);
  });

  it('ODK: the list, the file with ETag "<md5>", 304 on If-None-Match; held uploads listed as not existing', async () => {
    const id = odk.createSubmission(FORM.xmlFormId, { answers: { a: 'one.jpg', b: 'two.jpg' } });
    const auth = await bearer(odk);
    const base = `${odk.url}/v1/projects/${odk.projectId}/forms/${FORM.xmlFormId}/submissions/${id}/attachments`;
    odk.holdUpload('two.jpg');
    expect(await (await fetch(base, { headers: { authorization: auth } })).json()).toEqual([{ name: 'one.jpg', exists: true }, { name: 'two.jpg', exists: false }]);
    odk.holdUpload('two.jpg', false);
    const r = await fetch(`${base}/one.jpg`, { headers: { authorization: auth } });
    expect(r.status).toBe(200);
    const bytes = Buffer.from(await r.arrayBuffer());
    expect(bytes.equals(attachmentBytes('one.jpg'))).toBe(true);
    expect(r.headers.get('etag')).toBe(`"${md5Hex(bytes)}"`);
    expect((await fetch(`${base}/one.jpg`, { headers: { authorization: auth, 'if-none-match': `"${md5Hex(bytes)}"` } })).status).toBe(304);
    expect((await fetch(`${base}/one.jpg`)).status).toBe(401);
  });

  it('ODK with blobs in S3: a 307 to a presigned URL on another host, which refuses an Authorization header', async () => {
    const id = s3odk.createSubmission(FORM.xmlFormId, { answers: { a: 'three.jpg' } });
    const auth = await bearer(s3odk);
    const r = await fetch(`${s3odk.url}/v1/projects/${s3odk.projectId}/forms/${FORM.xmlFormId}/submissions/${id}/attachments/three.jpg`, { headers: { authorization: auth }, redirect: 'manual' });
    expect(r.status).toBe(307);
    const location = r.headers.get('location')!;
    expect(new URL(location).origin).toBe(blobs.url);
    expect((await fetch(location, { headers: { authorization: auth } })).status).toBe(400);
    const ok = await fetch(location);
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer()).equals(attachmentBytes('three.jpg'))).toBe(true);
    expect((await fetch(location.replace(/X-Amz-Signature=[0-9a-f]+/, 'X-Amz-Signature=00'))).status).toBe(403);
  });
});
