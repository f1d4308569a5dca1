/** Top functions by self time in the .cpuprofile files node --cpu-prof wrote to a directory. */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

/** One block of lines per profile: its process (from the file name's pid) and top `n` by self time. */
export function topSelf(dir: string, n = 15): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile')).sort()) {
    const p = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((x) => [x.id, x]));
    const self = new Map<string, number>();
    let total = 0;
    // Self time: each sample's delta goes to the node on top of the stack then.
    p.samples.forEach((id, i) => {
      const node = byId.get(id)!;
      const { functionName, url, lineNumber } = node.callFrame;
      const file = url.replace(/^file:\/\//, '').replace(/.*node_modules\/\.pnpm\/([^/]+)\/node_modules\//, '$1 ').replace(/.*\/work\/main\//, '');
      const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim();
      const dt = p.timeDeltas[i] ?? 0;
      self.set(key, (self.get(key) ?? 0) + dt);
      total += dt;
    });
    const idle = (self.get('(idle)') ?? 0) / 1000;
    out.push(`\n${f}: ${(total / 1e6).toFixed(1)} s profiled, ${(idle / 1000).toFixed(1)} s idle`);
    for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, n)) out.push(`  ${(us / 1000).toFixed(0).padStart(7)} ms ${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
  }
  return out;
}
