import { migrate } from './migrate.ts';

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('DATABASE_URL is not set');
  process.exit(2);
}
try {
  const r = await migrate(url);
  console.log(`migrations: ${r.applied.length} applied${r.applied.length ? ` (${r.applied.join(', ')})` : ''}, ${r.alreadyApplied.length} already applied`);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
