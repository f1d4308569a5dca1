import type { Job, JobsOptions, Queue } from 'bullmq';

export interface JobBatcherOptions {
  /** Most jobs in one addBulk (a bigger backlog goes out in several, one after another). */
  maxBatch?: number;
}

interface Pending {
  name: string;
  data: unknown;
  opts: JobsOptions | undefined;
  resolve(job: Job): void;
  reject(err: unknown): void;
}

/**
 * Adds jobs to a queue in `addBulk` batches, one in flight at a time (two measured
 * slower): the jobs handed to `add` in the same turn of the event loop, or while
 * the batch before is in flight, go to
 * Redis together (one pipeline, one write) instead of one command each. No
 * timer: an idle batcher sends at the next turn, so a lone job waits for
 * nothing, and a busy one batches exactly as much as arrived.
 *
 * Each `add` resolves with its own job only once Redis has stored it, and
 * rejects when its batch could not be stored, so a caller answers "accepted"
 * only for what is in Redis.
 */
export class JobBatcher {
  private readonly maxBatch: number;
  private queued: Pending[] = [];
  /** Jobs of the batch in flight (0: none). */
  private inFlight = 0;
  private scheduled = false;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly queue: Queue, opts: JobBatcherOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 200;
  }

  add(name: string, data: unknown, opts?: JobsOptions): Promise<Job> {
    return new Promise<Job>((resolve, reject) => {
      this.queued.push({ name, data, opts, resolve, reject });
      if (!this.scheduled && this.inFlight === 0) {
        this.scheduled = true;
        // setImmediate, not a microtask: requests whose bodies were read in the same I/O phase join this batch.
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  /** Jobs handed to `add` and not yet settled. */
  get pending(): number {
    return this.queued.length + this.inFlight;
  }

  /** Resolves once every job handed to `add` so far is stored or has failed (for shutdown: answer every request first). */
  flush(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (this.inFlight > 0 || this.queued.length === 0) return;
    const batch = this.queued.splice(0, this.maxBatch);
    this.inFlight = batch.length;
    void this.send(batch).finally(() => {
      this.inFlight = 0;
      if (this.queued.length > 0) this.pump();
      else for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  private async send(batch: Pending[]): Promise<void> {
    let jobs: Job[];
    try {
      jobs = await this.queue.addBulk(batch.map(({ name, data, opts }) => ({ name, data, opts })));
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => p.resolve(jobs[i]!));
  }
}
