/**
 * Socrata datasets as the simulator holds them: column metadata (as
 * `/api/views/{4x4}.json` describes it) and rows already in SODA 2.1's JSON
 * spelling — numbers as strings, checkboxes as booleans, points as GeoJSON,
 * null values left out (sparse rows). System fields (`:id`, `:created_at`,
 * `:updated_at`, `:version`) are kept beside the user columns.
 */

import { mulberry32 } from '../odk/odk.data.ts';

export interface SocrataColumn {
  id: number;
  fieldName: string;
  name: string;
  /** `text`, `number`, `double`, `money`, `calendar_date`, `date`, `checkbox`, `point`, `location`, `url`, … */
  dataTypeName: string;
  description?: string;
}

export type SocrataRow = Record<string, unknown>;

export const SYSTEM_FIELDS = [':id', ':created_at', ':updated_at', ':version'] as const;

const ID_CHARS = '23456789abcdefghijkmnpqrstuvwxyz';

export class SocrataDataset {
  /** By `:id`, in insertion order (the order SODA answers in when no `$order` is given: none in particular). */
  readonly rows = new Map<string, SocrataRow>();
  /** Bumped by every change: part of the ETag. */
  dataVersion = 1;
  lastModified = new Date();
  private sorted: SocrataRow[] | null = null;
  private lastStamp = 0;
  private readonly random: () => number;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly columns: SocrataColumn[],
    /** `rowIdentifierColumnId` of the metadata: the id of the column that keys rows. */
    readonly rowIdentifierColumnId?: number,
    seed = 1,
  ) {
    this.random = mulberry32(seed);
  }

  /** A random `row-xxxx~xxxx~xxxx` id: new rows land anywhere in `:id` order, as on a real portal. */
  newId(): string {
    const part = () => Array.from({ length: 4 }, () => ID_CHARS[Math.floor(this.random() * ID_CHARS.length)]).join('');
    for (;;) {
      const id = `row-${part()}~${part()}~${part()}`;
      if (!this.rows.has(id)) return id;
    }
  }

  /** A strictly increasing time (ms), so every change has its own `:updated_at`. */
  stamp(at?: Date): string {
    const t = Math.max(at?.getTime() ?? Date.now(), this.lastStamp + 1);
    if (!at) this.lastStamp = t;
    return new Date(t).toISOString();
  }

  private touched(): void {
    this.sorted = null;
    this.dataVersion++;
    this.lastModified = new Date();
  }

  /** Rows sorted by `:id` (cached until the next change). */
  byId(): SocrataRow[] {
    this.sorted ??= [...this.rows.values()].sort((a, b) => ((a[':id'] as string) < (b[':id'] as string) ? -1 : 1));
    return this.sorted;
  }

  /** Adds a row (user columns in SODA's JSON spelling); returns it with its system fields. */
  add(values: SocrataRow, at?: Date): SocrataRow {
    const id = this.newId();
    const t = this.stamp(at);
    const row: SocrataRow = { ':id': id, ':created_at': t, ':updated_at': t, ':version': `rv-${this.newId().slice(4)}`, ...sparse(values) };
    this.rows.set(id, row);
    this.touched();
    return row;
  }

  /** Many rows at once (one change for the ETag). */
  addMany(values: SocrataRow[], times?: Date[]): void {
    values.forEach((v, i) => {
      const id = this.newId();
      const t = times?.[i]?.toISOString() ?? this.stamp();
      this.rows.set(id, { ':id': id, ':created_at': t, ':updated_at': t, ':version': `rv-${this.newId().slice(4)}`, ...sparse(v) });
    });
    this.touched();
  }

  /** Changes user columns (undefined/null removes the value); bumps `:updated_at` and `:version`. */
  edit(id: string, patch: SocrataRow): SocrataRow {
    const row = this.rows.get(id);
    if (!row) throw new Error(`no row ${id} in ${this.id}`);
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined || v === null) delete row[k];
      else row[k] = v;
    }
    row[':updated_at'] = this.stamp();
    row[':version'] = `rv-${this.newId().slice(4)}`;
    this.touched();
    return row;
  }

  /** Deletes a row: SODA keeps no tombstone, the row is simply gone. */
  remove(id: string): void {
    if (!this.rows.delete(id)) throw new Error(`no row ${id} in ${this.id}`);
    this.touched();
  }

  /** `/api/views/{4x4}.json`, the parts fieldsync reads. */
  metadata(): Record<string, unknown> {
    return {
      id: this.id,
      name: this.name,
      assetType: 'dataset',
      rowsUpdatedAt: Math.floor(this.lastModified.getTime() / 1000),
      ...(this.rowIdentifierColumnId !== undefined ? { rowIdentifierColumnId: this.rowIdentifierColumnId } : {}),
      columns: this.columns.map((c, i) => ({ id: c.id, name: c.name, dataTypeName: c.dataTypeName, fieldName: c.fieldName, position: i + 1, renderTypeName: c.dataTypeName, ...(c.description ? { description: c.description } : {}) })),
    };
  }
}

/** SODA leaves null values out of a row. */
function sparse(v: SocrataRow): SocrataRow {
  const out: SocrataRow = {};
  for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = x;
  return out;
}

/** Seattle's pet licenses (`jguv-t9rb`) as its metadata describes them, plus a computed region column. */
export const PET_COLUMNS: SocrataColumn[] = [
  { id: 101, fieldName: 'license_issue_date', name: 'License Issue Date', dataTypeName: 'calendar_date' },
  { id: 102, fieldName: 'license_number', name: 'License Number', dataTypeName: 'text' },
  { id: 103, fieldName: 'animal_s_name', name: "Animal's Name", dataTypeName: 'text' },
  { id: 104, fieldName: 'species', name: 'Species', dataTypeName: 'text' },
  { id: 105, fieldName: 'primary_breed', name: 'Primary Breed', dataTypeName: 'text' },
  { id: 106, fieldName: 'secondary_breed', name: 'Secondary Breed', dataTypeName: 'text' },
  { id: 107, fieldName: 'zip_code', name: 'ZIP Code', dataTypeName: 'text', description: 'Zip codes stay text (leading zeros, ZIP+4).' },
  { id: 108, fieldName: ':@computed_region_2day_rhn5', name: 'Computed Region', dataTypeName: 'number' },
];

const NAMES = ['Luna', 'Bella', 'Charlie', 'Lucy', 'Max', 'Daisy', 'Oliver', 'Milo', 'Bailey', 'Stella', 'Leo', 'Penny', 'Cooper', 'Nala', 'Loki', 'Zoe', 'Teddy', 'Winston', 'Olive', 'Maple'];
const BREEDS: Record<string, string[]> = {
  Dog: ['Retriever, Labrador', 'Terrier', 'Retriever, Golden', 'Chihuahua, Short Coat', 'Poodle, Standard', 'German Shepherd', 'Mix', 'Australian Shepherd'],
  Cat: ['Domestic Shorthair', 'Domestic Longhair', 'Siamese', 'Maine Coon', 'American Shorthair', 'Mix'],
  Goat: ['Miniature', 'Alpine', 'Mix'],
  Pig: ['Pot-Bellied'],
};
const ZIPS = ['98103', '98115', '98117', '98107', '98122', '98125', '98118', '98105', '98199', '98144', '98112', '98102'];

/** `n` pet-license rows (values in SODA's spelling; about a third without a secondary breed, some without a name). */
export function petRows(n: number, seed = 7, from = new Date('2015-01-01T00:00:00Z'), to = new Date('2024-12-31T00:00:00Z')): { values: SocrataRow[]; times: Date[] } {
  const r = mulberry32(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)]!;
  const span = to.getTime() - from.getTime();
  const values: SocrataRow[] = [];
  const times: Date[] = [];
  for (let i = 0; i < n; i++) {
    const issued = new Date(from.getTime() + Math.floor((span * i) / Math.max(n, 1)));
    const species = r() < 0.62 ? 'Dog' : r() < 0.97 ? 'Cat' : pick(['Goat', 'Pig']);
    values.push({
      // A floating timestamp: no zone.
      license_issue_date: `${issued.toISOString().slice(0, 10)}T00:00:00.000`,
      license_number: `${species === 'Dog' ? '' : 'S'}${String(100000 + i)}`,
      animal_s_name: r() < 0.04 ? undefined : pick(NAMES),
      species,
      primary_breed: pick(BREEDS[species]!),
      secondary_breed: r() < 0.35 ? undefined : pick(BREEDS[species]!),
      zip_code: r() < 0.01 ? undefined : pick(ZIPS),
      ':@computed_region_2day_rhn5': String(1 + Math.floor(r() * 40)),
    });
    // Published a few hours after issue, milliseconds apart so every row has its own time.
    times.push(new Date(issued.getTime() + 6 * 3_600_000 + i));
  }
  return { values, times };
}
