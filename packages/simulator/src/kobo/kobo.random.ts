/** A small seeded PRNG (mulberry32): the same seed and the same calls give the same records. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** An RFC 4122 v4-shaped uuid, deterministic. */
  uuid(): string {
    const h = Array.from({ length: 32 }, () => this.int(0, 15).toString(16));
    h[12] = '4';
    h[16] = ((this.int(0, 15) & 0x3) | 0x8).toString(16);
    const s = h.join('');
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
  }

  /** Kobo-style uid: a prefix letter and 21 base62 characters (assets `a…`, versions `v…`, hooks `h…`). */
  uid(prefix: string): string {
    const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    let s = prefix;
    while (s.length < 22) s += abc[this.int(0, abc.length - 1)];
    return s;
  }
}
