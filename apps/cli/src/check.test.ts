/**
 * `./fieldsync` as an operator runs it: real processes through the bash
 * bootstrap, against the Kobo and ODK simulators, a throwaway PostgreSQL
 * database and Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { recordDeadLetter } from '@fieldsync/db';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { dropQueuePrefix, testQueueSettings } from '@fieldsync/queues/testing';
import { HOUSEHOLD_FORM, startKoboSimulator, startOdkSimulator, type KoboSimulator, type OdkSimulator } from '@fieldsync/simulator';

const FIELDSYNC = fileURLToPath(new URL('../../../fieldsync', import.meta.url));

interface Result { code: number | null; stdout: string; stderr: string }
function fieldsync(args: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  return new Promise((resolve) => {
    execFile(FIELDSYNC, args, { env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}
const lines = (s: string) => s.trim().split('\n').filter(Boolean);

describe('./fieldsync', () => {
  const settings = testQueueSettings();
  let t: TestDatabase;
  let kobo: KoboSimulator;
  let odk: OdkSimulator;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    [t, kobo, odk] = await Promise.all([createTestDatabase('postgresql'), startKoboSimulator({ submissions: 30, seed: 3 }), startOdkSimulator({ submissions: 5 })]);
    dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-cli-'));
    const configFile = path.join(dir, 'fieldsync.config.yaml');
    writeFileSync(
      configFile,
      `sources:
  - id: kobo-eu
    kind: kobo
    baseUrl: ${kobo.url}
    token: "\${KOBO_TOKEN}"
    forms: [${kobo.assetUids[0]}]
  - id: odk
    kind: odk
    baseUrl: ${odk.url}
    projectId: ${odk.projectId}
    forms: [${HOUSEHOLD_FORM.xmlFormId}]
    auth:
      session: { email: ${odk.email}, password: "\${ODK_PASSWORD}" }
`,
    );
    env = {
      PATH: process.env.PATH, HOME: process.env.HOME,
      // The bootstrap's install check must never start a `pnpm install` under running tests (turbo installed and built first).
      FIELDSYNC_SKIP_SETUP: '1',
      DATABASE_URL: t.url, REDIS_URL: settings.redisUrl, FIELDSYNC_QUEUE_PREFIX: settings.prefix, FIELDSYNC_CONFIG: configFile,
      KOBO_TOKEN: kobo.token, ODK_PASSWORD: odk.password, LOG_LEVEL: 'warn',
      METRICS_PORT: '0', // the loader started below serves no metrics port: tests run side by side
    };
  });
  afterAll(async () => {
    await Promise.all([kobo?.close(), odk?.close(), t?.drop(), dropQueuePrefix(settings)]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('check', () => {
    it('a good config: one ✓ line per check, exit 0', async () => {
      const r = await fieldsync(['check'], env);
      expect(lines(r.stdout)).toEqual([
        expect.stringMatching(/^✓ config: .*fieldsync\.config\.yaml: valid, 2 source\(s\) \(kobo-eu, odk\)$/),
        expect.stringMatching(/^✓ source kobo-eu: kobo at http:\/\/127\.0\.0\.1:\d+: token accepted, 1 form\(s\) readable$/),
        expect.stringMatching(/^✓ source odk: odk at http:\/\/127\.0\.0\.1:\d+: login accepted, 1 form\(s\) readable$/),
        expect.stringMatching(/^✓ database: postgresql at postgresql:\/\/postgres@127\.0\.0\.1:5432\/fs_test_\w+: connected, \d+ migration\(s\) applied, none pending$/),
        expect.stringMatching(/^✓ redis: redis:\/\/127\.0\.0\.1:6379.*: PONG$/),
      ]);
      expect(r.code).toBe(0);
      expect(r.stderr).not.toMatch(/ELIFECYCLE|ERR_PNPM/);
      // One small page per form: Kobo limit=1, ODK $top=1, and the ODK session ended.
      expect(kobo.requests.filter((q) => q.path.endsWith('/data/')).map((q) => q.query.limit)).toEqual(['1']);
      expect(odk.requests.filter((q) => q.path.includes('.svc/Submissions')).map((q) => q.query.$top)).toEqual(['1']);
      expect(odk.openSessions()).toBe(0);
    });

    it('a wrong Kobo token: ✗ naming KOBO_TOKEN and the key, the other checks still ✓, exit 1', async () => {
      const r = await fieldsync(['check'], { ...env, KOBO_TOKEN: 'not-the-token' });
      const out = lines(r.stdout);
      expect(out).toHaveLength(5);
      expect(out[1]).toMatch(/^✗ source kobo-eu: Kobo token refused \(401: .*\) — fix KOBO_TOKEN \(sources\[0\]\.token\)$/);
      expect(out.filter((l) => l.startsWith('✓'))).toHaveLength(4);
      expect(r.code).toBe(1);
    });

    it('a wrong ODK password: ✗ naming ODK_PASSWORD and the key, exit 1', async () => {
      const r = await fieldsync(['check'], { ...env, ODK_PASSWORD: 'wrong-password' });
      const out = lines(r.stdout);
      expect(out).toHaveLength(5);
      expect(out[2]).toMatch(/^✗ source odk: ODK login refused \(401\.2: Could not authenticate with the provided credentials\.\) — fix ODK_PASSWORD \(sources\[1\]\.auth\.session\.email\/password\)$/);
      expect(out.filter((l) => l.startsWith('✓'))).toHaveLength(4);
      expect(r.code).toBe(1);
    });

    it('an unreachable database and Redis: ✗ naming DATABASE_URL and REDIS_URL, exit 1', async () => {
      const r = await fieldsync(['check'], { ...env, DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/x', REDIS_URL: 'redis://127.0.0.1:1' });
      const out = lines(r.stdout);
      expect(out).toHaveLength(5);
      expect(out[3]).toMatch(/^✗ database: postgresql at postgresql:\/\/postgres@127\.0\.0\.1:1\/x unreachable: ECONNREFUSED.* — fix DATABASE_URL$/);
      expect(out[4]).toMatch(/^✗ redis: redis:\/\/127\.0\.0\.1:1 unreachable: .*ECONNREFUSED.* — fix REDIS_URL$/);
      expect(r.code).toBe(1);
    });

    it('an unknown form and an unreachable server: ✗ naming sources[i].forms and sources[i].baseUrl', async () => {
      const file = path.join(dir, 'bad-places.yaml');
      writeFileSync(file, `sources:
  - id: kobo-eu
    kind: kobo
    baseUrl: ${kobo.url}
    token: "\${KOBO_TOKEN}"
    forms: [${kobo.assetUids[0]}, noSuchAsset]
  - id: odk
    kind: odk
    baseUrl: "\${ODK_URL}"
    projectId: 1
    forms: '*'
    auth:
      session: { email: a@example.org, password: "\${ODK_PASSWORD}" }
`);
      const r = await fieldsync(['check'], { ...env, FIELDSYNC_CONFIG: file, ODK_URL: 'http://127.0.0.1:1' });
      const out = lines(r.stdout);
      expect(out[1]).toBe(`✗ source kobo-eu: form noSuchAsset not found (HTTP 404 at ${kobo.url}) — fix sources[0].forms`);
      expect(out[2]).toBe('✗ source odk: http://127.0.0.1:1 unreachable: ECONNREFUSED — fix ODK_URL (sources[1].baseUrl)');
      expect(r.code).toBe(1);
    });

    it('an unset secret is a config error: ✗ naming the variable and the key, exit 2', async () => {
      const r = await fieldsync(['check'], { ...env, KOBO_TOKEN: '' });
      const out = lines(r.stdout);
      expect(out[0]).toMatch(/^✗ config: sources\[0\]\.token: environment variable KOBO_TOKEN is not set \(in .*fieldsync\.config\.yaml\) — fix KOBO_TOKEN \(sources\[0\]\.token\)$/);
      // The database and Redis are still tried.
      expect(out.slice(1).map((l) => l.slice(0, 11))).toEqual(['✓ database:', '✓ redis: re']);
      expect(r.code).toBe(2);
    });
  });

  describe('usage', () => {
    const VERBS = [['demo'], ['test'], ['check'], ['status'], ['migrate'], ['start'], ['sync'], ['replay'], ['tables']];
    it('--help works on every verb (exit 0, its usage line on stdout)', async () => {
      const results = await Promise.all(VERBS.map((v) => fieldsync([...v, '--help'], env)));
      results.forEach((r, i) => {
        expect({ verb: VERBS[i]![0], code: r.code, first: r.stdout.split('\n')[0] }).toEqual({ verb: VERBS[i]![0], code: 0, first: expect.stringMatching(new RegExp(`^usage: fieldsync ${VERBS[i]![0]}\\b`)) });
        expect(r.stderr).toBe('');
      });
      const top = await fieldsync(['--help'], env);
      expect(top.code).toBe(0);
      for (const [v] of VERBS) expect(top.stdout).toMatch(new RegExp(`^  ${v}\\b`, 'm'));
    });

    it('an unknown verb, or a bad option, exits 2 with a usage line and no pnpm noise', async () => {
      const r = await fieldsync(['frobnicate'], env);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual(['fieldsync: unknown verb "frobnicate"', expect.stringMatching(/^usage: fieldsync <verb>/)]);
      const bad = await fieldsync(['sync', '--nope'], env);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^sync: Unknown option '--nope'.*\nusage: fieldsync sync /s);
      const start = await fieldsync(['start', 'worker'], env);
      expect(start.code).toBe(2);
      expect(start.stderr).toMatch(/start: unknown app "worker" \(one of ingress, poller, loader\)/);
      for (const x of [r, bad, start]) expect(x.stdout + x.stderr).not.toMatch(/ELIFECYCLE|ERR_PNPM/);
    });
  });

  it('status after a small sync: a row per form with its run, rows and dead letters', async () => {
    // A real loader (./fieldsync start loader) stores what ./fieldsync sync enqueues.
    const loader = spawn(FIELDSYNC, ['start', 'loader'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let loaderErr = '';
    loader.stderr.on('data', (b) => (loaderErr += b));
    const loaderExit = new Promise<number | null>((r) => loader.on('exit', (code) => r(code)));
    try {
      const sync = await fieldsync(['sync', '--source', 'kobo-eu'], env);
      expect(sync.code, sync.stderr).toBe(0);
      expect(JSON.parse(lines(sync.stdout).pop()!)).toMatchObject({ source: 'kobo-eu', form: kobo.assetUids[0], mode: 'poll', fetched: 30, enqueued: 30 });
      const deadline = Date.now() + 30_000;
      while ((await t.db.prisma.submission.count({ where: { sourceId: 'kobo-eu' } })) < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await recordDeadLetter(t.db, { queue: 'ingest', jobName: 'ingest-batch', sourceId: 'odk', formId: HOUSEHOLD_FORM.xmlFormId, payload: { submissions: [] }, error: 'boom', attempts: 8 });
      await t.db.prisma.submission.updateMany({ where: { sourceId: 'kobo-eu', key: '1' }, data: { deleted: true } });
    } finally {
      loader.kill('SIGTERM');
    }
    expect(await loaderExit, loaderErr).toBe(0);

    const r = await fieldsync(['status'], env);
    expect(r.code, r.stderr).toBe(0);
    const out = lines(r.stdout);
    expect(out[0]).toMatch(/^SOURCE\/FORM\s+KIND\s+LAST POLL\s+LAST SWEEP\s+LAST OK\s+ROWS live\/del\s+DEAD\s+NEXT POLL\s+CURSOR$/);
    expect(out[1]).toMatch(new RegExp(`^kobo-eu/${kobo.assetUids[0]}\\s+kobo\\s+\\d+s ago ok 30/30 \\d+\\.\\ds\\s+-\\s+\\d+s ago\\s+29/1\\s+0\\s+-\\s+\\{"lastId":30`));
    // Never synced, one dead letter.
    expect(out[2]).toMatch(new RegExp(`^odk/${HOUSEHOLD_FORM.xmlFormId}\\s+odk\\s+-\\s+-\\s+-\\s+0/0\\s+1\\s+-\\s+-$`));
    expect(out).toHaveLength(3);

    const json = await fieldsync(['status', '--json'], env);
    expect(JSON.parse(json.stdout).sources.map((s: { id: string; forms: { rows: unknown; deadLetters: number }[] }) => [s.id, s.forms[0]!.rows, s.forms[0]!.deadLetters])).toEqual([
      ['kobo-eu', { live: 29, deleted: 1 }, 0],
      ['odk', { live: 0, deleted: 0 }, 1],
    ]);
  });
});
