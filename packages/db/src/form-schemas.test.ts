import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FormDefinition } from '@fieldsync/model';
import type { Dialect } from './dialect.ts';
import { knownFormVersions, loadFormSchema, loadFormSchemas, saveFormSchema, saveFormSchemas } from './form-schemas.ts';
import { createTestDatabase, type TestDatabase } from './testing.ts';

const def = (version: string, extra: Partial<FormDefinition> = {}): FormDefinition => ({
  sourceId: 'src', formId: 'form', version, title: 'Enquête ménage', shape: 'odk', languages: ['English (en)', 'Français (fr)'],
  fields: [
    { name: 'g', path: ['g'], type: 'group', sourceType: 'structure', labels: { 'English (en)': 'Group' }, children: [
      { name: 'q', path: ['g', 'q'], type: 'select_one', sourceType: 'string', labels: { 'Français (fr)': 'Âge ? “x” 🌩' }, choiceList: 'l' },
    ] },
  ],
  choices: [{ list: 'l', name: 'a', labels: { 'English (en)': 'A' } }],
  ...extra,
});

describe.each<Dialect>(['postgresql', 'mysql'])('FormSchema on %s', (dialect) => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase(dialect); });
  afterAll(async () => { await t?.drop(); });

  it('stores definitions per version and loads them back intact, in the order saved', async () => {
    await saveFormSchemas(t.db, [def('2'), def('10'), def('1')]);
    await saveFormSchema(t.db, { ...def('x'), formId: 'other' });
    expect(await knownFormVersions(t.db, 'src', 'form')).toEqual(new Set(['1', '2', '10']));
    const loaded = await loadFormSchemas(t.db, 'src', 'form');
    expect(loaded.map((d) => d.version)).toEqual(['2', '10', '1']);
    expect(loaded[0]).toEqual(def('2'));
    // A re-read replaces the version's row; nothing else changes.
    await saveFormSchema(t.db, def('10', { title: 'Renamed' }));
    expect((await loadFormSchema(t.db, 'src', 'form', '10'))!.title).toBe('Renamed');
    expect(await loadFormSchema(t.db, 'src', 'form', 'nope')).toBeUndefined();
    expect(await t.db.prisma.formSchema.count()).toBe(4);
  });

  it('refuses to store an invalid definition', async () => {
    await expect(saveFormSchema(t.db, { ...def('bad'), fields: [{ name: '', path: [], type: 'text', sourceType: 'x', labels: {} }] })).rejects.toThrow();
    expect(await knownFormVersions(t.db, 'src', 'form')).not.toContain('bad');
  });
});
