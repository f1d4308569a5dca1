import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { FieldsyncConfig } from './schema.ts';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type PathKey = string | number;

/** `sources[0].auth.token` */
export function formatPath(p: readonly PropertyKey[]): string {
  return p.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)), '');
}

const SECRET_KEYS = new Set(['token', 'password', 'secret']);
const REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Replaces `${VAR}` in every string from env. Collects the problems with the
 * key path, and refuses literal secrets: they belong in the environment.
 */
function interpolate(node: unknown, env: NodeJS.ProcessEnv, at: PathKey[], problems: string[]): unknown {
  if (typeof node === 'string') {
    const key = at[at.length - 1];
    const fromEnv = node.match(REF);
    if (typeof key === 'string' && SECRET_KEYS.has(key) && !fromEnv) {
      problems.push(`${formatPath(at)}: secrets must come from the environment; write "\${SOME_VAR}" instead of the value`);
      return node;
    }
    return node.replace(REF, (_, name: string) => {
      const v = env[name];
      if (v === undefined || v === '') {
        problems.push(`${formatPath(at)}: environment variable ${name} is not set`);
        return '';
      }
      return v;
    });
  }
  if ((typeof node === 'number' || typeof node === 'boolean') && SECRET_KEYS.has(String(at[at.length - 1]))) {
    problems.push(`${formatPath(at)}: secrets must come from the environment; write "\${SOME_VAR}" instead of the value`);
    return node;
  }
  if (Array.isArray(node)) return node.map((v, i) => interpolate(v, env, [...at, i], problems));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolate(v, env, [...at, k], problems)]));
  }
  return node;
}

/** Issue codes at a union branch's own level that mean "the input does not have this branch's shape". */
const SHAPE_MISMATCH = new Set(['invalid_type', 'invalid_value', 'unrecognized_keys']);

/**
 * One line per problem, each naming the full key path. Unknown keys are reported
 * at their own path; for a union (webhook/auth variants), the issues of the one
 * variant the input has the shape of, else the variants' keys.
 */
function describeIssues(issues: readonly z.core.$ZodIssue[], base: PropertyKey[] = []): string[] {
  return issues.flatMap((i) => {
    const at = [...base, ...i.path];
    const where = formatPath(at) || '(root)';
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${formatPath([...at, k])}: unknown key`);
    if (i.code === 'invalid_union' && i.errors.length > 0) {
      const fitting = i.errors.filter((branch) => !branch.some((e) => e.path.length === 0 && SHAPE_MISMATCH.has(e.code)));
      if (fitting.length === 1) return describeIssues(fitting[0]!, at);
      // Object variants told apart by one key: list those keys.
      const keys = i.errors.map((branch) => branch.find((e) => e.path.length === 1 && e.code === 'invalid_type')?.path[0]);
      if (keys.every((k) => typeof k === 'string')) return [`${where}: expected exactly one of ${keys.map((k) => `"${String(k)}"`).join(', ')}`];
    }
    return [`${where}: ${i.message}`];
  });
}

/** Parses and validates config text; errors name the file and every bad key. */
export function parseConfig(text: string, file = 'fieldsync.config', env: NodeJS.ProcessEnv = process.env): FieldsyncConfig {
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    // A common trap: `${VAR}` unquoted inside a `{ … }` map is YAML syntax, not text.
    const hint = /[{[][^\n}\]]*[^"'\s]?\$\{/.test(text) ? '\n  hint: inside { } or [ ], quote environment references: password: "${MY_SECRET}"' : '';
    throw new ConfigError(`${file}: cannot parse: ${(err as Error).message}${hint}`);
  }
  const problems: string[] = [];
  const resolved = interpolate(raw, env, [], problems);
  if (problems.length) throw new ConfigError(`${file}:\n  ${problems.join('\n  ')}`);
  const parsed = FieldsyncConfig.safeParse(resolved);
  if (!parsed.success) throw new ConfigError(`${file}:\n  ${describeIssues(parsed.error.issues).join('\n  ')}`);
  return parsed.data;
}

/** Loads the file named by FIELDSYNC_CONFIG (or the given path). */
export function loadConfig(file = process.env.FIELDSYNC_CONFIG ?? 'fieldsync.config.yaml', env: NodeJS.ProcessEnv = process.env): FieldsyncConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(`${abs}: cannot read config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); set FIELDSYNC_CONFIG to its path`);
  }
  return parseConfig(text, abs, env);
}
