import type { Queue } from 'bullmq';
import { formSchedules, sourceForms, type FieldsyncConfig, type Schedule, type SourceConfig } from '@fieldsync/config';
import { PollForm, DiscoverForms, schedulerId, discoverSchedulerId } from '@fieldsync/queues';

function repeatOf(s: Schedule) {
  return s.cron ? { pattern: s.cron, tz: s.tz } : { every: s.every! };
}

/** Registers (or updates) the poll and sweep schedulers of one form. */
export async function scheduleForm(pollQueue: Queue, source: SourceConfig, formId: string): Promise<void> {
  for (const mode of ['poll', 'sweep'] as const) {
    await pollQueue.upsertJobScheduler(schedulerId(source.id, formId, mode), repeatOf(formSchedules(source, formId)[mode]), {
      name: PollForm.name,
      data: { sourceId: source.id, formId, mode },
      opts: PollForm.options,
    });
  }
}

/**
 * After a discovery: schedules every form the source lists now, and drops the
 * schedulers of forms it no longer lists (deleted or closed), which would
 * otherwise fail on every run.
 */
export async function scheduleDiscoveredForms(pollQueue: Queue, source: SourceConfig, forms: string[]): Promise<void> {
  for (const formId of forms) await scheduleForm(pollQueue, source, formId);
  const keep = new Set(forms.flatMap((f) => [schedulerId(source.id, f, 'poll'), schedulerId(source.id, f, 'sweep')]));
  for (const s of await pollQueue.getJobSchedulers(0, -1)) {
    if ((s.key.startsWith(`poll:${source.id}:`) || s.key.startsWith(`sweep:${source.id}:`)) && !keep.has(s.key)) await pollQueue.removeJobScheduler(s.key);
  }
}

/**
 * Makes Redis hold exactly the schedulers the config asks for: one poll and one
 * sweep scheduler per (source, form), or a discovery scheduler for sources that
 * sync every form of a project. Schedulers of sources no longer configured go.
 */
export async function syncSchedules(pollQueue: Queue, config: FieldsyncConfig): Promise<string[]> {
  const wanted = new Set<string>();
  for (const source of config.sources) {
    const forms = sourceForms(source);
    if (forms === '*') {
      const id = discoverSchedulerId(source.id);
      wanted.add(id);
      await pollQueue.upsertJobScheduler(id, repeatOf(source.poll), { name: DiscoverForms.name, data: { sourceId: source.id }, opts: DiscoverForms.options });
    } else {
      for (const formId of forms) {
        await scheduleForm(pollQueue, source, formId);
        wanted.add(schedulerId(source.id, formId, 'poll'));
        wanted.add(schedulerId(source.id, formId, 'sweep'));
      }
    }
  }
  const discovered = new Set(config.sources.filter((s) => sourceForms(s) === '*').map((s) => s.id));
  for (const s of await pollQueue.getJobSchedulers(0, -1)) {
    const id = s.key;
    if (wanted.has(id)) continue;
    // Forms found by discovery keep their schedulers while their source is configured with '*'.
    const sourceId = id.split(':')[1] ?? '';
    if (discovered.has(sourceId)) continue;
    await pollQueue.removeJobScheduler(id);
  }
  return [...wanted];
}
