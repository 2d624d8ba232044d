import type { operations } from "./api.js";
import { ChatFocusError, errorFromResponse, headerSeconds, localError } from "./errors.js";
import { Listeners } from "./events.js";
import type { KeyValueStorage } from "./storage.js";

type Json<T> = T extends { content: { "application/json": infer Body } } ? Body : never;
/** The JSON body an operation of the committed OpenAPI schema takes. */
export type RequestBody<Op extends keyof operations> = operations[Op] extends { requestBody: infer Body } ? Json<Body> : never;
/** The JSON body an operation answers with on success. */
export type ResponseBody<Op extends keyof operations, Status extends number = 200> = Status extends keyof operations[Op]["responses"]
  ? Json<operations[Op]["responses"][Status]>
  : never;

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** false for the endpoints used before there is a session. */
  auth?: boolean;
}

export interface HttpResult<T> {
  status: number;
  data: T;
  headers: Headers;
}

interface Tokens {
  access: string;
  refresh: string;
}

const TOKENS = "cf.tokens";
// Refresh this long before the access token expires rather than spend a request on a 401.
const EXPIRY_MARGIN_MS = 30_000;
const SESSION_CODES = new Set(["token_invalid", "not_authenticated"]);

function expiresAt(jwt: string): number {
  try {
    const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).exp * 1000;
  } catch {
    return Infinity;
  }
}

/** Requests to the API with the session's tokens: the access token is refreshed once for all callers waiting on it. */
export class Http {
  /** Server clock minus the local clock, in ms, when they differ by more than a second. */
  clockOffset = 0;
  /** No sync the user did not ask for before this time (the server's Backoff header). */
  backoffUntil = 0;
  readonly onSignedOut = new Listeners<[]>();
  private tokens: Tokens | null | undefined;
  private refreshing: Promise<string> | null = null;

  constructor(
    private readonly baseUrl: string,
    private readonly clientVersion: string,
    private readonly storage: KeyValueStorage,
    private readonly fetcher: typeof fetch,
  ) {}

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<HttpResult<T>> {
    const useAuth = options.auth !== false;
    for (let attempt = 0; ; attempt++) {
      const access = useAuth ? await this.accessToken() : null;
      const headers: Record<string, string> = { "X-Client-Version": this.clientVersion, ...options.headers };
      if (options.body !== undefined) headers["Content-Type"] = "application/json";
      if (access) headers.Authorization = `Bearer ${access}`;
      let response: Response;
      try {
        response = await this.fetcher(this.baseUrl + path, {
          method,
          headers,
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
        });
      } catch (error) {
        throw new ChatFocusError({ status: 0, code: "network_error", message: `The server could not be reached: ${error}` });
      }
      this.observe(response.headers);
      if (response.ok || response.status === 304) {
        const data = response.status === 204 || response.status === 304 ? null : await response.json();
        return { status: response.status, data: data as T, headers: response.headers };
      }
      const error = await errorFromResponse(response);
      if (access && response.status === 401 && SESSION_CODES.has(error.code) && attempt === 0) {
        await this.refreshAfter(access);
        continue;
      }
      throw error;
    }
  }

  private observe(headers: Headers): void {
    const serverTime = Number(headers.get("X-Server-Time"));
    if (serverTime > 0) {
      const offset = serverTime - Date.now();
      this.clockOffset = Math.abs(offset) > 1000 ? offset : 0;
    }
    const backoff = headerSeconds(headers.get("Backoff"));
    if (backoff) this.backoffUntil = Date.now() + backoff * 1000;
  }

  now(): number {
    return Date.now() + this.clockOffset;
  }

  private async loadTokens(): Promise<Tokens | null> {
    if (this.tokens === undefined) this.tokens = ((await this.storage.get(TOKENS))[TOKENS] as Tokens) ?? null;
    return this.tokens;
  }

  async saveTokens(tokens: Tokens | null): Promise<void> {
    this.tokens = tokens;
    if (tokens) await this.storage.set({ [TOKENS]: tokens });
    else await this.storage.remove(TOKENS);
  }

  async signedIn(): Promise<boolean> {
    return (await this.loadTokens()) !== null;
  }

  async refreshToken(): Promise<string | null> {
    return (await this.loadTokens())?.refresh ?? null;
  }

  /** A usable access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    const tokens = await this.loadTokens();
    if (!tokens) throw localError("not_authenticated", "Not signed in: call auth.login() first.", 401);
    if (expiresAt(tokens.access) - EXPIRY_MARGIN_MS > this.now()) return tokens.access;
    return this.refreshAfter(tokens.access);
  }

  /**
   * A new access token for callers whose token `stale` stopped working. Callers arriving while a
   * refresh is under way wait for it, and a caller whose token was already replaced gets the new
   * one: a refresh token is single use, so two refreshes of one session would sign it out.
   */
  refreshAfter(stale: string): Promise<string> {
    if (this.tokens && this.tokens.access !== stale) return Promise.resolve(this.tokens.access);
    this.refreshing ??= this.refresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async refresh(): Promise<string> {
    const refresh = (await this.loadTokens())?.refresh;
    if (!refresh) throw localError("not_authenticated", "Not signed in: call auth.login() first.", 401);
    try {
      const { data } = await this.request<ResponseBody<"auth_refresh">>("POST", "/api/auth/refresh", { body: { refresh }, auth: false });
      await this.saveTokens(data);
      return data.access;
    } catch (error) {
      if (error instanceof ChatFocusError && error.status === 401) {
        await this.saveTokens(null);
        this.onSignedOut.emit();
      }
      throw error;
    }
  }
}
