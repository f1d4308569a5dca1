/** Refused credentials become AuthError (one request, no retry); an ODK session can be logged out. */
import { afterEach, describe, expect, it } from 'vitest';
import { KoboSource, OdkSource } from '@fieldsync/config';
import { HOUSEHOLD_FORM, startKoboSimulator, startOdkSimulator, type KoboSimulator, type OdkSimulator } from '@fieldsync/simulator';
import { AuthError } from './connector.ts';
import { KoboConnector } from './kobo/kobo.connector.ts';
import { OdkConnector } from './odk/odk.connector.ts';

const http = { timeoutMs: 5000, retries: 3, backoffMs: 10, maxBackoffMs: 500 };
let odk: OdkSimulator | undefined;
let kobo: KoboSimulator | undefined;
afterEach(async () => {
  await odk?.close();
  await kobo?.close();
  odk = kobo = undefined;
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const odkConnector = (sim: OdkSimulator, auth: object = { session: { email: sim.email, password: sim.password } }) =>
  new OdkConnector(OdkSource.parse({ id: 'odk', kind: 'odk', baseUrl: sim.url, projectId: sim.projectId, forms: [HOUSEHOLD_FORM.xmlFormId], auth, poll: { every: '1m' }, sweep: { every: '1h' }, http }));

describe('AuthError', () => {
  it('Kobo: a 401 (bad token) and a 403 (no access to the form) are AuthErrors after one request', async () => {
    kobo = await startKoboSimulator({ submissions: 3, seed: 1 });
    const uid = kobo.assetUids[0]!;
    const make = (token: string) => new KoboConnector(KoboSource.parse({ id: 'k', kind: 'kobo', baseUrl: kobo!.url, token, forms: [uid], poll: { every: '1m' }, sweep: { every: '1h' }, http }));
    const bad = await collect(make('nope').pull(uid, null, { via: 'poll' })).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(AuthError);
    expect((bad as AuthError).at('sources[3]')).toMatch(/^Kobo token refused: check sources\[3\]\.token .*\(401: .*Invalid token/);
    kobo.failNext({ status: 403 });
    const denied = await collect(make(kobo.token).pull(uid, null, { via: 'poll' })).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(AuthError);
    expect(denied).toMatchObject({ status: 403, what: `Kobo refused access to /api/v2/assets/${uid}/data/` });
    expect(kobo.requests.filter((r) => r.path.endsWith('/data/'))).toHaveLength(2);
  });

  it('ODK: a 403 on the feed (no role on the project) is an AuthError, not retried', async () => {
    odk = await startOdkSimulator({ submissions: 2 });
    odk.failNext({ status: 403, code: 403.1, message: 'The authenticated actor does not have rights to perform that action.', path: '.svc' });
    const err = await collect(odkConnector(odk).pull(HOUSEHOLD_FORM.xmlFormId, null, { via: 'poll' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(err).toMatchObject({ status: 403, code: 403.1, credential: 'auth.session.email/password' });
    expect(odk.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['POST 200', 'GET 403']);
  });

  it('ODK: close() logs the session out (DELETE /v1/sessions/current); the next request logs in anew', async () => {
    odk = await startOdkSimulator({ submissions: 2 });
    const c = odkConnector(odk);
    expect(await c.listForms()).toEqual([HOUSEHOLD_FORM.xmlFormId]);
    await collect(c.pull(HOUSEHOLD_FORM.xmlFormId, null, { via: 'poll' }));
    expect(odk.openSessions()).toBe(1);
    await c.close();
    expect(odk.openSessions()).toBe(0);
    await c.close(); // nothing left to end: no request
    await collect(c.pull(HOUSEHOLD_FORM.xmlFormId, null, { via: 'poll' }));
    expect(odk.requests.filter((r) => r.path.startsWith('/v1/sessions')).map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'POST /v1/sessions 200',
      'DELETE /v1/sessions/current 200',
      'POST /v1/sessions 200',
    ]);
  });
});
