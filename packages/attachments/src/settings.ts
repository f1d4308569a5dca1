import type { AttachmentStore, FieldsyncConfig, SourceConfig } from '@fieldsync/config';

export interface AttachmentSettings {
  store: AttachmentStore;
  concurrency: number;
  attempts: number;
  backoffMs: number;
  timeoutMs: number;
}

const DEFAULTS = { concurrency: 4, attempts: 5, backoffMs: 5_000, timeoutMs: 600_000 };

/**
 * A source's attachment settings: its own `attachments` key over the top-level
 * one. Null when off (the default: nothing is copied unless a store is configured).
 */
export function attachmentSettings(config: FieldsyncConfig, source: Pick<SourceConfig, 'id'> & { attachments?: { enabled?: boolean; store?: AttachmentStore } }): AttachmentSettings | null {
  const top = config.attachments;
  const own = source.attachments;
  const enabled = own?.enabled ?? (own?.store ? true : (top?.enabled ?? false));
  if (!enabled) return null;
  const store = own?.store ?? top?.store;
  if (!store) throw new Error(`sources.${source.id}.attachments: enabled but no store configured (give attachments.store: {s3: …} or {dir: …})`);
  return { ...DEFAULTS, ...(top ? { concurrency: top.concurrency, attempts: top.attempts, backoffMs: top.backoffMs, timeoutMs: top.timeoutMs } : {}), store };
}

/** True when any source copies attachments: the loader then runs the attachment worker. */
export function anyAttachments(config: FieldsyncConfig): boolean {
  return config.sources.some((s) => attachmentSettings(config, s) !== null);
}
