import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { PET_COLUMNS, petRows, SocrataDataset, type SocrataColumn, type SocrataRow } from './socrata.data.ts';
import { createSocrataApp, type SocrataRequestLog, type SocrataServerState } from './socrata.server.ts';

export { SocrataDataset, PET_COLUMNS, petRows, type SocrataColumn, type SocrataRow } from './socrata.data.ts';
export { createSocrataApp, SODA_DEFAULT_LIMIT, SODA2_MAX_LIMIT, type SocrataRequestLog, type SocrataServerState } from './socrata.server.ts';

/** Seattle's pet licenses' dataset id. */
export const PET_DATASET = 'jguv-t9rb';

export interface SocrataDatasetOptions {
  id: string;
  name?: string;
  columns: SocrataColumn[];
  rowIdentifierColumnId?: number;
  rows?: SocrataRow[];
}

export interface SocrataSimulatorOptions {
  host?: string;
  port?: number;
  /** Pet-license rows in `jguv-t9rb` (created when > 0). Default 0. */
  pets?: number;
  datasets?: SocrataDatasetOptions[];
  /** Refuse requests carrying another `X-App-Token` (403). */
  appToken?: string;
  /** Every Nth `/resource/` request answers 429 without Retry-After. Default 0 (never). */
  throttleEvery?: number;
  /** Pose as SODA 2.0 (legacy types header, `$limit` ≤ 50,000). */
  legacy?: boolean;
}

export interface SocrataSimulator {
  /** The portal's base URL (a Socrata source's `baseUrl`). */
  url: string;
  state: SocrataServerState;
  dataset(id: string): SocrataDataset;
  /** Requests to `/resource/{id}.json` since start (or since `resetLog`). */
  resourceRequests(id?: string): SocrataRequestLog[];
  resetLog(): void;
  close(): Promise<void>;
}

export async function startSocrataSimulator(o: SocrataSimulatorOptions = {}): Promise<SocrataSimulator> {
  const datasets = new Map<string, SocrataDataset>();
  if (o.pets) {
    const ds = new SocrataDataset(PET_DATASET, 'Seattle Pet Licenses', PET_COLUMNS, undefined, 11);
    const { values, times } = petRows(o.pets);
    ds.addMany(values, times);
    datasets.set(ds.id, ds);
  }
  for (const d of o.datasets ?? []) {
    const ds = new SocrataDataset(d.id, d.name ?? d.id, d.columns, d.rowIdentifierColumnId, datasets.size + 1);
    if (d.rows?.length) ds.addMany(d.rows);
    datasets.set(ds.id, ds);
  }
  const state: SocrataServerState = { datasets, appToken: o.appToken, throttleEvery: o.throttleEvery ?? 0, computing: 0, legacy: o.legacy ?? false, log: [] };
  const app = createSocrataApp(state);
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve(s)).on('error', reject);
  });
  server.keepAliveTimeout = 1000;
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${o.host ?? '127.0.0.1'}:${port}`,
    state,
    dataset(id) {
      const ds = datasets.get(id);
      if (!ds) throw new Error(`no dataset ${id}`);
      return ds;
    },
    resourceRequests: (id) => state.log.filter((l) => l.path.startsWith('/resource/') && (id === undefined || l.path === `/resource/${id}.json`)),
    resetLog: () => void state.log.splice(0),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}
