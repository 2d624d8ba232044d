// The SDK against the real server: pytest (chatfocus/tests/test_client_sdk.py) starts it and
// passes CF_BASE_URL and a user's credentials; those tests then check what the server stored.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ChatFocusClient, ChatFocusError, memoryStorage } from "../../dist/index.js";

const { CF_BASE_URL: baseUrl, CF_SOCKET_URL: socketUrl, CF_EMAIL: email, CF_PASSWORD: password } = process.env;
const TIMEOUT = 30_000;

/**
 * One device: its own storage, and a switch that makes the server unreachable for it. A free plan
 * syncs 3 devices: A and B are shared by the tests, the others read only (no name: not registered).
 */
async function device(name, options = {}) {
  const link = { up: true };
  const fetcher = (input, init) => (link.up ? fetch(input, init) : Promise.reject(new TypeError("fetch failed")));
  const storage = memoryStorage();
  const client = new ChatFocusClient({ baseUrl, storage, clientVersion: "1.0.0", ...(name ? { deviceName: name, browser: "node" } : {}), fetch: fetcher, ...options });
  await client.auth.login({ email, password });
  return { client, link, storage };
}

let pair;
// B polls once an hour: what reaches it in a test comes through the socket's pokes.
const devices = async () => (pair ??= [await device("A"), await device("B", { socketUrl, pollInterval: 3_600_000 })]);

async function eventually(check) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

test("two devices converge: sets, removes, per-key merge of offline edits, increments that add up", async () => {
  const [a, b] = await devices();
  await a.client.settings.set({ filterSettings: { ignoreForwarded: true }, "focusedContacts/alice": true });
  await a.client.sync.now();
  await b.client.sync.now();
  assert.deepEqual(await b.client.settings.get(["filterSettings", "focusedContacts/alice"]), {
    filterSettings: { ignoreForwarded: true },
    "focusedContacts/alice": true,
  });

  a.link.up = b.link.up = false;
  await a.client.settings.set({ "focusedContacts/bob": true, theme: "dark" });
  await a.client.settings.increment("usageStats/filtersUsed", 2);
  await b.client.settings.set({ "focusedContacts/carol": true });
  await b.client.settings.remove("focusedContacts/alice");
  await b.client.settings.increment("usageStats/filtersUsed", 3);
  await assert.rejects(a.client.sync.now(), (error) => error instanceof ChatFocusError && error.code === "network_error");
  a.link.up = b.link.up = true;
  await Promise.all([a.client.sync.now(), b.client.sync.now()]);
  await a.client.sync.now();

  const expected = {
    filterSettings: { ignoreForwarded: true },
    "focusedContacts/bob": true,
    "focusedContacts/carol": true,
    theme: "dark",
    "usageStats/filtersUsed": 5,
  };
  assert.deepEqual(await a.client.settings.get(), expected);
  assert.deepEqual(await b.client.settings.get(), expected);
  assert.deepEqual([await a.client.sync.pending(), await b.client.sync.pending()], [0, 0]);
});

test("a device syncing in the background sees another's change through the real-time socket", async () => {
  const [a, b] = await devices();
  const seen = new Promise((resolve) =>
    b.client.settings.onChanged.addListener((changes, origin) => {
      if (changes.background?.newValue === "from A" && origin === "remote") resolve(Date.now());
    }),
  );
  b.client.sync.start();
  try {
    await eventually(() => assert.ok(b.client.sync.connected));
    await b.client.sync.now();
    const changedAt = Date.now();
    await a.client.settings.set({ background: "from A" });
    await a.client.sync.now();
    const seenAt = await seen;
    console.log(`A→B ${seenAt - changedAt} ms (${b.client.sync.connected ? "socket" : "polling: no socket"})`);
  } finally {
    b.client.sync.stop();
  }
});

test("server errors arrive as ChatFocusError with the server's code and request id", async () => {
  const { client } = await device();
  const error = await client.request("GET", "/api/sync/pull?since=999999").catch((e) => e);
  assert.ok(error instanceof ChatFocusError);
  assert.equal(error.status, 409);
  assert.equal(error.code, "cursor_ahead");
  assert.ok(error.requestId);
  const invalid = await client.request("GET", "/api/sync/pull?limit=0").catch((e) => e);
  assert.equal(invalid.code, "validation_error");
  assert.ok(invalid.details.fields.limit);
});

test("analytics sends nothing before opt-in, then the batch", async () => {
  const { client } = await device();
  await client.analytics.track("extension_opened", { surface: "popup" });
  await client.analytics.flush();
  await client.analytics.setOptIn(true);
  await client.analytics.track("extension_opened", { surface: "popup" });
  await client.analytics.track("extension_opened", { surface: "popup" });
  await client.analytics.flush();
  await eventually(async () => assert.equal(await client.analytics.optedIn(), true));
});

test("a rejected access token is refreshed once for two concurrent calls and the session goes on", async () => {
  const [{ storage }] = await devices();
  const tokens = (await storage.get("cf.tokens"))["cf.tokens"];
  await storage.set({ "cf.tokens": { ...tokens, access: tokens.access.slice(0, -4) + "AAAA" } });
  const restarted = new ChatFocusClient({ baseUrl, storage, clientVersion: "1.0.0" });
  const [one, two] = await Promise.all([restarted.request("GET", "/api/sync/quota"), restarted.request("GET", "/api/sync/quota")]);
  assert.equal(one.tier, "free");
  assert.deepEqual(one, two);
  const rotated = (await storage.get("cf.tokens"))["cf.tokens"];
  assert.notEqual(rotated.refresh, tokens.refresh);
  // The rotated pair works; had both callers refreshed, the second use of one refresh token would be reuse.
  await restarted.settings.set({ afterRefresh: 1 });
  await restarted.sync.now();
  await restarted.auth.logout();
  await assert.rejects(restarted.request("GET", "/api/sync/quota"), (error) => error.status === 401 && error.code === "not_authenticated");
});
