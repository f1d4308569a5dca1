export type Dialect = 'postgresql' | 'mysql';

/** Which database a URL points at; MariaDB speaks the MySQL dialect. */
export function dialectOf(url: string): Dialect {
  const scheme = url.slice(0, url.indexOf(':')).toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') return 'postgresql';
  if (scheme === 'mysql' || scheme === 'mariadb') return 'mysql';
  throw new Error(`DATABASE_URL: unsupported scheme "${scheme}:" (use postgresql://, mysql:// or mariadb://)`);
}

/** Quote an identifier that has already been validated. */
export function quoteIdent(dialect: Dialect, name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid SQL identifier: ${JSON.stringify(name)}`);
  return dialect === 'postgresql' ? `"${name}"` : `\`${name}\``;
}
