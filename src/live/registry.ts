/**
 * The live-grant registry: one entry per login this replica allowed whose user JWT has not expired, keyed by the
 * server that asked and that server's client id (cids are per server: a KICK sent to another server id would
 * disconnect someone else, so the pair is one key and never split). An entry keeps what re-evaluation needs: the
 * verified request (it carries the client's secrets, in memory only), the grant as issued, the decision id and the
 * revision that issued it.
 *
 * Outcomes:
 * - `add` replaces an entry with the same key; beyond `maxEntries` the OLDEST entry is evicted (counted by
 *   `onEvict`; that connection is then no longer re-evaluated and keeps its grant until its JWT expires);
 * - entries are dropped at their JWT's expiry (checked on every read and by `sweep()`);
 * - `LiveGrant` cannot leak its request by accident: JSON.stringify, util.inspect, String() and pino all see only the
 *   secret-free summary (the request sits in a private field; `request()` is the one deliberate way to read it).
 */
import type { AuthorizationRequest } from "../types.js";
import type { GrantSummary } from "./coverage.js";

const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/** A connection's address: the server that asked and that server's client id. */
export interface ConnectionKey {
  serverId: string;
  cid: number;
}

export function keyOf(k: ConnectionKey): string {
  return `${k.serverId}/${k.cid}`;
}

/** What `LiveGrant` shows to logs and JSON: no secrets. */
export interface LiveGrantView {
  server_id: string;
  cid: number;
  user_nkey: string;
  decision_id: string;
  revision: string | undefined;
  account: string;
  exp: number;
}

export class LiveGrant implements ConnectionKey {
  readonly #request: AuthorizationRequest;
  readonly serverId: string;
  readonly cid: number;
  readonly userNkey: string;
  readonly decisionId: string;
  /** Revision that issued the grant, or that last confirmed it. */
  revision: string | undefined;
  readonly grant: Readonly<GrantSummary>;

  constructor(init: {
    request: AuthorizationRequest;
    grant: GrantSummary;
    decisionId: string;
    revision?: string | undefined;
  }) {
    const cid = init.request.client_info.id;
    if (typeof cid !== "number" || !Number.isSafeInteger(cid) || cid <= 0) {
      throw new TypeError("LiveGrant: the request has no client_info.id");
    }
    this.#request = init.request;
    this.serverId = init.request.server_id.id;
    this.cid = cid;
    this.userNkey = init.request.user_nkey;
    this.decisionId = init.decisionId;
    this.revision = init.revision;
    this.grant = init.grant;
  }

  /** The verified request as it arrived (with the client's credentials): for re-evaluation only, never log it. */
  request(): AuthorizationRequest {
    return this.#request;
  }

  get key(): string {
    return keyOf(this);
  }

  /** JWT expiry, unix seconds (0 = none). */
  get exp(): number {
    return this.grant.exp;
  }

  view(): LiveGrantView {
    return {
      server_id: this.serverId,
      cid: this.cid,
      user_nkey: this.userNkey,
      decision_id: this.decisionId,
      revision: this.revision,
      account: this.grant.account,
      exp: this.grant.exp,
    };
  }

  toJSON(): LiveGrantView {
    return this.view();
  }

  toString(): string {
    return `LiveGrant(${this.key})`;
  }

  [INSPECT](): string {
    return `LiveGrant ${JSON.stringify(this.view())}`;
  }
}

export interface RegistryOptions {
  /** Most entries kept (default 100 000); the oldest is evicted beyond. */
  maxEntries?: number;
  /** Clock, ms since the epoch (tests). */
  now?: () => number;
  /** Called once per evicted entry (a metric). */
  onEvict?: (g: LiveGrant) => void;
}

export const DEFAULT_MAX_LIVE_GRANTS = 100_000;

export class LiveGrantRegistry {
  readonly #entries = new Map<string, LiveGrant>();
  readonly #max: number;
  readonly #now: () => number;
  readonly #onEvict: ((g: LiveGrant) => void) | undefined;
  #evicted = 0;
  #expired = 0;

  constructor(opts: RegistryOptions = {}) {
    const max = opts.maxEntries ?? DEFAULT_MAX_LIVE_GRANTS;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError("maxEntries must be an integer >= 1");
    this.#max = max;
    this.#now = opts.now ?? Date.now;
    this.#onEvict = opts.onEvict;
  }

  get size(): number {
    return this.#entries.size;
  }

  get evicted(): number {
    return this.#evicted;
  }

  get expired(): number {
    return this.#expired;
  }

  #isExpired(g: LiveGrant): boolean {
    return g.exp !== 0 && g.exp * 1000 <= this.#now();
  }

  /** Record an allowed login (an already expired grant is not kept). Returns the entry, or undefined. */
  add(g: LiveGrant): LiveGrant | undefined {
    if (this.#isExpired(g)) return undefined;
    this.#entries.delete(g.key); // re-insert at the end: insertion order is age order
    this.#entries.set(g.key, g);
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.values().next().value as LiveGrant;
      this.#entries.delete(oldest.key);
      this.#evicted++;
      this.#onEvict?.(oldest);
    }
    return g;
  }

  get(k: ConnectionKey): LiveGrant | undefined {
    const g = this.#entries.get(keyOf(k));
    if (g && this.#isExpired(g)) {
      this.#entries.delete(g.key);
      this.#expired++;
      return undefined;
    }
    return g;
  }

  /** Remove an entry, only if it is still this one (a newer login on the same key stays). */
  remove(g: LiveGrant): boolean {
    if (this.#entries.get(g.key) !== g) return false;
    return this.#entries.delete(g.key);
  }

  /** Drop every entry whose JWT has expired; returns how many. */
  sweep(): number {
    let n = 0;
    for (const g of this.#entries.values()) {
      if (this.#isExpired(g)) {
        this.#entries.delete(g.key);
        n++;
      }
    }
    this.#expired += n;
    return n;
  }

  /** A stable copy of the unexpired entries, oldest first. */
  snapshot(): LiveGrant[] {
    this.sweep();
    return [...this.#entries.values()];
  }

  clear(): void {
    this.#entries.clear();
  }
}
