/**
 * PostgreSQL migration diff, offline: Prisma's WebAssembly schema engine
 * (`@prisma/schema-engine-wasm`, the same engine `prisma migrate` runs) diffs the
 * state the committed migrations produce against `prisma/postgresql/schema.prisma`.
 * See shared/notes/prisma-offline.md for why `prisma migrate dev` cannot run here.
 *
 * In packages/db (or `pnpm --filter @fieldsync/db migration:diff …` from the root):
 *   pnpm migration:diff                  print the SQL that brings the migrations up to the schema
 *   pnpm migration:diff --name add_foo   write prisma/postgresql/migrations/<UTC YYYYMMDDHHMMSS>_add_foo/migration.sql
 *   pnpm migration:diff --check          exit 1 when the committed migrations do not produce the schema
 * Exit codes: 0 ok, 1 --check found a difference, 2 usage or engine/database error.
 *
 * Options:
 *   --from-empty          diff from an empty database instead of the migrations
 *                         (the engine then also emits CREATE SCHEMA "public")
 *   --from-schema <file>  diff from another schema file, e.g. one taken from git
 *   --schema <file>       target schema (default prisma/postgresql/schema.prisma)
 *   --migrations <dir>    migrations directory (default prisma/postgresql/migrations)
 *   --shadow-url <url>    PostgreSQL server the engine connects to (it does so in every
 *                         mode) and where a throwaway shadow database is created to
 *                         replay the migrations. Default: $SHADOW_DATABASE_URL, $PG_ADMIN_URL,
 *                         $TEST_PG_URL, else postgresql://postgres@127.0.0.1:5432/postgres.
 *                         The shadow database is dropped afterwards; nothing else is written.
 *
 * Diffing "from migrations" is what `prisma migrate dev` / `migrate diff --from-migrations`
 * do: the engine replays every migration.sql on a shadow database, introspects it and
 * diffs that against the schema. Two defects of @prisma/adapter-pg 7.10.0 are worked
 * around below (both confined to this script):
 *   - its connectToShadowDb() drops the shadow database while its own pool still holds
 *     a connection (the DROP fails and the database is left behind), and lets a
 *     connectionString override the database name; we provide the shadow database
 *     ourselves and drop it WITH (FORCE) after its pool is closed;
 *   - it rejects columns of PostgreSQL's internal `"char"` type (OID 18), which the
 *     engine's introspection reads from pg_catalog ("Column type 'char' could not be
 *     deserialized"); the value arrives as a one-character string, so we report those
 *     columns as `text` (OID 25), which is what the engine expects to read.
 * The shadow database also runs each migration.sql as one multi-statement query (one
 * implicit transaction), like packages/db/src/migrate.ts does, instead of the adapter's
 * executeScript(), which splits on every `;`.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import { bindMigrationAwareSqlAdapterFactory, type SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import type { DiffParams, DiffTarget, MigrationList, SchemaEngine } from '@prisma/schema-engine-wasm/schema_engine_bg';

const require = createRequire(import.meta.url);
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const DEFAULT_SCHEMA = path.join(REPO, 'prisma/postgresql/schema.prisma');
const DEFAULT_MIGRATIONS = path.join(REPO, 'prisma/postgresql/migrations');
const EMPTY_MARKER = '-- This is an empty migration.';
const PG_CHAR_OID = 18;
const PG_TEXT_OID = 25;

// ---------------------------------------------------------------- engine loading

type Glue = typeof import('@prisma/schema-engine-wasm/schema_engine_bg');

interface PanicRegistry { message: string; set_message(m: string): void; get(): string }

/**
 * Under Node 20 the package's entry point `import`s a .wasm file, which Node cannot
 * load; instantiate the module by hand and hand its exports to the JS glue.
 */
async function loadSchemaEngine(): Promise<Glue> {
  // The glue reports a Rust panic through this global; without it the message is lost.
  const registry: PanicRegistry = {
    message: '',
    set_message(m: string) { this.message = m; },
    get() { return this.message; },
  };
  (globalThis as { PRISMA_WASM_PANIC_REGISTRY?: PanicRegistry }).PRISMA_WASM_PANIC_REGISTRY = registry;
  const glue: Glue = await import('@prisma/schema-engine-wasm/schema_engine_bg');
  const wasmFile = path.join(path.dirname(require.resolve('@prisma/schema-engine-wasm/schema_engine_bg')), 'schema_engine_bg.wasm');
  // (lib "ES2023" has no WebAssembly typings; this is the one call we need)
  const wasm = (globalThis as unknown as { WebAssembly: { instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: Record<string, unknown> } }> } }).WebAssembly;
  const { instance } = await wasm.instantiate(await readFile(wasmFile), { './schema_engine_bg.js': glue });
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports as unknown as { __wbindgen_start(): void }).__wbindgen_start();
  return glue;
}

function panicMessage(): string {
  return (globalThis as { PRISMA_WASM_PANIC_REGISTRY?: PanicRegistry }).PRISMA_WASM_PANIC_REGISTRY?.message ?? '';
}

// ---------------------------------------------------------------- driver adapter

/** A pg pool whose results describe `"char"` columns as `text` (see the header). */
class CharAsTextPool extends pg.Pool {
  // pg's query() is heavily overloaded; the adapter only uses the promise form.
  override query(...args: unknown[]): never {
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    if (!(result instanceof Promise)) return result as never;
    return result.then((r: pg.QueryResult | pg.QueryResult[]) => {
      for (const one of Array.isArray(r) ? r : [r]) {
        for (const f of one?.fields ?? []) if (f.dataTypeID === PG_CHAR_OID) f.dataTypeID = PG_TEXT_OID;
      }
      return r;
    }) as never;
  }
}

/** Discrete connection fields, so that nothing can override the database name later. */
function poolConfig(url: string, database?: string): pg.PoolConfig {
  const u = new URL(url);
  return {
    host: decodeURIComponent(u.hostname),
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username) || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database: database ?? (decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres'),
    max: 2,
    connectionTimeoutMillis: 10_000,
  };
}

interface Adapter { dispose(): Promise<void>; executeScript(script: string): Promise<void>; executeRaw(q: { sql: string; args: unknown[]; argTypes: unknown[] }): Promise<number> }

/** The migration-aware adapter factory the engine gets, with a shadow database we manage. */
function adapterFactory(serverUrl: string) {
  const main = new CharAsTextPool(poolConfig(serverUrl));
  main.on('error', () => {});
  const base = new PrismaPg(main);
  const shadows = new Set<string>();
  const dropShadow = async (name: string) => {
    await main.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    shadows.delete(name);
  };
  const factory = {
    provider: base.provider,
    adapterName: base.adapterName,
    connect: () => base.connect(),
    async connectToShadowDb() {
      const name = `prisma_migrate_shadow_db_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
      await main.query(`CREATE DATABASE "${name}"`);
      shadows.add(name);
      const pool = new CharAsTextPool(poolConfig(serverUrl, name));
      pool.on('error', () => {});
      const adapter = (await new PrismaPg(pool).connect()) as unknown as Adapter;
      const release = adapter.dispose.bind(adapter);
      // One multi-statement simple query per migration file: no `;` splitting, one implicit transaction.
      adapter.executeScript = async (script) => void (await adapter.executeRaw({ sql: script, args: [], argTypes: [] }));
      adapter.dispose = async () => {
        await release();
        await pool.end();
        await dropShadow(name);
      };
      return adapter;
    },
  };
  return {
    bound: bindMigrationAwareSqlAdapterFactory(factory as unknown as SqlMigrationAwareDriverAdapterFactory),
    /** Drops any shadow database the engine did not release, then closes the pool. */
    async close() {
      for (const name of [...shadows]) await dropShadow(name).catch(() => {});
      await main.end();
    },
  };
}

// ---------------------------------------------------------------- inputs

async function readMigrations(dir: string): Promise<MigrationList> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory() && existsSync(path.join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort();
  const lockPath = path.join(dir, 'migration_lock.toml');
  return {
    baseDir: dir,
    lockfile: { path: 'migration_lock.toml', content: existsSync(lockPath) ? await readFile(lockPath, 'utf8') : null },
    shadowDbInitScript: '',
    migrationDirectories: await Promise.all(
      names.map(async (name) => ({
        path: name,
        migrationFile: { path: 'migration.sql', content: { tag: 'ok' as const, value: await readFile(path.join(dir, name, 'migration.sql'), 'utf8') } },
      })),
    ),
  };
}

/** Prisma's migration folder name: UTC `YYYYMMDDHHMMSS_name`, after every existing one. */
function migrationFolderName(name: string, existing: string[], now = new Date()): string {
  const slug = name.trim().replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 200);
  if (!slug) throw new Error(`--name ${JSON.stringify(name)}: needs at least one letter or digit`);
  const stamp = (d: Date) => d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  let at = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const last = existing.map((n) => n.slice(0, 14)).filter((s) => /^\d{14}$/.test(s)).sort().at(-1);
  while (last && stamp(at) <= last) at = new Date(at.getTime() + 1000); // keep folder order = history order
  return `${stamp(at)}_${slug}`;
}

// ---------------------------------------------------------------- main

class UsageError extends Error {}

const USAGE = 'usage: tsx scripts/pg-migration-diff.ts [--check | --name <name>] [--from-empty | --from-schema <file>] [--schema <file>] [--migrations <dir>] [--shadow-url <url>]';

const OPTIONS = {
  check: { type: 'boolean', default: false },
  name: { type: 'string' },
  'from-empty': { type: 'boolean', default: false },
  'from-schema': { type: 'string' },
  schema: { type: 'string', default: DEFAULT_SCHEMA },
  migrations: { type: 'string', default: DEFAULT_MIGRATIONS },
  'shadow-url': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

async function main(): Promise<number> {
  let parsed;
  try {
    // `pnpm migration:diff -- --check` passes the `--` through; it separates nothing here.
    parsed = parseArgs({ args: process.argv.slice(2).filter((a) => a !== '--'), options: OPTIONS, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), { cause: err });
  }
  const opt = parsed.values;
  if (opt.help) { console.log(USAGE); return 0; }
  if (opt.check && opt.name !== undefined) throw new UsageError('--check and --name exclude each other');
  if (opt['from-empty'] && opt['from-schema']) throw new UsageError('--from-empty and --from-schema exclude each other');
  if ((opt['from-empty'] || opt['from-schema']) && (opt.check || opt.name !== undefined)) {
    throw new UsageError('--check and --name always diff from the migrations directory');
  }

  const schemaPath = path.resolve(opt.schema);
  const migrationsDir = path.resolve(opt.migrations);
  const schema = await readFile(schemaPath, 'utf8');
  if (!/provider\s*=\s*"postgresql"/.test(schema)) throw new Error(`${schemaPath}: not a PostgreSQL schema (the wasm engine has no MySQL connector)`);

  let from: DiffTarget;
  if (opt['from-empty']) from = { tag: 'empty' };
  else if (opt['from-schema']) {
    const p = path.resolve(opt['from-schema']);
    from = { tag: 'schemaDatamodel', files: [{ path: p, content: await readFile(p, 'utf8') }] };
  } else {
    const list = await readMigrations(migrationsDir);
    const lock = list.lockfile.content;
    if (lock !== null && !/provider\s*=\s*"postgresql"/.test(lock)) throw new Error(`${migrationsDir}/migration_lock.toml: provider is not "postgresql"`);
    from = { tag: 'migrations', ...list };
  }

  const serverUrl = opt['shadow-url'] ?? process.env.SHADOW_DATABASE_URL ?? process.env.PG_ADMIN_URL ?? process.env.TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const glue = await loadSchemaEngine();
  const adapter = adapterFactory(serverUrl);
  let engine: SchemaEngine | undefined;
  let sql: string;
  let changed: boolean;
  try {
    engine = await glue.SchemaEngine.new({ datamodels: [[schemaPath, schema]] }, (_log: string) => {}, adapter.bound);
    const params: DiffParams = {
      from,
      to: { tag: 'schemaDatamodel', files: [{ path: schemaPath, content: schema }] },
      script: true,
      exitCode: true, // 2 when the diff is not empty
      filters: { externalTables: [], externalEnums: [] },
    };
    const result = await engine.diff(params);
    sql = result.stdout ?? '';
    changed = result.exitCode === 2 || (sql.trim() !== '' && sql.trim() !== EMPTY_MARKER);
  } catch (err) {
    const panic = panicMessage();
    throw new Error(`schema engine: ${err instanceof Error ? err.message : String(err)}${panic ? `\npanic: ${panic}` : ''}`, { cause: err });
  } finally {
    engine?.free();
    await adapter.close(); // engine.free() does not end the pool
  }

  const rel = (p: string) => path.relative(process.cwd(), p) || '.';
  if (opt.check) {
    if (!changed) {
      console.log(`${rel(migrationsDir)}: the committed migrations produce ${rel(schemaPath)}`);
      return 0;
    }
    console.error(`${rel(migrationsDir)}: the committed migrations do NOT produce ${rel(schemaPath)}; missing SQL:\n\n${sql}`);
    console.error('Create it with: pnpm --filter @fieldsync/db migration:diff --name <name>');
    return 1;
  }
  if (opt.name !== undefined) {
    if (!changed) {
      console.log('No schema changes: no migration written.');
      return 0;
    }
    const existing = (await readdir(migrationsDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    const folder = path.join(migrationsDir, migrationFolderName(opt.name, existing));
    await mkdir(folder);
    const file = path.join(folder, 'migration.sql');
    await writeFile(file, sql);
    console.log(`wrote ${rel(file)}\n\n${sql}`);
    return 0;
  }
  process.stdout.write(sql.endsWith('\n') ? sql : `${sql}\n`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  if (err instanceof UsageError) console.error(USAGE);
  process.exitCode = 2;
}
