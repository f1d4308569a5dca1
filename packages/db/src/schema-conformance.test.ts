/**
 * Do the committed migrations build what the Prisma schemas describe?
 *
 * For each provider, the committed migrations are applied to a fresh database with
 * our runner, the result is read back from information_schema (and pg_catalog for
 * PostgreSQL indexes, which information_schema does not list), and compared with the
 * models of prisma/<provider>/schema.prisma: tables, columns, types with length and
 * precision, nullability, defaults, primary keys, unique and plain indexes with their
 * columns in order, and their names (Prisma's default constraint names, or `map:`).
 * Anything forgotten or extra on either side is reported. A self-test applies
 * deliberately broken copies of the migrations and checks every defect is reported.
 *
 * The PostgreSQL migrations are written with the schema engine's diff
 * (scripts/pg-migration-diff.ts); the MySQL ones are written by hand, so this test is
 * what keeps them honest.
 *
 * Why a parser: Prisma's DMMF (getDMMF from @prisma/internals) is not installed here,
 * and the generated client's runtime data model has neither nullability, native types
 * nor indexes. `parsePrismaSchema` below reads the subset of the schema language the
 * schemas use and throws on anything else (relations, enums, composite types, lists,
 * index modifiers…), so a schema that outgrows it fails loudly instead of being
 * half-checked. The field lists it finds are cross-checked with the generated clients.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import * as mariadb from 'mariadb';
import { migrate, migrationsDir, loadMigrations, MIGRATIONS_ROOT } from './migrate.ts';
import { mysqlConfig } from './database.ts';
import { createEmptyDatabase } from './testing.ts';
import type { Dialect } from './dialect.ts';
import { Prisma as PgPrisma } from './generated/pg/client.ts';
import { Prisma as MysqlPrisma } from './generated/mysql/client.ts';

// ============================================================ the Prisma schema subset

const SCALARS = new Set(['String', 'Int', 'BigInt', 'Float', 'Decimal', 'Boolean', 'DateTime', 'Json', 'Bytes']);

interface Attr { name: string; args: string[] }
type DefaultExpr = { kind: 'autoincrement' } | { kind: 'now' } | { kind: 'client' } | { kind: 'dbgenerated'; expr: string } | { kind: 'value'; value: string };

interface SchemaField {
  name: string;
  column: string;
  type: string;
  optional: boolean;
  native?: { name: string; args: string[] };
  default?: DefaultExpr;
  /** `@updatedAt`: set by the client, no database default. */
  updatedAt: boolean;
}
interface SchemaIndex { name: string; columns: string[] }
interface SchemaModel {
  name: string;
  table: string;
  fields: SchemaField[];
  primaryKey: SchemaIndex;
  uniques: SchemaIndex[];
  indexes: SchemaIndex[];
}
interface ParsedSchema { provider: Dialect; models: SchemaModel[] }

/** Removes `//` and `///` comments outside string literals. */
function stripComment(line: string): string {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '/' && line[i + 1] === '/') return line.slice(0, i);
  }
  return line;
}

/** Splits on `sep` at nesting depth 0, outside strings. */
function splitTop(text: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inString = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === sep && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last) out.push(last);
  return out;
}

/** `@name(args) @other …` → attributes; `args` is split at top-level commas. */
function parseAttributes(text: string, where: string): Attr[] {
  const attrs: Attr[] = [];
  let i = 0;
  while (i < text.length) {
    if (/\s/.test(text[i]!)) { i++; continue; }
    const m = /^@{1,2}([A-Za-z_][\w.]*)/.exec(text.slice(i));
    if (!m) throw new Error(`${where}: cannot parse ${JSON.stringify(text.slice(i))}`);
    i += m[0].length;
    let args: string[] = [];
    if (text[i] === '(') {
      let depth = 0;
      let inString = false;
      const open = i;
      for (; i < text.length; i++) {
        const c = text[i];
        if (inString) { if (c === '\\') i++; else if (c === '"') inString = false; continue; }
        if (c === '"') inString = true;
        else if (c === '(') depth++;
        else if (c === ')' && --depth === 0) break;
      }
      if (depth !== 0) throw new Error(`${where}: unbalanced parentheses`);
      args = splitTop(text.slice(open + 1, i), ',');
      i++;
    }
    attrs.push({ name: m[1]!, args });
  }
  return attrs;
}

const str = (lit: string, where: string): string => {
  if (!/^".*"$/s.test(lit)) throw new Error(`${where}: expected a string literal, got ${lit}`);
  return JSON.parse(lit) as string;
};

/** Positional args and `key: value` args of an attribute. */
function args(a: Attr): { positional: string[]; named: Record<string, string> } {
  const positional: string[] = [];
  const named: Record<string, string> = {};
  for (const arg of a.args) {
    const m = /^([A-Za-z_]\w*)\s*:\s*([\s\S]+)$/.exec(arg);
    if (m && !arg.startsWith('"')) named[m[1]!] = m[2]!.trim();
    else positional.push(arg);
  }
  return { positional, named };
}

/** `[a, b]` → ['a', 'b']; index modifiers (`a(sort: Desc)`) are not supported. */
function fieldList(text: string | undefined, where: string): string[] {
  if (!text || !/^\[.*\]$/s.test(text)) throw new Error(`${where}: expected a field list, got ${text}`);
  return splitTop(text.slice(1, -1), ',').map((f) => {
    if (!/^[A-Za-z_]\w*$/.test(f)) throw new Error(`${where}: unsupported index field ${JSON.stringify(f)} (extend the parser)`);
    return f;
  });
}

function parseDefault(expr: string, where: string): DefaultExpr {
  if (expr === 'autoincrement()') return { kind: 'autoincrement' };
  if (expr === 'now()') return { kind: 'now' };
  if (/^(uuid|cuid|nanoid|ulid)\(.*\)$/.test(expr)) return { kind: 'client' };
  const gen = /^dbgenerated\(([\s\S]*)\)$/.exec(expr);
  if (gen) return { kind: 'dbgenerated', expr: gen[1] ? str(gen[1], where) : '' };
  if (expr === 'true' || expr === 'false' || /^-?\d+(\.\d+)?$/.test(expr)) return { kind: 'value', value: expr };
  if (expr.startsWith('"')) return { kind: 'value', value: str(expr, where) };
  throw new Error(`${where}: unsupported default ${expr} (extend the parser)`);
}

/** Prisma's default constraint name, truncated like Prisma does past the identifier limit. */
function constraintName(table: string, columns: string[], suffix: 'pkey' | 'key' | 'idx', provider: Dialect): string {
  const limit = provider === 'postgresql' ? 63 : 64;
  const stem = suffix === 'pkey' ? table : [table, ...columns].join('_');
  return `${stem.slice(0, limit - suffix.length - 1)}_${suffix}`;
}

/**
 * Parses the models of a Prisma schema: `model` blocks with scalar fields and the
 * attributes @id @unique @default @map @updatedAt @db.*, @@id @@unique @@index @@map
 * (with `map:`/`name:`), plus the datasource provider.
 */
function parsePrismaSchema(text: string, file: string): ParsedSchema {
  let provider: Dialect | undefined;
  const models: SchemaModel[] = [];
  const lines = text.split('\n').map((l) => stripComment(l).trim());
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line) continue;
    const block = /^(\w+)\s+(\w+)\s*\{$/.exec(line);
    if (!block) throw new Error(`${file}:${i + 1}: unexpected ${JSON.stringify(line)}`);
    const [, kind, name] = block;
    const body: { text: string; line: number }[] = [];
    for (i++; i < lines.length && lines[i] !== '}'; i++) if (lines[i]) body.push({ text: lines[i]!, line: i + 1 });
    if (i >= lines.length) throw new Error(`${file}: block ${name} is not closed`);
    if (kind === 'generator') continue;
    if (kind === 'datasource') {
      const p = body.map((b) => /^provider\s*=\s*"(\w+)"$/.exec(b.text)?.[1]).find(Boolean);
      if (p !== 'postgresql' && p !== 'mysql') throw new Error(`${file}: unsupported provider ${p}`);
      provider = p;
      continue;
    }
    if (kind !== 'model') throw new Error(`${file}:${i + 1}: ${kind} blocks are not supported by this parser (extend it)`);
    models.push(parseModel(name!, body, file));
  }
  if (!provider) throw new Error(`${file}: no datasource provider`);
  for (const m of models) nameConstraints(m, provider);
  return { provider, models };
}

interface RawModel extends Omit<SchemaModel, 'primaryKey'> { primaryKey?: SchemaIndex }

function parseModel(name: string, body: { text: string; line: number }[], file: string): SchemaModel {
  const m: RawModel = { name, table: name, fields: [], uniques: [], indexes: [] };
  const blockAttrs: { attr: Attr; where: string }[] = [];
  for (const { text, line } of body) {
    const where = `${file}:${line}`;
    if (text.startsWith('@@')) {
      for (const attr of parseAttributes(text, where)) blockAttrs.push({ attr, where });
      continue;
    }
    const f = /^([A-Za-z_]\w*)\s+([A-Za-z_][\w]*(?:\([^)]*\))?)(\[\])?(\?)?\s*(.*)$/.exec(text);
    if (!f) throw new Error(`${where}: cannot parse field ${JSON.stringify(text)}`);
    const [, fieldName, type, list, optional, rest] = f;
    if (!SCALARS.has(type!)) throw new Error(`${where}: ${name}.${fieldName}: type ${type} is not supported by this parser (relations, enums, composite and Unsupported types: extend it)`);
    if (list) throw new Error(`${where}: ${name}.${fieldName}: list fields are not supported by this parser`);
    const field: SchemaField = { name: fieldName!, column: fieldName!, type: type!, optional: Boolean(optional), updatedAt: false };
    for (const a of parseAttributes(rest!, where)) {
      const { positional, named } = args(a);
      if (a.name === 'id') m.primaryKey = { name: named.map ? str(named.map, where) : '', columns: [fieldName!] };
      else if (a.name === 'unique') m.uniques.push({ name: named.map ? str(named.map, where) : '', columns: [fieldName!] });
      else if (a.name === 'default') field.default = parseDefault(positional[0] ?? '', where);
      else if (a.name === 'map') field.column = str(positional[0] ?? '', where);
      else if (a.name === 'updatedAt') field.updatedAt = true;
      else if (a.name.startsWith('db.')) field.native = { name: a.name.slice(3), args: positional };
      else throw new Error(`${where}: attribute @${a.name} is not supported by this parser`);
    }
    m.fields.push(field);
  }
  const column = (fieldName: string, where: string) => {
    const field = m.fields.find((x) => x.name === fieldName);
    if (!field) throw new Error(`${where}: ${name} has no field ${fieldName}`);
    return field.column;
  };
  for (const { attr, where } of blockAttrs) {
    const { positional, named } = args(attr);
    const mapped = named.map ? str(named.map, where) : '';
    const fieldsArg = positional[0] ?? named.fields;
    if (attr.name === 'map') m.table = str(positional[0] ?? '', where);
    else if (attr.name === 'id') m.primaryKey = { name: mapped, columns: fieldList(fieldsArg, where) };
    else if (attr.name === 'unique') m.uniques.push({ name: mapped, columns: fieldList(fieldsArg, where) });
    else if (attr.name === 'index') {
      if (named.type || named.clustered) throw new Error(`${where}: @@index type/clustered is not supported by this parser`);
      m.indexes.push({ name: mapped, columns: fieldList(fieldsArg, where) });
    } else throw new Error(`${where}: attribute @@${attr.name} is not supported by this parser`);
  }
  if (!m.primaryKey) throw new Error(`${file}: model ${name} has no @id/@@id (not supported by this test)`);
  // Field names → column names (index/PK lists name fields).
  const toColumns = (ix: SchemaIndex): SchemaIndex => ({ ...ix, columns: ix.columns.map((c) => column(c, `${file}: ${name}`)) });
  return { ...m, primaryKey: toColumns(m.primaryKey), uniques: m.uniques.map(toColumns), indexes: m.indexes.map(toColumns) };
}

function nameConstraints(m: SchemaModel, provider: Dialect): void {
  m.primaryKey.name ||= provider === 'postgresql' ? constraintName(m.table, m.primaryKey.columns, 'pkey', provider) : 'PRIMARY';
  for (const u of m.uniques) u.name ||= constraintName(m.table, u.columns, 'key', provider);
  for (const ix of m.indexes) ix.name ||= constraintName(m.table, ix.columns, 'idx', provider);
}

// ============================================================ expected database shape

/** The column type Prisma creates for a field, in the normalised spelling used by `introspect`. */
function expectedType(f: SchemaField, provider: Dialect, where: string): string {
  const n = f.native;
  const a = n?.args ?? [];
  const unsupported = () => new Error(`${where}: @db.${n?.name} on ${f.type} is not mapped by this test (extend expectedType)`);
  if (provider === 'postgresql') {
    switch (f.type) {
      case 'String':
        if (!n || n.name === 'Text') return 'text';
        if (n.name === 'VarChar') return a.length ? `varchar(${a[0]})` : 'varchar';
        if (n.name === 'Char') return `char(${a[0] ?? 1})`;
        if (n.name === 'Uuid') return 'uuid';
        throw unsupported();
      case 'Int': return !n || n.name === 'Integer' ? 'integer' : n.name === 'SmallInt' ? 'smallint' : (() => { throw unsupported(); })();
      case 'BigInt': return 'bigint';
      case 'Float': return !n || n.name === 'DoublePrecision' ? 'double precision' : n.name === 'Real' ? 'real' : (() => { throw unsupported(); })();
      case 'Decimal': return n ? `numeric(${a[0]},${a[1]})` : 'numeric(65,30)';
      case 'Boolean': return 'boolean';
      case 'DateTime':
        if (!n) return 'timestamp(3)';
        if (n.name === 'Timestamptz') return `timestamptz(${a[0] ?? 6})`;
        if (n.name === 'Timestamp') return `timestamp(${a[0] ?? 6})`;
        if (n.name === 'Date') return 'date';
        throw unsupported();
      case 'Json': return n?.name === 'Json' ? 'json' : 'jsonb';
      case 'Bytes': return 'bytea';
    }
  } else {
    switch (f.type) {
      case 'String':
        if (!n) return 'varchar(191)';
        if (n.name === 'VarChar') return `varchar(${a[0]})`;
        if (n.name === 'Char') return `char(${a[0] ?? 1})`;
        if (['Text', 'TinyText', 'MediumText', 'LongText'].includes(n.name)) return n.name.toLowerCase();
        throw unsupported();
      case 'Int': return !n || n.name === 'Int' ? 'int' : n.name === 'SmallInt' ? 'smallint' : n.name === 'UnsignedInt' ? 'int unsigned' : (() => { throw unsupported(); })();
      case 'BigInt': return !n || n.name === 'BigInt' ? 'bigint' : n.name === 'UnsignedBigInt' ? 'bigint unsigned' : (() => { throw unsupported(); })();
      case 'Float': return 'double';
      case 'Decimal': return n ? `decimal(${a[0]},${a[1]})` : 'decimal(65,30)';
      case 'Boolean': return 'tinyint(1)';
      case 'DateTime': {
        const p = n ? (n.name === 'DateTime' || n.name === 'Timestamp' ? Number(a[0] ?? 0) : NaN) : 3;
        if (Number.isNaN(p)) throw unsupported();
        const t = n?.name === 'Timestamp' ? 'timestamp' : 'datetime';
        return p ? `${t}(${p})` : t;
      }
      case 'Json': return 'json';
      case 'Bytes': return 'longblob';
    }
  }
  throw new Error(`${where}: type ${f.type} is not mapped`);
}

/** The default the column must have, normalised: none | autoincrement | now | value:<v> | dbgenerated. */
function expectedDefault(f: SchemaField, provider: Dialect): string {
  const d = f.default;
  if (!d || d.kind === 'client') return 'none'; // uuid(), cuid()… are filled in by the client
  if (d.kind !== 'value') return d.kind;
  // MySQL has no boolean type: BOOLEAN is TINYINT(1) and its defaults read back as 0/1.
  if (provider === 'mysql' && f.type === 'Boolean') return `value:${d.value === 'true' ? 1 : 0}`;
  return `value:${d.value}`;
}

interface Column { type: string; nullable: boolean; default: string }
interface Table { columns: Map<string, Column>; primaryKey: SchemaIndex; uniques: SchemaIndex[]; indexes: SchemaIndex[]; collation?: string }
type Shape = Map<string, Table>;

function expectedShape(schema: ParsedSchema): Shape {
  const shape: Shape = new Map();
  for (const m of schema.models) {
    const columns = new Map<string, Column>();
    for (const f of m.fields) {
      columns.set(f.column, { type: expectedType(f, schema.provider, `${m.name}.${f.name}`), nullable: f.optional, default: expectedDefault(f, schema.provider) });
    }
    shape.set(m.table, {
      columns,
      primaryKey: m.primaryKey,
      uniques: m.uniques,
      indexes: m.indexes,
      collation: schema.provider === 'mysql' ? 'utf8mb4_unicode_ci' : undefined,
    });
  }
  return shape;
}

// ============================================================ the database as built

type Query = (text: string) => Promise<Record<string, unknown>[]>;

async function withQuery<T>(dialect: Dialect, url: string, fn: (q: Query) => Promise<T>): Promise<T> {
  if (dialect === 'postgresql') {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try { return await fn(async (t) => (await c.query(t)).rows); } finally { await c.end(); }
  }
  const c = await mariadb.createConnection({ ...mysqlConfig(url), multipleStatements: true });
  try {
    return await fn(async (t) => {
      const r = await c.query(t);
      return Array.isArray(r) ? [...r] : [];
    });
  } finally { await c.end(); }
}

/** `'x'::character varying` → x, `'it''s'` → it's, `(-1)` → -1. */
function unquoteDefault(raw: string): string {
  let v = raw.trim().replace(/::[\w\s]+(\[\])?(\(\d+(,\d+)?\))?$/, '');
  if (/^\(.*\)$/.test(v)) v = v.slice(1, -1);
  if (/^'.*'$/s.test(v)) v = v.slice(1, -1).replace(/''/g, "'");
  return v;
}

async function introspectPg(q: Query): Promise<Shape> {
  const shape: Shape = new Map();
  const tables = await q(`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> '_prisma_migrations'`);
  for (const t of tables) shape.set(t.table_name as string, { columns: new Map(), primaryKey: { name: '', columns: [] }, uniques: [], indexes: [] });
  const cols = await q(`SELECT table_name, column_name, data_type, udt_name, character_maximum_length, numeric_precision, numeric_scale, datetime_precision, is_nullable, column_default, is_identity
    FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`);
  for (const c of cols) {
    const table = shape.get(c.table_name as string);
    if (!table) continue;
    const dt = c.data_type as string;
    const type =
      dt === 'character varying' ? (c.character_maximum_length == null ? 'varchar' : `varchar(${c.character_maximum_length})`)
      : dt === 'character' ? `char(${c.character_maximum_length})`
      : dt === 'numeric' ? `numeric(${c.numeric_precision},${c.numeric_scale})`
      : dt === 'timestamp with time zone' ? `timestamptz(${c.datetime_precision})`
      : dt === 'timestamp without time zone' ? `timestamp(${c.datetime_precision})`
      : dt === 'USER-DEFINED' || dt === 'ARRAY' ? `${dt}:${c.udt_name}`
      : dt;
    const raw = c.column_default as string | null;
    const def =
      c.is_identity === 'YES' || (raw && /^nextval\('.*'::regclass\)$/.test(raw)) ? 'autoincrement'
      : raw == null ? 'none'
      : /^(CURRENT_TIMESTAMP|now\(\))/i.test(raw) ? 'now'
      : `value:${unquoteDefault(raw)}`;
    table.columns.set(c.column_name as string, { type, nullable: c.is_nullable === 'YES', default: def });
  }
  // information_schema has no indexes: read them (and the primary key's) from pg_catalog.
  const idx = await q(`SELECT t.relname AS table_name, i.relname AS index_name, ix.indisprimary AS is_primary, ix.indisunique AS is_unique,
      ix.indpred IS NOT NULL AS is_partial, ix.indexprs IS NOT NULL AS has_expressions,
      array(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
    FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema() ORDER BY 1, 2`);
  for (const r of idx) {
    const table = shape.get(r.table_name as string);
    if (!table) continue;
    const ix = { name: r.index_name as string, columns: r.columns as string[] };
    if (r.is_partial || r.has_expressions) ix.name += ' (partial or expression index)';
    if (r.is_primary) table.primaryKey = ix;
    else (r.is_unique ? table.uniques : table.indexes).push(ix);
  }
  return shape;
}

async function introspectMysql(q: Query): Promise<Shape> {
  const shape: Shape = new Map();
  const tables = await q(`SELECT TABLE_NAME AS t, TABLE_COLLATION AS c FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> '_prisma_migrations'`);
  for (const t of tables) shape.set(t.t as string, { columns: new Map(), primaryKey: { name: '', columns: [] }, uniques: [], indexes: [], collation: t.c as string });
  // MariaDB's JSON is LONGTEXT with a CHECK (json_valid(col)) constraint.
  const checks = await q(`SELECT TABLE_NAME AS t, CHECK_CLAUSE AS c FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()`).catch(() => []);
  const jsonChecked = new Set<string>();
  for (const r of checks) {
    const col = /^json_valid\(`(\w+)`\)$/i.exec(String(r.c))?.[1];
    if (col) jsonChecked.add(`${r.t}.${col}`);
  }
  const cols = await q(`SELECT TABLE_NAME AS t, COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable, COLUMN_DEFAULT AS def, EXTRA AS extra
    FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION`);
  for (const c of cols) {
    const table = shape.get(c.t as string);
    if (!table) continue;
    let type = String(c.type).toLowerCase()
      .replace(/^(smallint|mediumint|int|bigint)\(\d+\)/, '$1') // display widths (MariaDB, MySQL < 8.0.19)
      .replace(/^tinyint\((?!1\))\d+\)/, 'tinyint');
    if (type === 'longtext' && jsonChecked.has(`${c.t}.${c.name}`)) type = 'json';
    const nullable = c.nullable === 'YES';
    const raw = c.def as string | null;
    const def =
      /auto_increment/i.test(String(c.extra)) ? 'autoincrement'
      : raw == null || (raw === 'NULL' && nullable) ? 'none' // MariaDB spells "no default" NULL
      : /^current_timestamp/i.test(raw) ? 'now'
      : `value:${unquoteDefault(raw)}`;
    table.columns.set(c.name as string, { type, nullable, default: def });
  }
  const stats = await q(`SELECT TABLE_NAME AS t, INDEX_NAME AS name, NON_UNIQUE AS non_unique, COLUMN_NAME AS col, SUB_PART AS sub_part
    FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`);
  const byIndex = new Map<string, { t: string; name: string; unique: boolean; columns: string[] }>();
  for (const s of stats) {
    const key = `${s.t}\u0000${s.name}`;
    const ix = byIndex.get(key) ?? { t: s.t as string, name: s.name as string, unique: Number(s.non_unique) === 0, columns: [] };
    ix.columns.push(s.sub_part == null ? String(s.col) : `${s.col}(${s.sub_part})`);
    byIndex.set(key, ix);
  }
  for (const ix of byIndex.values()) {
    const table = shape.get(ix.t);
    if (!table) continue;
    if (ix.name === 'PRIMARY') table.primaryKey = { name: 'PRIMARY', columns: ix.columns };
    else (ix.unique ? table.uniques : table.indexes).push({ name: ix.name, columns: ix.columns });
  }
  return shape;
}

const introspect = (dialect: Dialect, url: string): Promise<Shape> =>
  withQuery(dialect, url, (q) => (dialect === 'postgresql' ? introspectPg(q) : introspectMysql(q)));

// ============================================================ comparison

const showIndex = (ix: SchemaIndex) => `${ix.name}(${ix.columns.join(', ')})`;

/** Every difference between what the schema wants and what the database has; [] when they agree. */
function compareShapes(expected: Shape, actual: Shape): string[] {
  const diffs: string[] = [];
  for (const name of actual.keys()) if (!expected.has(name)) diffs.push(`table ${name}: in the database, not in the schema`);
  for (const [name, want] of expected) {
    const have = actual.get(name);
    if (!have) { diffs.push(`table ${name}: missing`); continue; }
    for (const col of have.columns.keys()) if (!want.columns.has(col)) diffs.push(`${name}.${col}: column in the database, not in the schema`);
    for (const [col, w] of want.columns) {
      const h = have.columns.get(col);
      if (!h) { diffs.push(`${name}.${col}: column missing`); continue; }
      if (h.type !== w.type) diffs.push(`${name}.${col}: type ${h.type}, expected ${w.type}`);
      if (h.nullable !== w.nullable) diffs.push(`${name}.${col}: ${h.nullable ? 'nullable' : 'NOT NULL'}, expected ${w.nullable ? 'nullable' : 'NOT NULL'}`);
      if (h.default !== w.default && !(w.default === 'dbgenerated' && h.default !== 'none')) {
        diffs.push(`${name}.${col}: default ${h.default}, expected ${w.default}`);
      }
    }
    if (showIndex(have.primaryKey) !== showIndex(want.primaryKey)) diffs.push(`${name}: primary key ${showIndex(have.primaryKey)}, expected ${showIndex(want.primaryKey)}`);
    for (const kind of ['uniques', 'indexes'] as const) {
      const label = kind === 'uniques' ? 'unique index' : 'index';
      const w = new Set(want[kind].map(showIndex));
      const h = new Set(have[kind].map(showIndex));
      for (const ix of w) if (!h.has(ix)) diffs.push(`${name}: ${label} ${ix} missing`);
      for (const ix of h) if (!w.has(ix)) diffs.push(`${name}: ${label} ${ix} in the database, not in the schema`);
    }
    if (want.collation && have.collation !== want.collation) diffs.push(`${name}: collation ${have.collation}, expected ${want.collation}`);
  }
  return diffs;
}

// ============================================================ tests

const schemaFile = (dialect: Dialect) => path.join(MIGRATIONS_ROOT, dialect, 'schema.prisma');
const loadSchema = (dialect: Dialect) => parsePrismaSchema(readFileSync(schemaFile(dialect), 'utf8'), schemaFile(dialect));
const generated = { postgresql: PgPrisma, mysql: MysqlPrisma } as const;

describe('the schema parser', () => {
  it.each<Dialect>(['postgresql', 'mysql'])('finds every model and scalar field the generated %s client knows', (dialect) => {
    const schema = loadSchema(dialect);
    expect(schema.provider).toBe(dialect);
    const client = generated[dialect] as unknown as Record<string, Record<string, string>>;
    const modelNames = Object.values(client.ModelName!);
    expect(schema.models.map((m) => m.name).sort()).toEqual([...modelNames].sort());
    for (const m of schema.models) {
      expect(m.fields.map((f) => f.name), m.name).toEqual(Object.values(client[`${m.name}ScalarFieldEnum`]!));
    }
  });

  it('gives both providers the same models, fields, nullability, keys and indexes', () => {
    const strip = (s: ParsedSchema) => s.models.map((m) => ({
      ...m,
      primaryKey: m.primaryKey.columns,
      fields: m.fields.map(({ native: _native, ...f }) => f),
    }));
    expect(strip(loadSchema('mysql'))).toEqual(strip(loadSchema('postgresql')));
  });

  it('reads what the schema language allows and refuses what it does not understand', () => {
    const s = parsePrismaSchema(`datasource db {\n  provider = "postgresql" // comment\n}\n/// doc\nmodel A {\n  id Int @id(map: "a_pk") @default(autoincrement())\n  b String? @unique @map("bee") @db.VarChar(10)\n  c String @default("x // y")\n  @@map("aa")\n  @@index([b, c], map: "ix")\n}\n`, 'inline');
    expect(s.models[0]).toMatchObject({
      table: 'aa',
      primaryKey: { name: 'a_pk', columns: ['id'] },
      uniques: [{ name: 'aa_bee_key', columns: ['bee'] }],
      indexes: [{ name: 'ix', columns: ['bee', 'c'] }],
    });
    expect(s.models[0]!.fields[2]).toMatchObject({ default: { kind: 'value', value: 'x // y' } });
    expect(() => parsePrismaSchema('datasource db {\n provider = "mysql"\n}\nmodel A {\n id Int @id\n b B\n}\n', 'x')).toThrow(/type B is not supported/);
    expect(() => parsePrismaSchema('datasource db {\n provider = "mysql"\n}\nenum E {\n A\n}\n', 'x')).toThrow(/enum blocks are not supported/);
    expect(() => parsePrismaSchema('datasource db {\n provider = "mysql"\n}\nmodel A {\n id Int @id\n @@index([id(sort: Desc)])\n}\n', 'x')).toThrow(/unsupported index field/);
  });
});

describe.each<Dialect>(['postgresql', 'mysql'])('committed %s migrations', (dialect) => {
  let db: { url: string; drop(): Promise<void> };
  let expected: Shape;
  beforeAll(async () => {
    expected = expectedShape(loadSchema(dialect));
    db = await createEmptyDatabase(dialect);
    await migrate(db.url);
  });
  afterAll(async () => { await db?.drop(); });

  it('have a migration_lock.toml for this provider', () => {
    expect(readFileSync(path.join(migrationsDir(dialect), 'migration_lock.toml'), 'utf8')).toMatch(new RegExp(`provider = "${dialect}"`));
  });

  it('build exactly the tables, columns, types, keys and indexes of the Prisma schema', async () => {
    const actual = await introspect(dialect, db.url);
    expect(compareShapes(expected, actual)).toEqual([]);
    // the comparison saw something: every model table with its columns
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  });

  it('self-test: a migration with a forgotten column, index, type, default or NOT NULL is caught', async () => {
    const [first, ...rest] = await loadMigrations(dialect);
    expect(first).toBeDefined();
    const q = (s: string) => (dialect === 'postgresql' ? `"${s}"` : `\`${s}\``);
    const ts = dialect === 'postgresql' ? 'TIMESTAMPTZ(3)' : 'DATETIME(3)';
    const tsOther = dialect === 'postgresql' ? 'TIMESTAMP(3)' : 'DATETIME';
    const nullKw = dialect === 'postgresql' ? '' : ' NULL';
    // [pattern, replacement, the difference it must produce]
    const defects: [RegExp, string, string][] = [
      [new RegExp(`^.*${q('DeadLetter_failedAt_idx')}.*\\n`, 'm'), '', `DeadLetter: index DeadLetter_failedAt_idx(failedAt) missing`],
      [new RegExp(`^\\s*${q('loadedAt')} ${reEscape(ts)} NOT NULL,?\\n`, 'm'), '', 'Submission.loadedAt: column missing'],
      [new RegExp(`(${q('key')} VARCHAR\\()191\\)`), '$1190)', 'Submission.key: type varchar(190), expected varchar(191)'],
      [new RegExp(`(${q('deletedAt')} )${reEscape(ts)}`), `$1${tsOther}`, `Submission.deletedAt: type ${dialect === 'postgresql' ? 'timestamp(3), expected timestamptz(3)' : 'datetime, expected datetime(3)'}`],
      [new RegExp(`(${q('deleted')} BOOLEAN NOT NULL) DEFAULT false`), '$1', 'Submission.deleted: default none, expected value:false'],
      [new RegExp(`(${q('jobName')} VARCHAR\\(64\\)) NOT NULL`), `$1${nullKw}`, 'DeadLetter.jobName: nullable, expected NOT NULL'],
    ];
    let broken = first!.sql;
    for (const [pattern, replacement] of defects) {
      expect(pattern.test(broken), `pattern ${pattern} no longer matches the first migration; update the self-test`).toBe(true);
      broken = broken.replace(pattern, replacement);
    }
    const scratch = await createEmptyDatabase(dialect);
    try {
      await withQuery(dialect, scratch.url, async (run) => {
        for (const m of [{ sql: broken }, ...rest]) await run(m.sql);
      });
      const diffs = compareShapes(expected, await introspect(dialect, scratch.url));
      // MySQL booleans: the default is 0/1, so the message differs only in the value.
      const want = defects.map(([, , d]) => (dialect === 'mysql' ? d.replace('value:false', 'value:0') : d));
      expect(diffs.sort()).toEqual(want.sort());
    } finally {
      await scratch.drop();
    }
  });
});

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
