import { Job, Worker, type JobJson } from 'bullmq';

/** The JSON text of a job's data as Redis held it, while nothing has replaced the data. */
const texts = new WeakMap<Job, { text: string | undefined }>();

/**
 * A job whose data is parsed from its JSON text only when something reads `data`.
 * An ingest batch is megabytes of records: the loader can hand that text to the
 * database as it came from Redis (PostgreSQL parses it into jsonb anyway), where
 * parsing it in JavaScript, only to serialize every record again for COPY, was
 * most of the loader's CPU.
 */
export class LazyDataJob extends Job {
  static override fromJSON<T = unknown, R = unknown, N extends string = string>(queue: Parameters<typeof Job.fromJSON>[0], json: JobJson, jobId?: string): Job<T, R, N> {
    const job = super.fromJSON<T, R, N>(queue, { ...json, data: '{}' }, jobId);
    const text = json.data || '{}';
    const kept: { text: string | undefined } = { text };
    let parsed: unknown;
    let read = false;
    Object.defineProperty(job, 'data', {
      configurable: true,
      enumerable: true,
      get() {
        if (!read) {
          parsed = JSON.parse(text);
          read = true;
        }
        return parsed;
      },
      set(value: unknown) {
        parsed = value;
        read = true;
        kept.text = undefined; // updateData and the like: the text no longer says what the job holds
      },
    });
    texts.set(job, kept);
    return job;
  }
}

/**
 * The job's data as JSON text, exactly as stored in Redis; undefined when the job
 * was not built by a {@link LazyDataWorker} or its data has been replaced since.
 */
export function jobDataText(job: Job): string | undefined {
  return texts.get(job)?.text;
}

/** A BullMQ Worker whose jobs are {@link LazyDataJob}s. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the defaults of BullMQ's own Worker, which processors are typed against
export class LazyDataWorker<D = any, R = any, N extends string = string> extends Worker<D, R, N> {
  protected override get Job(): typeof Job {
    return LazyDataJob as unknown as typeof Job; // its instances are Jobs; only the generic construct signature differs
  }
}
