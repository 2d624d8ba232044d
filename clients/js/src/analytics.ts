import { ChatFocusError } from "./errors.js";
import type { Http, RequestBody } from "./http.js";
import type { KeyValueStorage } from "./storage.js";

type Event = RequestBody<"analytics_events_ingest">["events"][number];
interface State {
  optIn: boolean;
  events: Event[];
}

const ANALYTICS = "cf.analytics";
const BATCH = 100;
// Events kept while offline; the oldest go first beyond it.
const MAX_QUEUED = 1000;
const FLUSH_AT = 20;
const FLUSH_AFTER_MS = 30_000;

/** Product events, batched; without the user's opt-in (account preference analytics_opt_in) nothing is queued or sent. */
export class Analytics {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly http: Http,
    private readonly storage: KeyValueStorage,
    private readonly client: Event["client"],
  ) {}

  private async state(): Promise<State> {
    return ((await this.storage.get(ANALYTICS))[ANALYTICS] as State) ?? { optIn: false, events: [] };
  }

  async optedIn(): Promise<boolean> {
    return (await this.state()).optIn;
  }

  /** Records the user's choice in their account preferences (and forgets queued events on opt-out). */
  async setOptIn(optIn: boolean): Promise<void> {
    await this.http.request("PATCH", "/api/users/me/settings", { body: { analytics_opt_in: optIn } });
    await this.remember(optIn);
  }

  /** Reads the choice from the account (after login). */
  async refreshOptIn(): Promise<void> {
    const { data } = await this.http.request<{ analytics_opt_in: boolean }>("GET", "/api/users/me/settings");
    await this.remember(data.analytics_opt_in);
  }

  async remember(optIn: boolean): Promise<void> {
    const state = await this.state();
    await this.storage.set({ [ANALYTICS]: { optIn, events: optIn ? state.events : [] } });
  }

  async track(name: string, props: Record<string, string | number | boolean | null> = {}, value?: number): Promise<void> {
    const state = await this.state();
    if (!state.optIn) return;
    const event: Event = { id: crypto.randomUUID(), name, ts: new Date().toISOString(), props, client: this.client };
    if (value !== undefined) event.value = value;
    state.events = [...state.events, event].slice(-MAX_QUEUED);
    await this.storage.set({ [ANALYTICS]: state });
    if (state.events.length >= FLUSH_AT) void this.flush().catch(() => undefined);
    else this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), FLUSH_AFTER_MS);
  }

  /** Sends the queued events (≤ 100 a request); events the server answered for are settled whatever it said. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing ??= this.send().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async send(): Promise<void> {
    for (;;) {
      const { optIn, events } = await this.state();
      if (!optIn || !events.length) return;
      const batch = events.slice(0, BATCH);
      try {
        await this.http.request("POST", "/api/analytics/events", { body: { events: batch } });
      } catch (error) {
        // A 4xx other than auth or throttling will not get better by resending: drop the batch.
        if (!(error instanceof ChatFocusError) || error.status === 0 || error.status === 401 || error.status === 429 || error.status >= 500) throw error;
      }
      const sent = new Set(batch.map((event) => event.id));
      const now = await this.state();
      await this.storage.set({ [ANALYTICS]: { optIn: now.optIn, events: now.events.filter((event) => !sent.has(event.id)) } });
    }
  }
}
