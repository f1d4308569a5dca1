import type { Cursor, PullOptions, PullPage } from '../connector.ts';
import type { SourceConnector } from '../connector.ts';

/**
 * A connector whose pulls stop after `limit` records (test mode): the pages it
 * yields carry no cursor, so a limited run loaded with `--write` never moves the
 * stored cursor past records it did not read.
 */
export function limitConnector<C extends SourceConnector>(connector: C, limit: number): SourceConnector {
  const limited = Object.create(connector) as SourceConnector;
  limited.pull = async function* (formId: string, cursor: Cursor | null, opts: PullOptions): AsyncIterable<PullPage> {
    let left = limit;
    for await (const page of connector.pull(formId, cursor, opts)) {
      if (left <= 0) break;
      const submissions = page.submissions.slice(0, left);
      left -= submissions.length;
      if (submissions.length) yield { submissions, total: page.total };
      if (left <= 0) break;
    }
  };
  return limited;
}
