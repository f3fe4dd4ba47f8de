/**
 * The sessions of a model being loaded: the eval graph, the plain Monte Carlo graph and, when it can
 * be built, the shared-prefix one; then the self-check of each through the same run functions requests
 * use (run.ts). Sessions are released when the load fails, and a shared-prefix graph that fails its
 * check is dropped (the plain one serves).
 */
import type { RuntimeOptions } from '../model.js';
import { ModelLoadError } from '../errors.js';
import type { Model as OnnxProto } from '../../onnx-proto/proto.js';
import { type GraphInfo, ModelFormatError } from './inspect.js';
import { type OrtSession, createSession } from './ort.js';
import { tensorRanks } from './probe.js';
import { evalGraph, inputTilePoint, mcGraph, sharedPrefixPoint } from './rewrite.js';
import { type GraphIo, type McGraphSession, runChunk, runEval } from './run.js';
import { type SelfCheckOptions, type ServingRuns, selfCheck } from './self-check.js';
import { planMc } from './tensor-mc-graph.js';
import { DEFAULT_MAX_RUN_BYTES } from './tensor-mc-run.js';
import { ShapeProbe } from './tensor-mc-shapes.js';

const firstLine = (s: string): string => s.split('\n')[0]!.slice(0, 300);

/** The sessions created so far, so that a failed load releases them all. */
export class SessionSet {
  private readonly sessions: OrtSession[] = [];
  /** Each session's graph, until the load ends: renew() creates it again. */
  private readonly graphs = new Map<OrtSession, Uint8Array>();

  constructor(
    readonly file: string,
    private readonly opts: RuntimeOptions,
  ) {}

  /** A session of a required graph; ModelLoadError naming `what` when onnxruntime refuses it. */
  async create(what: string, bytes: Uint8Array): Promise<OrtSession> {
    try {
      return this.add(await createSession(bytes, this.opts), bytes);
    } catch (err) {
      throw new ModelLoadError(
        this.file,
        `onnxruntime cannot load the ${what} graph: ${firstLine((err as Error).message)}`,
      );
    }
  }

  /** A session of an optional graph, or null when building or loading it fails. */
  async tryCreate(graph: () => Uint8Array): Promise<OrtSession | null> {
    try {
      const bytes = graph();
      return this.add(await createSession(bytes, this.opts), bytes);
    } catch {
      return null;
    }
  }

  async drop(session: OrtSession): Promise<void> {
    await session.release().catch(() => undefined);
    this.sessions.splice(this.sessions.indexOf(session), 1);
    this.graphs.delete(session);
  }

  /**
   * The same graph in a new session with the same options, this one released. onnxruntime's arena
   * keeps its peak for the session's life, and the self-check's runs (every shape up to maxRunRows, on
   * every graph) would leave it there: 57 → 19 MB for the two shipped models (bench/worker-memory.ts).
   */
  async renew(session: OrtSession): Promise<OrtSession> {
    const fresh = await createSession(this.graphs.get(session)!, this.opts);
    this.add(fresh, this.graphs.get(session)!);
    await this.drop(session);
    return fresh;
  }

  /** The graph of a session this set created (kept while the set lives: LiveSessions.renew). */
  graphOf(session: OrtSession): Uint8Array {
    return this.graphs.get(session)!;
  }

  async releaseAll(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release().catch(() => undefined)));
  }

  private add(session: OrtSession, graph: Uint8Array): OrtSession {
    this.sessions.push(session);
    this.graphs.set(session, graph);
    return session;
  }
}

/** The served sessions. */
export interface ModelSessions {
  evalSession: OrtSession;
  /** MC graph repeating the input rows (null: no live dropout). */
  mcPlain: McGraphSession | null;
  /** MC graph repeating after the shared prefix (null: nothing to share, switched off, or it failed). */
  mcShared: McGraphSession | null;
}

/** The eval and MC sessions of `model` (after foldAffine); the shared prefix only with opts.sharedPrefix. */
export async function createModelSessions(
  set: SessionSet,
  model: OnnxProto,
  info: GraphInfo,
  io: GraphIo,
  opts: RuntimeOptions,
): Promise<ModelSessions> {
  const evalSession = await set.create('eval', evalGraph(model, info));
  if (!io.masks.length) return { evalSession, mcPlain: null, mcShared: null };
  const plain = await set.create('Monte Carlo', mcGraph(model, info, inputTilePoint(info)));
  const mcPlain: McGraphSession = { session: plain, tileRanks: [2] };
  const point = opts.sharedPrefix ? sharedPrefixPoint(model, info) : null;
  if (!point) return { evalSession, mcPlain, mcShared: null };
  // the tensors repeated after the prefix must be float32 with the batch first; a graph that fails
  // that, or that onnxruntime rejects, is skipped: the plain MC graph serves instead
  const ranks = await tensorRanks(model, info, point.tensors, io.features, opts);
  const session = ranks ? await set.tryCreate(() => mcGraph(model, info, point)) : null;
  return { evalSession, mcPlain, mcShared: ranks && session ? { session, tileRanks: ranks } : null };
}

// RuntimeOptions.maxRunBytes is on main (c65cf36), after this branch's base: read through a cast until the merge
const budgetOf = (opts: RuntimeOptions): number | undefined => (opts as { maxRunBytes?: number }).maxRunBytes;

/**
 * The most tiled rows of one MC run within `opts.maxRunBytes`: the plain MC graph repeats every layer,
 * so a row costs the sum of its tensors' sizes, probed at 1 and 2 rows (tensor-mc-graph.ts). A wide
 * network (the flat mobilenet: megabytes a row) then runs, and self-checks, far fewer than maxRunRows
 * rows at once. A copy that skips the self-check keeps the rows it was given (the checked model's).
 */
export async function byteCappedRows(
  model: OnnxProto,
  info: GraphInfo,
  io: GraphIo,
  opts: RuntimeOptions,
): Promise<number> {
  if (!io.masks.length || opts.selfCheck === false) return opts.maxRunRows;
  const F = io.features;
  const spec = { name: io.inputName, datatype: 'FP32' as const, shape: [-1, F] };
  const probe = await ShapeProbe.create(model, info, [spec], opts).catch(() => null);
  try {
    const laws = await probe?.laws([{ name: io.inputName, dims: [2, F], data: new Float32Array(2 * F) }]);
    if (!laws) return opts.maxRunRows;
    const plan = planMc(
      { model, info, dataInputs: [io.inputName], outputName: io.outputName, sharedPrefix: false },
      laws,
    );
    const perRow = Math.max(1, plan.bytesPerRow.repeated);
    return Math.max(1, Math.min(opts.maxRunRows, Math.floor((budgetOf(opts) ?? DEFAULT_MAX_RUN_BYTES) / perRow)));
  } catch {
    // a graph the probe cannot plan keeps the row limit (the sessions' own load reports what is wrong)
    return opts.maxRunRows;
  } finally {
    await probe?.release();
  }
}

/**
 * Self-check the sessions (self-check.ts): the MC graphs with masks of 1 must equal the eval graph at
 * every run shape requests produce. The plain graph is required (a model whose MC graph fails would
 * fail at request time): ModelLoadError. The shared-prefix one is an optimisation: when it fails it is
 * released, and the returned sessions go without it, with the reason. The sessions returned are new
 * ones of the checked graphs (SessionSet.renew), without the arena the check's runs grew.
 */
export async function checkModelSessions(
  set: SessionSet,
  sessions: ModelSessions,
  io: GraphIo & { outputSize: number },
  opts: RuntimeOptions,
  check: Partial<SelfCheckOptions> = {},
): Promise<{ sessions: ModelSessions; sharedPrefixSkipped: string | null }> {
  // a copy of a model the main thread has checked (an MC worker's: RuntimeOptions.selfCheck) skips the runs,
  // which would leave their buffers (every shape up to maxRunRows) in onnxruntime's arena in every thread
  if (opts.selfCheck === false) return { sessions, sharedPrefixSkipped: null };
  const checked = await selfCheckSessions(set, sessions, io, opts, check);
  return { ...checked, sessions: await renewSessions(set, checked.sessions) };
}

/** The served sessions created again (SessionSet.renew). */
async function renewSessions(set: SessionSet, s: ModelSessions): Promise<ModelSessions> {
  const renewMc = async (g: McGraphSession | null) => (g ? { ...g, session: await set.renew(g.session) } : null);
  return {
    evalSession: await set.renew(s.evalSession),
    mcPlain: await renewMc(s.mcPlain),
    mcShared: await renewMc(s.mcShared),
  };
}

/** The self-check runs of checkModelSessions. */
async function selfCheckSessions(
  set: SessionSet,
  sessions: ModelSessions,
  io: GraphIo & { outputSize: number },
  opts: RuntimeOptions,
  check: Partial<SelfCheckOptions>,
): Promise<{ sessions: ModelSessions; sharedPrefixSkipped: string | null }> {
  const runs = (mcGraphs: ServingRuns['mcGraphs']): ServingRuns => ({
    features: io.features,
    outputSize: io.outputSize,
    maxRunRows: opts.maxRunRows,
    evalRun: (x, rows) => runEval(io, sessions.evalSession, x, rows),
    mcGraphs,
  });
  const { mcPlain, mcShared } = sessions;
  try {
    await selfCheck(runs(mcPlain ? [{ label: 'plain', runOnes: runOnes(io, mcPlain) }] : []), check);
  } catch (err) {
    if (err instanceof ModelFormatError) throw new ModelLoadError(set.file, err.message);
    throw err;
  }
  if (!mcShared) return { sessions, sharedPrefixSkipped: null };
  try {
    await selfCheck(runs([{ label: 'shared-prefix', runOnes: runOnes(io, mcShared) }]), check);
    return { sessions, sharedPrefixSkipped: null };
  } catch (err) {
    if (!(err instanceof ModelFormatError)) throw err;
    await set.drop(mcShared.session);
    return { sessions: { ...sessions, mcShared: null }, sharedPrefixSkipped: err.message };
  }
}

/** An MC graph run as a request runs it, with every mask 1. */
const runOnes = (io: GraphIo, g: McGraphSession) => (x: Float32Array, rows: number, samples: number) =>
  runChunk(
    io,
    g,
    x,
    io.masks.map((m) => new Float32Array(samples * rows * m.rowSize)),
    samples,
    rows,
    (b) => b.fill(1),
  );

/**
 * The served sessions of a loaded model, renewable at a quiet moment. onnxruntime-node 1.30 has no call
 * to shrink a session's arena, which keeps the peak of the session's runs (with the mask buffers, RSS
 * +20 to +24 MB after a short MC load with MC_WORKERS=0, bench/idle-memory.ts); renew() releases the
 * sessions and creates them again from their graphs' bytes (kept: a tabular model's graphs are 39–45 KB
 * each). Released first, so that the new sessions take the memory the old ones freed: created first, they
 * were placed above it in glibc's heap, which kept the freed blocks resident under them. A renewal
 * starts only when no run is running, and runs that start during it wait for the new sessions (a few ms).
 */
export class LiveSessions {
  private current: ModelSessions;
  private users = 0;
  /** A run since the last renewal (a model that did not run has nothing to give back). */
  private ran = false;
  /** The renewal under way: runs wait for it. */
  private renewing: Promise<void> | null = null;
  /** The current sessions are released and not yet created again (renew). */
  private released = false;
  private closed = false;
  renewals = 0;

  constructor(
    sessions: ModelSessions,
    private readonly graphs: SessionGraphs,
    private readonly opts: RuntimeOptions,
  ) {
    this.current = sessions;
  }

  /** The served sessions (their graphs and whether each exists do not change with renewals). */
  get sessions(): ModelSessions {
    return this.current;
  }

  /** Run `fn` on the current sessions, holding them until it settles. */
  async use<T>(fn: (s: ModelSessions) => Promise<T>): Promise<T> {
    for (let r = this.renewing; r !== null; r = this.renewing) await r.catch(() => undefined);
    // a renewal that could not create the sessions again: this run tries once more (its error is the run's)
    if (this.released) await this.track(this.recreate());
    const s = this.current;
    this.ran = true;
    this.users++;
    try {
      return await fn(s);
    } finally {
      this.users--;
    }
  }

  /**
   * New sessions of the same graphs in place of the current ones, when runs happened since the last
   * renewal and none is running; false when it did nothing.
   */
  async renew(): Promise<boolean> {
    if (!this.ran || this.users > 0 || this.renewing || this.closed) return false;
    await this.track(
      (async () => {
        await releaseSessions(this.current);
        this.released = true;
        await this.recreate();
        this.ran = false;
        this.renewals++;
      })(),
    );
    return true;
  }

  /** `work` as the renewal under way, which runs wait for. */
  private async track(work: Promise<void>): Promise<void> {
    this.renewing = work;
    try {
      await work;
    } finally {
      this.renewing = null;
    }
  }

  /** The released sessions created again (the same bytes made them at load: a failure is passing, memory). */
  private async recreate(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        this.current = await this.create(this.current);
        this.released = false;
        if (this.closed) await releaseSessions(this.current);
        return;
      } catch (err) {
        if (attempt === 3) throw err;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.renewing?.catch(() => undefined);
    if (!this.released) await releaseSessions(this.current);
  }

  private async create(s: ModelSessions): Promise<ModelSessions> {
    const made: OrtSession[] = [];
    const again = async (bytes: Uint8Array) => {
      const fresh = await createSession(bytes, this.opts);
      made.push(fresh);
      return fresh;
    };
    const mc = async (g: McGraphSession | null, bytes: Uint8Array | null) =>
      g && bytes ? { ...g, session: await again(bytes) } : null;
    try {
      return {
        evalSession: await again(this.graphs.evalSession),
        mcPlain: await mc(s.mcPlain, this.graphs.mcPlain),
        mcShared: await mc(s.mcShared, this.graphs.mcShared),
      };
    } catch (err) {
      await Promise.all(made.map((m) => m.release().catch(() => undefined)));
      throw err;
    }
  }
}

/** The graph bytes of each served session. */
export interface SessionGraphs {
  evalSession: Uint8Array;
  mcPlain: Uint8Array | null;
  mcShared: Uint8Array | null;
}

/** The graphs of `sessions`, from the set that created them. */
export function graphsOf(set: SessionSet, sessions: ModelSessions): SessionGraphs {
  return {
    evalSession: set.graphOf(sessions.evalSession),
    mcPlain: sessions.mcPlain ? set.graphOf(sessions.mcPlain.session) : null,
    mcShared: sessions.mcShared ? set.graphOf(sessions.mcShared.session) : null,
  };
}

/** Release a model's sessions (errors ignored: a released session has nothing more to give back). */
export async function releaseSessions(s: ModelSessions): Promise<void> {
  const all = [s.evalSession, s.mcPlain?.session, s.mcShared?.session];
  await Promise.all(all.filter((x): x is OrtSession => !!x).map((x) => x.release().catch(() => undefined)));
}
