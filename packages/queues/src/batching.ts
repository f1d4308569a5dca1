import type { Job, JobsOptions, Queue } from 'bullmq';

export interface JobBatcherOptions {
  /** Most adds in one addBulk (a bigger backlog goes out in several, one after another). */
  maxBatch?: number;
  /**
   * Job names whose adds may share one job: adds of that name handed over with
   * the same `group` and sent in the same batch become one job, whose data is
   * `combine` of theirs (in order). Each such add resolves with that shared job.
   */
  combine?: Record<string, (datas: unknown[]) => unknown>;
  /** Most adds combined into one job (default 100). */
  maxCombined?: number;
  /** Most total size (the adds' `size`, e.g. body bytes) combined into one job (default 1 MiB): big bodies go alone. */
  maxCombinedSize?: number;
}

/** A job as addBulk takes it. */
export interface JobSpec {
  name: string;
  data: unknown;
  opts?: JobsOptions;
}

/**
 * Stores jobs in one write: addBulk (one MULTI) for several, `add` (one script call) for one.
 * addBulk wraps even one job in a MULTI, whose ioredis pipeline copies every script command
 * of the client: 0.18 vs 0.07-0.11 ms of CPU a call.
 */
export async function addJobs(queue: Queue, specs: JobSpec[]): Promise<Job[]> {
  if (specs.length === 1) return [await queue.add(specs[0]!.name, specs[0]!.data, specs[0]!.opts)];
  return queue.addBulk(specs);
}

/** How an add may share a job: adds with the same group may; `size` counts toward maxCombinedSize. */
export interface Combinable {
  group: string;
  size: number;
}

interface Pending {
  name: string;
  data: unknown;
  opts: JobsOptions | undefined;
  share: Combinable | undefined;
  resolve(job: Job): void;
  reject(err: unknown): void;
}

/**
 * Adds jobs to a queue in `addBulk` batches (`add` for a batch of one), one in flight at a time (two measured
 * slower): the jobs handed to `add` in the same turn of the event loop, or while
 * the batch before is in flight, go to
 * Redis together (one pipeline, one write) instead of one command each. No
 * timer: an idle batcher sends at the next turn, so a lone job waits for
 * nothing, and a busy one batches exactly as much as arrived.
 *
 * Each `add` resolves with its job (its own, or the one it shares) only once Redis has stored it, and
 * rejects when its batch could not be stored, so a caller answers "accepted"
 * only for what is in Redis.
 */
export class JobBatcher {
  private readonly maxBatch: number;
  private readonly combine: Record<string, (datas: unknown[]) => unknown>;
  private readonly maxCombined: number;
  private readonly maxCombinedSize: number;
  private queued: Pending[] = [];
  /** Jobs of the batch in flight (0: none). */
  private inFlight = 0;
  private scheduled = false;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly queue: Queue, opts: JobBatcherOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 200;
    this.combine = opts.combine ?? {};
    this.maxCombined = opts.maxCombined ?? 100;
    this.maxCombinedSize = opts.maxCombinedSize ?? 1024 * 1024;
  }

  /**
   * `share`: adds of a combinable name (see `combine`) with the same group may
   * share one job; the caller gives the same group only to adds with the same options.
   */
  add(name: string, data: unknown, opts?: JobsOptions, share?: Combinable): Promise<Job> {
    return new Promise<Job>((resolve, reject) => {
      this.queued.push({ name, data, opts, share, resolve, reject });
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

  /** The batch's adds as jobs: combinable adds of one group share a job (at most maxCombined adds and maxCombinedSize each). */
  private jobsOf(batch: Pending[]): { owners: Pending[][]; specs: JobSpec[] } {
    const owners: Pending[][] = [];
    const open = new Map<string, { adds: Pending[]; size: number }>();
    for (const p of batch) {
      const key = p.share !== undefined && this.combine[p.name] ? `${p.name}\0${p.share.group}` : undefined;
      const shared = key !== undefined ? open.get(key) : undefined;
      if (shared && shared.adds.length < this.maxCombined && shared.size + p.share!.size <= this.maxCombinedSize) {
        shared.adds.push(p);
        shared.size += p.share!.size;
        continue;
      }
      const own = [p];
      owners.push(own);
      if (key !== undefined) open.set(key, { adds: own, size: p.share!.size });
    }
    const specs = owners.map((o) => ({ name: o[0]!.name, opts: o[0]!.opts, data: o.length === 1 ? o[0]!.data : this.combine[o[0]!.name]!(o.map((p) => p.data)) }));
    return { owners, specs };
  }

  private async send(batch: Pending[]): Promise<void> {
    let jobs: Job[];
    let owners: Pending[][];
    try {
      const planned = this.jobsOf(batch);
      owners = planned.owners;
      jobs = await addJobs(this.queue, planned.specs);
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    owners.forEach((o, i) => o.forEach((p) => p.resolve(jobs[i]!)));
  }
}
