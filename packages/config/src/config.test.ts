import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig, loadEnv, parseConfig, sourceForms, type FieldsyncConfig } from './index.ts';

const ENV = { KOBO_TOKEN: 'kobo-secret-token', KOBO_HOOK_PASSWORD: 'hook-pw', ODK_PASSWORD: 'odk-pw' };

const YAML_CONFIG = `
sources:
  - id: kobo-eu
    kind: kobo
    baseUrl: https://eu.kobotoolbox.org
    token: \${KOBO_TOKEN}
    forms: [aAbBcC, dDeEfF]
    poll: { every: 5m }
    webhook:
      basic: { username: kobo, password: '\${KOBO_HOOK_PASSWORD}' }
  - id: odk
    kind: odk
    baseUrl: https://central.example.org
    projectId: 1
    forms: '*'
    auth:
      session: { email: bot@example.org, password: '\${ODK_PASSWORD}' }
    poll: { cron: '*/2 * * * *', tz: Africa/Nairobi }
`;

/** The same configuration as JSON. */
const JSON_CONFIG = JSON.stringify({
  sources: [
    {
      id: 'kobo-eu', kind: 'kobo', baseUrl: 'https://eu.kobotoolbox.org', token: '${KOBO_TOKEN}', forms: ['aAbBcC', 'dDeEfF'],
      poll: { every: '5m' }, webhook: { basic: { username: 'kobo', password: '${KOBO_HOOK_PASSWORD}' } },
    },
    {
      id: 'odk', kind: 'odk', baseUrl: 'https://central.example.org', projectId: 1, forms: '*',
      auth: { session: { email: 'bot@example.org', password: '${ODK_PASSWORD}' } }, poll: { cron: '*/2 * * * *', tz: 'Africa/Nairobi' },
    },
  ],
});

const HTTP_DEFAULTS = { timeoutMs: 30_000, retries: 5, backoffMs: 1_000, maxBackoffMs: 60_000 };

/** A minimal Kobo source as YAML list item lines; `extra` is appended inside the item. */
const kobo = (id = 'kobo', extra = '') =>
  `  - id: ${id}\n    kind: kobo\n    baseUrl: https://kf.kobotoolbox.org\n    token: \${KOBO_TOKEN}\n    forms: [a]\n${extra}`;
const odk = (baseUrl = 'https://central.example.org', auth = 'session', extra = '') =>
  `  - id: odk\n    kind: odk\n    baseUrl: ${baseUrl}\n    projectId: 1\n    forms: '*'\n    auth:\n      ${auth}:\n        email: bot@example.org\n        password: \${ODK_PASSWORD}\n${extra}`;
const config = (...sources: string[]) => `sources:\n${sources.join('')}`;

/** The ConfigError message for text (fails the test if it parses). */
function errorOf(text: string, file = 'fieldsync.config.yaml', env: NodeJS.ProcessEnv = ENV): string {
  try {
    parseConfig(text, file, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError, but the config parsed');
}

/** The problem lines of a ConfigError: `<file>:\n  <path>: <message>\n  …`. */
function problems(message: string, file = 'fieldsync.config.yaml'): string[] {
  const [head, ...lines] = message.split('\n');
  expect(head).toBe(`${file}:`);
  return lines.map((l) => l.replace(/^ {2}/, ''));
}

describe('a valid configuration', () => {
  let parsed: FieldsyncConfig;

  it('parses from YAML with ${VAR}s resolved and defaults applied', () => {
    parsed = parseConfig(YAML_CONFIG, 'fieldsync.config.yaml', ENV);
    const [k, o] = parsed.sources;
    expect(k).toEqual({
      id: 'kobo-eu', kind: 'kobo', baseUrl: 'https://eu.kobotoolbox.org', token: 'kobo-secret-token', forms: ['aAbBcC', 'dDeEfF'],
      poll: { every: 300_000 },
      sweep: { every: 3_600_000 }, // default
      pageSize: 1000, batchSize: 1000, overlap: 300_000, http: HTTP_DEFAULTS, // defaults (overlap: 5 minutes)
      webhook: { basic: { username: 'kobo', password: 'hook-pw' } },
      tables: { enabled: true, names: {}, choiceColumns: false }, // default
    });
    expect(o).toEqual({
      id: 'odk', kind: 'odk', baseUrl: 'https://central.example.org', projectId: 1, forms: '*',
      auth: { session: { email: 'bot@example.org', password: 'odk-pw' } },
      poll: { cron: '*/2 * * * *', tz: 'Africa/Nairobi' },
      sweep: { every: 3_600_000 }, pageSize: 1000, batchSize: 1000, overlapMs: 2_000, http: HTTP_DEFAULTS, // defaults
      tables: { enabled: true, names: {}, choiceColumns: false },
    });
    expect(parsed.ingest).toEqual({ attempts: 8, backoffMs: 2_000, concurrency: 4 });
    expect(parsed.tables).toEqual({ enabled: true, schema: 'fieldsync', prefix: '' });
  });

  it('parses the same from JSON (a .json file is read as JSON)', () => {
    expect(parseConfig(JSON_CONFIG, '/etc/fieldsync/fieldsync.config.json', ENV)).toEqual(parsed);
    // JSON syntax errors are reported as JSON errors, with the file named
    expect(errorOf('{"sources": [', 'x.json')).toMatch(/^x\.json: cannot parse: /);
  });

  it('keeps explicit values and fills token-webhook defaults', () => {
    const c = parseConfig(config(kobo('k', `    pageSize: 250\n    http: { retries: 0 }\n    webhook: { token: '\${KOBO_HOOK_PASSWORD}' }\n`)) + 'ingest: { attempts: 3 }\n', 'f.yaml', ENV);
    expect(c.sources[0]).toMatchObject({ pageSize: 250, http: { ...HTTP_DEFAULTS, retries: 0 }, webhook: { token: 'hook-pw', header: 'x-fieldsync-token' } });
    expect(c.ingest).toEqual({ attempts: 3, backoffMs: 2_000, concurrency: 4 });
  });

  it('names the bad key of a typed-tables setting', () => {
    expect(errorOf(config(kobo('k', `    tables: { names: { aAbB: "Bad Name;" } }\n`)), 'f.yaml')).toMatch(/sources\[0\]\.tables\.names\.aAbB: a table name/);
    expect(errorOf(config(kobo()) + 'tables: { schema: "x-y" }\n', 'f.yaml')).toMatch(/tables\.schema: a schema name/);
  });

  it('interpolates ${VAR} in any string, not only secrets', () => {
    const c = parseConfig(config(kobo().replace('https://kf.kobotoolbox.org', '${KOBO_URL}/')), 'f.yaml', { ...ENV, KOBO_URL: 'https://kobo.example.org' });
    expect(c.sources[0]!.baseUrl).toBe('https://kobo.example.org/');
  });

  it('loadConfig reads the file FIELDSYNC_CONFIG names, and names it in errors', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-config-'));
    try {
      const file = path.join(dir, 'fieldsync.config.yaml');
      writeFileSync(file, YAML_CONFIG);
      vi.stubEnv('FIELDSYNC_CONFIG', file);
      expect(loadConfig(undefined, ENV)).toEqual(parsed);
      vi.unstubAllEnvs();
      expect(loadConfig(file, ENV)).toEqual(parsed);
      writeFileSync(file, YAML_CONFIG.replace('https://central.example.org', 'central.example.org'));
      expect(() => loadConfig(file, ENV)).toThrow(`${file}:\n  sources[1].baseUrl: Invalid URL`);
      const missing = path.join(dir, 'nope.yaml');
      expect(() => loadConfig(missing, ENV)).toThrow(new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read config file \\(ENOENT\\); set FIELDSYNC_CONFIG`));
    } finally {
      vi.unstubAllEnvs();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('configuration errors name the file and the exact key', () => {
  it('a bad URL', () => {
    expect(problems(errorOf(config(kobo(), odk('not a url'))))).toEqual(['sources[1].baseUrl: Invalid URL (use http:// or https://)']);
    expect(problems(errorOf(config(kobo(), odk('ftp://central.example.org'))))).toEqual(['sources[1].baseUrl: Invalid URL (use http:// or https://)']);
  });

  it("Kobo's overlap is a time window; a count of ids (its old meaning) is refused, not read as ms", () => {
    const overlapOf = (v: string) => (parseConfig(config(kobo('kobo', `    overlap: ${v}\n`)), 'f.yaml', ENV).sources[0] as { overlap: number }).overlap;
    expect(overlapOf('10m')).toBe(600_000);
    expect(overlapOf('0')).toBe(0);
    expect(problems(errorOf(config(kobo('kobo', '    overlap: 100\n'))))).toEqual([
      'sources[0].overlap: a time window such as "5m" is expected, got the number 100 (overlap used to count _ids; it is now measured in time)',
    ]);
    expect(problems(errorOf(config(kobo('kobo', '    overlap: soon\n'))))).toEqual(['sources[0].overlap: not a duration: "soon" (use e.g. "5m" or "30s", at most "24h")']);
  });

  it('an unknown key, at any depth', () => {
    expect(problems(errorOf(config(kobo('kobo', '    pollEvery: 5m\n'))))).toEqual(['sources[0].pollEvery: unknown key']);
    expect(problems(errorOf(`${config(kobo())}sourcez: []\n`))).toEqual(['sourcez: unknown key']);
    expect(problems(errorOf(config(kobo('kobo', '    webhook:\n      basic: { username: u, password: "${KOBO_HOOK_PASSWORD}", realm: x }\n')))))
      .toEqual(['sources[0].webhook.basic.realm: unknown key']);
  });

  it('a missing environment variable', () => {
    const msg = errorOf(config(kobo()), 'fieldsync.config.yaml', { ODK_PASSWORD: 'x' });
    expect(problems(msg)).toEqual(['sources[0].token: environment variable KOBO_TOKEN is not set']);
    // an empty variable counts as unset
    expect(problems(errorOf(config(kobo()), 'fieldsync.config.yaml', { KOBO_TOKEN: '' }))).toEqual(['sources[0].token: environment variable KOBO_TOKEN is not set']);
  });

  it('a literal secret is refused, and never echoed', () => {
    const literal = 'abcdef0123456789';
    const msg = errorOf(config(kobo().replace('${KOBO_TOKEN}', literal)));
    expect(problems(msg)).toEqual(['sources[0].token: secrets must come from the environment; write "${SOME_VAR}" instead of the value']);
    expect(msg).not.toContain(literal);
    expect(problems(errorOf(config(odk().replace('${ODK_PASSWORD}', 'hunter2'))))[0]).toMatch(/^sources\[0\]\.auth\.session\.password: secrets must come from the environment/);
    expect(problems(errorOf(config(kobo('kobo', '    webhook: { hmac: { secret: s3cr3t } }\n'))))[0]).toMatch(/^sources\[0\]\.webhook\.hmac\.secret: secrets must come from the environment/);
    expect(problems(errorOf(config(kobo().replace('${KOBO_TOKEN}', '123456'))))[0]).toMatch(/^sources\[0\]\.token: secrets must come from the environment/);
  });

  it('an invalid cron pattern', () => {
    expect(problems(errorOf(config(kobo('kobo', '    sweep: { cron: "61 * * * *" }\n'))))).toEqual(['sources[0].sweep.cron: not a valid cron expression']);
    expect(problems(errorOf(config(kobo('kobo', '    poll: { cron: "every hour" }\n'))))).toEqual(['sources[0].poll.cron: not a valid cron expression']);
  });

  it('both every and cron (or neither)', () => {
    expect(problems(errorOf(config(kobo('kobo', '    poll: { every: 5m, cron: "*/5 * * * *" }\n'))))).toEqual(['sources[0].poll: give exactly one of "every" or "cron"']);
    expect(problems(errorOf(config(kobo('kobo', '    poll: {}\n'))))).toEqual(['sources[0].poll: give exactly one of "every" or "cron"']);
  });

  it('a bad duration or time zone', () => {
    expect(problems(errorOf(config(kobo('kobo', '    poll: { every: 5 mins later }\n'))))).toEqual(['sources[0].poll.every: not a duration: "5 mins later" (use e.g. "30s", "5m", "1h" or milliseconds)']);
    expect(problems(errorOf(config(kobo('kobo', '    poll: { every: "" }\n'))))).toEqual(['sources[0].poll.every: not a duration: "" (use e.g. "30s", "5m", "1h" or milliseconds)']);
    expect(problems(errorOf(config(kobo('kobo', '    sweep: { cron: "0 * * * *", tz: Mars/Olympus_Mons }\n')))))
      .toEqual(['sources[0].sweep.tz: not a known IANA time zone (e.g. "UTC", "Africa/Nairobi")']);
  });

  it('a duplicate source id', () => {
    expect(problems(errorOf(config(kobo('dup'), kobo('other'), kobo('dup'))))).toEqual(['sources[2].id: duplicate source id "dup"']);
  });

  it('ODK HTTP Basic auth over plain http (HTTPS required; session auth is fine)', () => {
    const lines = problems(errorOf(config(odk('http://central.example.org', 'basic'))));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sources\[0\]\.auth\.basic: .*HTTPS/);
    expect(parseConfig(config(odk('https://central.example.org', 'basic')), 'f.yaml', ENV).sources[0]).toMatchObject({ auth: { basic: { password: 'odk-pw' } } });
    expect(parseConfig(config(odk('http://127.0.0.1:8383', 'session')), 'f.yaml', ENV).sources[0]!.baseUrl).toBe('http://127.0.0.1:8383');
    // an unparsable URL with basic auth is reported, not thrown as a TypeError
    expect(problems(errorOf(config(odk('central', 'basic'))))).toEqual(['sources[0].baseUrl: Invalid URL (use http:// or https://)']);
  });

  it('the variant of a union the input has the shape of, or the variants', () => {
    expect(problems(errorOf(config(kobo('kobo', '    webhook:\n      basic: { username: u }\n')))))
      .toEqual(['sources[0].webhook.basic.password: Invalid input: expected string, received undefined']);
    expect(problems(errorOf(config(kobo('kobo', '    webhook: {}\n'))))).toEqual(['sources[0].webhook: expected exactly one of "token", "basic", "hmac"']);
    expect(problems(errorOf(config(odk('https://central.example.org', 'sesion'))))).toEqual(['sources[0].auth: expected exactly one of "session", "basic"']);
    expect(problems(errorOf(config(kobo().replace('kind: kobo', 'kind: airtable'))))[0]).toMatch(/^sources\[0\]\.kind: /);
  });

  it('every problem at once, and YAML syntax errors with their line', () => {
    expect(problems(errorOf(config(kobo('kobo', '    pageSize: 0\n    batchSize: 1.5\n'))))).toEqual([
      'sources[0].pageSize: Too small: expected number to be >=1',
      'sources[0].batchSize: Invalid input: expected int, received number',
    ]);
    expect(errorOf('sources: [\n')).toMatch(/^fieldsync\.config\.yaml: cannot parse: .*line 2/);
    expect(errorOf('sources: []\nsources: []\n')).toMatch(/^fieldsync\.config\.yaml: cannot parse: Map keys must be unique/);
    expect(problems(errorOf(''))).toEqual(['(root): Invalid input: expected object, received null']);
  });
});

describe('infrastructure environment', () => {
  const envError = (env: NodeJS.ProcessEnv): string => {
    try {
      loadEnv(env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('applies defaults', () => {
    expect(loadEnv({ DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/fieldsync' })).toEqual({
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/fieldsync',
      REDIS_URL: 'redis://127.0.0.1:6379',
      FIELDSYNC_QUEUE_PREFIX: 'fieldsync',
      INGRESS_PORT: 3000,
      INGRESS_BODY_LIMIT: '1mb',
      LOG_LEVEL: 'info',
      SHUTDOWN_TIMEOUT_S: 30,
    });
    expect(loadEnv({ DATABASE_URL: 'mariadb://root@db/fs', INGRESS_PORT: '8080', REDIS_URL: 'rediss://r:6380' })).toMatchObject({ INGRESS_PORT: 8080, REDIS_URL: 'rediss://r:6380' });
  });

  it('treats an empty variable as unset (an empty INGRESS_PORT is not port 0)', () => {
    expect(loadEnv({ DATABASE_URL: 'mysql://root@db/fs', INGRESS_PORT: '', LOG_LEVEL: '' })).toMatchObject({ INGRESS_PORT: 3000, LOG_LEVEL: 'info' });
  });

  it('a bad or missing DATABASE_URL names DATABASE_URL, without echoing its value', () => {
    const msg = envError({ DATABASE_URL: 'mongodb://user:pa55word@db/fs' });
    expect(msg).toBe('environment:\n  DATABASE_URL: must start with postgresql://, mysql:// or mariadb://');
    expect(msg).not.toContain('pa55word');
    expect(envError({})).toMatch(/^environment:\n {2}DATABASE_URL: /);
    expect(envError({ DATABASE_URL: 'postgresql://db/fs', REDIS_URL: 'http://r', INGRESS_PORT: 'x' }).split('\n').slice(1).map((l) => l.trim().split(':')[0]))
      .toEqual(['REDIS_URL', 'INGRESS_PORT']);
  });
});

describe('fieldsync.config.example.yaml', () => {
  const file = fileURLToPath(new URL('../../../fieldsync.config.example.yaml', import.meta.url));
  const text = readFileSync(file, 'utf8');
  const env = { KOBO_TOKEN: 't', KOBO_HOOK_PASSWORD: 'p', ODK_PASSWORD: 'o', SOCRATA_APP_TOKEN: 's', CALLS_PASSWORD: 'c' };

  it('parses, with the environment variables it references set', () => {
    const c = loadConfig(file, env);
    expect(c.sources.map((s) => [s.id, s.kind])).toEqual([['kobo-eu', 'kobo'], ['odk', 'odk'], ['seattle', 'socrata'], ['calls', 'rest']]);
    const [k, o, so] = c.sources;
    const rest = c.sources[3];
    expect(rest).toMatchObject({ auth: { login: { password: 'c', tokenPath: 'data.access_token' } }, dictionarySchedule: { every: 21_600_000 } });
    expect(rest && sourceForms(rest)).toEqual(['agents', 'tags', 'conversations']);
    expect(so).toMatchObject({ datasets: ['jguv-t9rb'], appToken: 's', pageSize: 10_000, updatedColumn: ':updated_at', sweep: { every: 86_400_000 } });
    expect(k).toMatchObject({ token: 't', poll: { every: 300_000 }, webhook: { basic: { password: 'p' } } });
    expect(sourceForms(k!)).toHaveLength(2);
    expect(k!.sweep.cron ?? k!.sweep.every).toBeTruthy();
    expect(o).toMatchObject({ projectId: 1, forms: '*', poll: { every: 60_000 }, auth: { session: { password: 'o' } } });
  });

  it('references only those variables, and refuses to load without them', () => {
    const yamlOnly = text.split('\n').map((l) => l.replace(/(^|\s)#.*$/, '')).join('\n'); // without comments
    expect([...new Set([...yamlOnly.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]))].sort()).toEqual(Object.keys(env).sort());
    expect(() => loadConfig(file, {})).toThrow(/sources\[0\]\.token: environment variable KOBO_TOKEN is not set/);
  });

  it('comments every key', () => {
    const lines = text.split('\n');
    const uncommented = lines.filter((line, i) => {
      if (!/^\s*(- )?[A-Za-z_]\w*:/.test(line) || line.includes('#')) return false;
      const prev = lines.slice(0, i).reverse().find((l) => l.trim() !== '');
      return !prev?.trim().startsWith('#');
    });
    expect(uncommented).toEqual([]);
  });
});

describe('YAML traps', () => {
  it('an unquoted ${VAR} inside a flow map gets a hint to quote it', () => {
    const text = 'sources:\n  - id: k\n    kind: kobo\n    baseUrl: https://kf.example.org\n    token: "${T}"\n    forms: [a]\n    webhook: { basic: { username: u, password: ${P} } }\n';
    expect(() => parseConfig(text, 'x.yaml', { T: 't', P: 'p' })).toThrow(/x\.yaml: cannot parse[\s\S]*hint: inside \{ \} or \[ \], quote environment references/);
  });
});
