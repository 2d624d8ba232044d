import { Analytics } from "./analytics.js";
import { ChatFocusError } from "./errors.js";
import { Http, type RequestOptions, type ResponseBody } from "./http.js";
import type { KeyValueStorage } from "./storage.js";
import { SyncEngine, type SyncOptions } from "./sync.js";

export { ChatFocusError } from "./errors.js";
export { memoryStorage, type KeyValueStorage } from "./storage.js";
export type { ChangeOrigin, SettingChanges } from "./sync.js";
export type { RequestBody, ResponseBody } from "./http.js";
export type { components, operations, paths } from "./api.js";

export interface ChatFocusOptions extends SyncOptions {
  /** The API's origin, e.g. `https://api.chatfocus.app`. */
  baseUrl: string;
  /** chrome.storage.local, or memoryStorage() in Node. */
  storage: KeyValueStorage;
  /** Sent as X-Client-Version (an old build is told to update with 426 `client_outdated`). */
  clientVersion: string;
  fetch?: typeof fetch;
}

export type User = ResponseBody<"auth_login">["user"];

const USER = "cf.user";

export class ChatFocusClient {
  readonly auth;
  readonly settings;
  readonly sync;
  readonly analytics;
  private readonly http: Http;

  constructor(options: ChatFocusOptions) {
    const baseUrl = options.baseUrl.replace(/\/+$/, "");
    const fetcher = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
    const http = (this.http = new Http(baseUrl, options.clientVersion, options.storage, fetcher));
    const engine = new SyncEngine(http, options.storage, baseUrl, options);
    const analytics = new Analytics(http, options.storage, { version: options.clientVersion, ...(options.browser ? { browser: options.browser } : {}), ...(options.platform ? { os: options.platform } : {}) });
    http.onSignedOut.addListener(() => void engine.clear());

    this.auth = {
      /** Starts a session; tokens live in storage and are refreshed automatically. */
      login: async (credentials: { email: string; password: string }): Promise<User> => {
        const { data } = await http.request<ResponseBody<"auth_login">>("POST", "/api/auth/login", {
          body: { ...credentials, device_name: options.deviceName ?? "" },
          auth: false,
        });
        // Another account's view and queue must not leak into this one's.
        const previous = (await options.storage.get(USER))[USER];
        if (previous !== undefined && previous !== data.user.id) await engine.clear();
        await options.storage.set({ [USER]: data.user.id });
        await http.saveTokens({ access: data.access, refresh: data.refresh });
        await analytics.refreshOptIn().catch(() => undefined);
        engine.resume();
        return data.user;
      },
      /** Pushes what it can, ends the session and forgets the account's data on this device. */
      logout: async (): Promise<void> => {
        await engine.now().catch(() => undefined);
        engine.stop();
        const refresh = await http.refreshToken();
        try {
          if (refresh) await http.request("POST", "/api/auth/logout", { body: { refresh }, auth: false });
        } finally {
          await http.saveTokens(null);
          await engine.clear();
          await analytics.remember(false);
        }
      },
      isSignedIn: () => http.signedIn(),
      /** An access token for calls the SDK does not wrap (refreshed when due). */
      accessToken: () => http.accessToken(),
      onSignedOut: http.onSignedOut,
    };

    this.settings = {
      /** Like chrome.storage.sync.get: only keys that exist; null or no argument → every key. */
      get: (keys?: string | string[] | null) => engine.get(keys),
      set: async (items: Record<string, unknown>): Promise<void> => {
        for (const [key, value] of Object.entries(items)) {
          if (value === undefined) throw new ChatFocusError({ status: 400, code: "validation_error", message: `${key}: undefined is not a JSON value (use remove).` });
        }
        await engine.write(Object.keys(items), (key) => ({ op: "set", value: items[key] }));
      },
      remove: async (keys: string | string[]): Promise<void> => {
        await engine.write(typeof keys === "string" ? [keys] : keys, () => ({ op: "delete" }));
      },
      /** Adds `delta` to a number (missing counts as 0); increments from several devices add up. Resolves to the local total. */
      increment: async (key: string, delta = 1): Promise<number> => {
        if (!Number.isFinite(delta)) throw new ChatFocusError({ status: 400, code: "validation_error", message: "delta must be a finite number." });
        let total = 0;
        await engine.write([key], (_, current) => {
          if (current !== undefined && typeof current !== "number") {
            throw new ChatFocusError({ status: 400, code: "validation_error", message: `${key} holds a ${typeof current}, not a number.` });
          }
          total = ((current as number | undefined) ?? 0) + delta;
          return { op: "incr", value: delta };
        });
        return total;
      },
      onChanged: engine.onChanged,
    };

    this.sync = {
      now: () => engine.now(),
      start: () => engine.start(),
      stop: () => engine.stop(),
      /** Local changes not yet acknowledged by the server. */
      pending: () => engine.pending(),
      deviceId: () => engine.getDeviceId(),
      get connected() {
        return engine.socketConnected;
      },
      /** Errors of background syncs (and ops the server refused as invalid, which are dropped). */
      onError: engine.onError,
    };

    this.analytics = {
      track: (name: string, props?: Record<string, string | number | boolean | null>, value?: number) => analytics.track(name, props, value),
      flush: () => analytics.flush(),
      setOptIn: (optIn: boolean) => analytics.setOptIn(optIn),
      optedIn: () => analytics.optedIn(),
    };
  }

  /** Any other API call with the session's token, e.g. `request("GET", "/api/sync/quota")`. */
  async request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T> {
    return (await this.http.request<T>(method, path, options)).data;
  }
}
