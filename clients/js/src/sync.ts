import { ChatFocusError, localError } from "./errors.js";
import { Listeners } from "./events.js";
import { compareHlc, Hlc, parseHlc, type HlcState } from "./hlc.js";
import type { Http, RequestBody, ResponseBody } from "./http.js";
import type { KeyValueStorage } from "./storage.js";

export type SettingChanges = Record<string, { oldValue?: unknown; newValue?: unknown }>;
export type ChangeOrigin = "local" | "remote";
type Op = RequestBody<"sync_push">["ops"][number] & { value?: unknown };
type Pulled = ResponseBody<"sync_pull">["changes"][number];

const DEVICE = "cf.device";
const HLC = "cf.hlc";
const QUEUE = "cf.queue";
const CURSOR = "cf.cursor";
const REGISTERED = "cf.registered";
const VIEW = "cf.v.";
const KEY = /^[A-Za-z0-9._:/-]{1,128}$/;
const MAX_OPS = 100;
// Under the server's 256 KB push limit, with room for the envelope.
const MAX_PUSH_BYTES = 200_000;
const MAX_ROUNDS = 20;

export interface SyncOptions {
  /** Polling interval while the real-time socket is absent or down (ms). */
  pollInterval?: number;
  /** Polling interval while the socket is up, in case a poke was lost (ms). */
  socketPollInterval?: number;
  /** The real-time socket's URL (default: the API's origin, ws(s)://…/ws/sync). */
  socketUrl?: string;
  /** The WebSocket constructor (default: the platform's; none → polling only). */
  WebSocket?: typeof WebSocket;
  deviceName?: string;
  browser?: string;
  platform?: string;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
/** 1 s, 2 s, 4 s … capped at 60 s, each drawn between half and all of it so devices spread out. */
export const backoffDelay = (failures: number, random = Math.random) => Math.min(60_000, 1000 * 2 ** Math.max(0, failures - 1)) * (0.5 + random() / 2);

function applyOp(state: { value: unknown; hlc: HlcState }, op: Op): void {
  const hlc = parseHlc(op.hlc);
  if (op.op === "incr") {
    state.value = (typeof state.value === "number" ? state.value : 0) + (op.value as number);
    if (compareHlc(hlc, state.hlc) > 0) state.hlc = hlc;
  } else if (compareHlc(hlc, state.hlc) > 0) {
    state.value = op.op === "set" ? op.value : undefined;
    state.hlc = hlc;
  }
}

/**
 * The device's replica: a local view of every key, a queue of local ops not yet acknowledged, a
 * cursor (the last server version pulled) and the HLC, all in storage. Local writes go to the view
 * and the queue at once; a sync pushes the queue, then pulls until the server has nothing newer,
 * and replays still-queued ops over what it pulled, by the server's rules, so the view is what the
 * server will hold once the queue is through.
 */
export class SyncEngine {
  readonly onChanged = new Listeners<[SettingChanges, ChangeOrigin]>();
  readonly onError = new Listeners<[ChatFocusError]>();
  private readonly ready: Promise<void>;
  private deviceId = "";
  private hlc!: Hlc;
  private chain: Promise<unknown> = Promise.resolve();
  private running: Promise<void> | null = null;
  private again = false;
  // Background state: `wanted` survives a sign-out, so the next login resumes it.
  private wanted = false;
  private started = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAt = Infinity;
  private failures = 0;
  private socket: WebSocket | null = null;
  private socketUp = false;
  private socketFailures = 0;
  private socketTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly http: Http,
    private readonly storage: KeyValueStorage,
    private readonly baseUrl: string,
    private readonly options: SyncOptions,
  ) {
    this.ready = this.load();
  }

  private async load(): Promise<void> {
    const saved = await this.storage.get([DEVICE, HLC]);
    this.deviceId = (saved[DEVICE] as string) ?? crypto.randomUUID();
    this.hlc = new Hlc((saved[HLC] as HlcState) ?? [0, 0], () => this.http.now());
    if (!saved[DEVICE]) await this.storage.set({ [DEVICE]: this.deviceId });
  }

  async getDeviceId(): Promise<string> {
    await this.ready;
    return this.deviceId;
  }

  /** Runs state changes one at a time: each reads and writes the queue and the view as a whole. */
  private serial<T>(task: () => Promise<T>): Promise<T> {
    const result = this.chain.then(() => this.ready).then(task);
    this.chain = result.catch(() => undefined);
    return result;
  }

  private async queue(): Promise<Op[]> {
    return ((await this.storage.get(QUEUE))[QUEUE] as Op[]) ?? [];
  }

  async pending(): Promise<number> {
    return (await this.queue()).length;
  }

  // --- Local view ------------------------------------------------------------------------

  async get(keys?: string | string[] | null): Promise<Record<string, unknown>> {
    await this.ready;
    const wanted = keys == null ? null : (typeof keys === "string" ? [keys] : keys).map((key) => VIEW + key);
    const stored = await this.storage.get(wanted);
    const view: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(stored)) if (key.startsWith(VIEW)) view[key.slice(VIEW.length)] = value;
    return view;
  }

  /** Applies local edits to the view and queues them as ops; `edit` maps each key to its op given the current value. */
  write(keys: string[], edit: (key: string, current: unknown) => Pick<Op, "op" | "value">): Promise<SettingChanges> {
    for (const key of keys) if (!KEY.test(key)) throw localError("validation_error", `Invalid key ${JSON.stringify(key)}: 1-128 of A-Z a-z 0-9 . _ : / -`);
    return this.serial(async () => {
      const [view, queue] = [await this.get(keys), await this.queue()];
      const changes: SettingChanges = {};
      const items: Record<string, unknown> = {};
      const removed: string[] = [];
      for (const key of keys) {
        const op = { op_id: crypto.randomUUID(), key, ...edit(key, view[key]), hlc: this.hlc.tick() } as Op;
        // A newer set or delete makes an older queued one pointless, unless an incr of the key sits between them.
        if (op.op !== "incr" && !queue.some((queued) => queued.key === key && queued.op === "incr")) {
          for (let i = queue.length - 1; i >= 0; i--) if (queue[i].key === key) queue.splice(i, 1);
        }
        queue.push(op);
        const state = { value: view[key], hlc: [0, 0] as HlcState };
        applyOp(state, op);
        if (!same(state.value, view[key])) changes[key] = { oldValue: view[key], newValue: state.value };
        view[key] = state.value;
        if (state.value === undefined) removed.push(VIEW + key);
        else items[VIEW + key] = state.value;
      }
      await this.storage.set({ ...items, [QUEUE]: queue, [HLC]: this.hlc.state });
      if (removed.length) await this.storage.remove(removed);
      if (Object.keys(changes).length) this.onChanged.emit(changes, "local");
      this.schedule(0);
      return changes;
    });
  }

  // --- Sync ------------------------------------------------------------------------------

  /** Pushes what is queued and pulls until converged; callers arriving during a sync share it (and it runs once more for them). */
  now(): Promise<void> {
    this.again = true;
    this.running ??= (async () => {
      try {
        while (this.again) {
          this.again = false;
          await this.converge();
        }
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  private async converge(): Promise<void> {
    await this.ready;
    await this.register();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const superseded = await this.push();
      const pulled = await this.pull();
      if ([...superseded].some((key) => !pulled.has(key))) {
        // The winning write is older than our cursor (e.g. a clock far ahead): only the whole document shows it.
        await this.fullResync();
      }
      if ((await this.queue()).length === 0) return;
    }
  }

  private async register(): Promise<void> {
    if ((await this.storage.get(REGISTERED))[REGISTERED]) return;
    const { deviceName: name, browser, platform } = this.options;
    if (name || browser || platform) {
      await this.http.request("POST", "/api/sync/devices", {
        body: { device_id: this.deviceId, name: name ?? "", browser: browser ?? "", platform: platform ?? "" },
      });
    }
    await this.storage.set({ [REGISTERED]: true });
  }

  private async push(): Promise<Set<string>> {
    const superseded = new Set<string>();
    for (;;) {
      const queue = await this.queue();
      if (!queue.length) return superseded;
      const batch: Op[] = [];
      let bytes = 0;
      for (const op of queue.slice(0, MAX_OPS)) {
        bytes += JSON.stringify(op).length;
        if (batch.length && bytes > MAX_PUSH_BYTES) break;
        batch.push(op);
      }
      let results: ResponseBody<"sync_push">["results"];
      try {
        results = (await this.http.request<ResponseBody<"sync_push">>("POST", "/api/sync/push", { body: { device_id: this.deviceId, ops: batch } })).data.results;
      } catch (error) {
        if (!(error instanceof ChatFocusError && error.status === 400 && error.code !== "clock_drift")) throw error;
        // One bad op fails the whole batch; find it alone so it cannot hold the queue forever.
        await this.dropInvalid(batch, error);
        continue;
      }
      for (const result of results) if (result.status === "superseded") superseded.add(batch.find((op) => op.op_id === result.op_id)!.key);
      await this.acknowledge(batch);
    }
  }

  private async dropInvalid(batch: Op[], error: ChatFocusError): Promise<void> {
    if (batch.length === 1) {
      await this.acknowledge(batch);
      this.onError.emit(error);
      return;
    }
    for (const op of batch) {
      try {
        await this.http.request("POST", "/api/sync/push", { body: { device_id: this.deviceId, ops: [op] } });
        await this.acknowledge([op]);
      } catch (single) {
        if (single instanceof ChatFocusError && single.status === 400 && single.code !== "clock_drift") await this.dropInvalid([op], single);
        else throw single;
      }
    }
  }

  private acknowledge(ops: Op[]): Promise<void> {
    const done = new Set(ops.map((op) => op.op_id));
    return this.serial(async () => {
      await this.storage.set({ [QUEUE]: (await this.queue()).filter((op) => !done.has(op.op_id)) });
    });
  }

  private async pull(): Promise<Set<string>> {
    const keys = new Set<string>();
    for (;;) {
      const since = ((await this.storage.get(CURSOR))[CURSOR] as number) ?? 0;
      let page;
      try {
        page = await this.http.request<ResponseBody<"sync_pull">>("GET", `/api/sync/pull?since=${since}`, {
          headers: since ? { "If-None-Match": `"v${since}"` } : {},
        });
      } catch (error) {
        if (error instanceof ChatFocusError && (error.code === "cursor_expired" || error.code === "cursor_ahead")) {
          await this.fullResync();
          return keys;
        }
        throw error;
      }
      if (page.status === 304) return keys;
      for (const change of page.data.changes) keys.add(change.key);
      await this.applyRemote(page.data.changes, page.data.version, false);
      if (!page.data.has_more) return keys;
    }
  }

  /** The whole document (after 410/409 or a lost supersede): keys it lacks are gone. */
  private async fullResync(): Promise<void> {
    const { data } = await this.http.request<ResponseBody<"sync_settings_get">>("GET", "/api/sync/settings");
    const changes: Pulled[] = Object.entries(data.settings).map(([key, value]) => ({ key, value, deleted: false, version: data.version, hlc: "0-0", device_id: "" }));
    await this.applyRemote(changes, data.version, true);
  }

  private applyRemote(changes: Pulled[], version: number, whole: boolean): Promise<void> {
    return this.serial(async () => {
      const queue = await this.queue();
      const view = await this.get(whole ? null : changes.map((change) => change.key));
      if (whole) {
        const present = new Set(changes.map((change) => change.key));
        for (const key of Object.keys(view)) if (!present.has(key)) changes.push({ key, value: null, deleted: true, version, hlc: "0-0", device_id: "" });
      }
      const diff: SettingChanges = {};
      const items: Record<string, unknown> = { [CURSOR]: version };
      const removed: string[] = [];
      for (const change of changes) {
        const state = { value: change.deleted ? undefined : change.value, hlc: parseHlc(change.hlc) };
        this.hlc.receive(state.hlc);
        for (const op of queue) if (op.key === change.key) applyOp(state, op);
        if (same(state.value, view[change.key])) continue;
        diff[change.key] = { oldValue: view[change.key], newValue: state.value };
        if (state.value === undefined) removed.push(VIEW + change.key);
        else items[VIEW + change.key] = state.value;
      }
      items[HLC] = this.hlc.state;
      await this.storage.set(items);
      if (removed.length) await this.storage.remove(removed);
      if (Object.keys(diff).length) this.onChanged.emit(diff, "remote");
    });
  }

  /** Forgets the account's data on this device (sign-out); the device id and the HLC stay. */
  clear(): Promise<void> {
    return this.serial(async () => {
      const keys = Object.keys(await this.storage.get(null)).filter((key) => key.startsWith(VIEW));
      await this.storage.remove([...keys, QUEUE, CURSOR, REGISTERED]);
    });
  }

  // --- Background ------------------------------------------------------------------------

  /** Syncs in the background: on local changes, on the socket's pokes, else by polling; honours Backoff and Retry-After. */
  start(): void {
    this.wanted = true;
    this.resume();
  }

  resume(): void {
    if (!this.wanted || this.started) return;
    this.started = true;
    this.connect();
    this.schedule(0);
  }

  stop(): void {
    this.wanted = false;
    this.halt();
  }

  private halt(): void {
    this.started = false;
    clearTimeout(this.timer);
    clearTimeout(this.socketTimer);
    this.timerAt = Infinity;
    this.socket?.close(1000);
    this.socket = null;
    this.socketUp = false;
  }

  get socketConnected(): boolean {
    return this.socketUp;
  }

  private schedule(ms: number): void {
    if (!this.started) return;
    const at = Math.max(Date.now() + ms, this.http.backoffUntil);
    if (at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.tick(), at - Date.now());
  }

  private async tick(): Promise<void> {
    this.timerAt = Infinity;
    let wait: number;
    try {
      await this.now();
      this.failures = 0;
      wait = this.socketUp ? (this.options.socketPollInterval ?? 300_000) : (this.options.pollInterval ?? 30_000);
    } catch (error) {
      const failure = error instanceof ChatFocusError ? error : localError("client_error", String(error), 0);
      if (failure.code === "not_authenticated" || failure.code === "token_invalid" || failure.code === "token_reused") {
        this.halt();
        this.onError.emit(failure);
        return;
      }
      this.failures++;
      wait = failure.retryAfter !== null ? failure.retryAfter * 1000 * (1 + Math.random() / 5) : backoffDelay(this.failures);
      this.onError.emit(failure);
    }
    this.schedule(wait);
  }

  private connect(): void {
    const Socket = this.options.WebSocket ?? globalThis.WebSocket;
    if (!this.started || !Socket) return;
    const socket = new Socket(this.options.socketUrl ?? `${this.baseUrl.replace(/^http/, "ws")}/ws/sync`);
    this.socket = socket;
    socket.onopen = async () => {
      try {
        socket.send(JSON.stringify({ type: "auth", access: await this.http.accessToken(), device_id: await this.getDeviceId() }));
        this.socketUp = true;
        this.socketFailures = 0;
        // Pokes sent while this device was disconnected are lost: catch up once.
        this.schedule(0);
      } catch {
        socket.close();
      }
    };
    socket.onmessage = (event) => {
      let message: { type?: string; version?: number };
      try {
        message = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (message.type === "changed") this.schedule(0);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.socketUp = false;
      if (!this.started) return;
      this.socketFailures++;
      // 4429: this account has too many sockets open; wait long before taking one from another device.
      const wait = event.code === 4429 ? 60_000 * (0.5 + Math.random() / 2) : backoffDelay(this.socketFailures);
      const retry = event.code === 4401 ? this.http.accessToken().then((access) => this.http.refreshAfter(access)) : Promise.resolve("");
      retry.then(
        () => {
          this.socketTimer = setTimeout(() => this.connect(), wait);
        },
        (error) => this.onError.emit(error),
      );
      // Polling takes over while the socket is down.
      this.schedule(this.options.pollInterval ?? 30_000);
    };
  }
}
