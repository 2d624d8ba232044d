import assert from "node:assert/strict";
import { mock, test } from "node:test";

import { ChatFocusClient, ChatFocusError, memoryStorage } from "../../dist/index.js";
import { backoffDelay } from "../../dist/sync.js";
import { FakeServer } from "./fake-server.mjs";

const BASE = "http://api.test";

async function signedIn(server, storage = memoryStorage(), options = {}) {
  const client = new ChatFocusClient({ baseUrl: BASE, storage, clientVersion: "1.0.0", fetch: server.fetch, WebSocket: null, ...options });
  await client.auth.login({ email: "a@example.com", password: "pw" });
  return client;
}

const offline = () => () => Promise.reject(new TypeError("fetch failed"));

/** Lets every pending promise chain run (the fake server answers without I/O); for tests on mocked timers. */
async function flush() {
  for (let i = 0; i < 100; i++) await new Promise((resolve) => setImmediate(resolve));
}

test("the queue of local changes survives a restart without the network", async () => {
  const server = new FakeServer();
  const storage = memoryStorage();
  const first = await signedIn(server, storage);
  server.fail = () => offline();
  await first.settings.set({ "focusedContacts/alice": true, filterSettings: { ignoreForwarded: true } });
  await first.settings.increment("usageStats/filtersUsed", 2);
  await assert.rejects(first.sync.now(), (error) => error instanceof ChatFocusError && error.code === "network_error" && error.status === 0);

  const restarted = new ChatFocusClient({ baseUrl: BASE, storage, clientVersion: "1.0.0", fetch: server.fetch, WebSocket: null });
  assert.equal(await restarted.sync.pending(), 3);
  assert.deepEqual(await restarted.settings.get(["filterSettings", "usageStats/filtersUsed", "missing"]), {
    filterSettings: { ignoreForwarded: true },
    "usageStats/filtersUsed": 2,
  });
  server.fail = null;
  await restarted.sync.now();
  assert.equal(await restarted.sync.pending(), 0);
  assert.deepEqual([server.value("focusedContacts/alice"), server.value("usageStats/filtersUsed")], [true, 2]);
});

test("the HLC never goes backwards across a restart, even when the clock does", async () => {
  const server = new FakeServer();
  const storage = memoryStorage();
  const first = await signedIn(server, storage);
  await first.settings.set({ a: 1 });
  const [written] = storage.data.get("cf.queue");
  const now = mock.method(Date, "now", () => 1_000_000); // the device's clock jumped back by decades
  try {
    const restarted = new ChatFocusClient({ baseUrl: BASE, storage, clientVersion: "1.0.0", fetch: server.fetch, WebSocket: null });
    await restarted.settings.set({ a: 2 });
    await restarted.settings.set({ b: 3 });
  } finally {
    now.mock.restore();
  }
  const hlcs = [written.hlc, ...storage.data.get("cf.queue").map((op) => op.hlc)];
  const parsed = hlcs.map((hlc) => hlc.split("-").map(Number));
  for (let i = 1; i < parsed.length; i++) assert.ok(parsed[i][0] > parsed[i - 1][0] || (parsed[i][0] === parsed[i - 1][0] && parsed[i][1] > parsed[i - 1][1]), hlcs.join(" "));
});

test("an edit made after seeing another device's newer clock wins over it", async () => {
  const server = new FakeServer();
  const client = await signedIn(server);
  server.write("theme", "set", "dark", `${Date.now() + 120_000}-0`); // a device whose clock runs 2 min ahead
  await client.sync.now();
  await client.settings.set({ theme: "light" });
  await client.sync.now();
  assert.equal(server.value("theme"), "light");
});

test("two callers hitting an expired token share one refresh", async () => {
  const server = new FakeServer();
  const storage = memoryStorage();
  const client = await signedIn(server, storage);
  server.access = "rotated-away"; // every request now answers 401 token_invalid until a refresh
  const [one, two] = await Promise.all([client.request("GET", "/api/sync/settings"), client.request("GET", "/api/sync/settings")]);
  assert.equal(server.count("/api/auth/refresh"), 1);
  assert.deepEqual(one, two);
  assert.equal(storage.data.get("cf.tokens").access, server.access);
});

test("an access token about to expire is refreshed once before the requests that need it", async () => {
  const server = new FakeServer();
  server.accessLifetime = 10; // inside the refresh margin
  const storage = memoryStorage({ "cf.tokens": server.issue() });
  server.accessLifetime = 900;
  const client = new ChatFocusClient({ baseUrl: BASE, storage, clientVersion: "1.0.0", fetch: server.fetch, WebSocket: null });
  await Promise.all([client.settings.set({ a: 1 }).then(() => client.sync.now()), client.request("GET", "/api/sync/settings")]);
  assert.equal(server.count("/api/auth/refresh"), 1);
  const authorized = server.calls.filter((call) => call.headers.get("Authorization"));
  assert.ok(authorized.length >= 3);
  for (const call of authorized) assert.equal(call.headers.get("Authorization"), `Bearer ${server.access}`);
});

test("a refresh the server refuses signs the device out and forgets the account's data", async () => {
  const server = new FakeServer();
  const storage = memoryStorage();
  const client = await signedIn(server, storage);
  await client.settings.set({ a: 1 });
  server.access = "revoked";
  server.refresh = "revoked";
  let signedOut = 0;
  client.auth.onSignedOut.addListener(() => signedOut++);
  await assert.rejects(client.sync.now(), (error) => error.status === 401 && error.code === "token_reused");
  assert.equal(signedOut, 1);
  assert.equal(await client.auth.isSignedIn(), false);
  assert.deepEqual(await client.settings.get(), {});
});

test("push then pull converges: other devices' changes arrive, superseded and duplicate ops leave the queue", async () => {
  const server = new FakeServer();
  const client = await signedIn(server);
  const changes = [];
  client.settings.onChanged.addListener((diff, origin) => changes.push([diff, origin]));
  await client.settings.set({ mine: 1, contested: "local" });
  server.write("contested", "set", "remote", `${Date.now() + 60_000}-0`);
  server.write("theirs", "set", "x", `${Date.now()}-0`);
  assert.equal(await client.sync.pending(), 2);
  await client.sync.now();
  assert.equal(await client.sync.pending(), 0);
  assert.deepEqual(await client.settings.get(), { mine: 1, contested: "remote", theirs: "x" });
  assert.deepEqual(changes.at(-1), [{ contested: { oldValue: "local", newValue: "remote" }, theirs: { oldValue: undefined, newValue: "x" } }, "remote"]);

  // A retry of ops the server already applied (the response was lost) is answered `duplicate`.
  const storage = memoryStorage({ "cf.queue": [{ op_id: "op-1", key: "mine", op: "set", value: 1, hlc: "1-0" }] });
  server.ops.set("op-1", { op_id: "op-1", status: "applied", version: 1 });
  const retrying = await signedIn(server, storage);
  await retrying.sync.now();
  assert.equal(await retrying.sync.pending(), 0);
});

test("increments from two devices add up, pending ones replayed over what was pulled", async () => {
  const server = new FakeServer();
  const a = await signedIn(server);
  const b = await signedIn(server);
  assert.equal(await a.settings.increment("count", 2), 2);
  assert.equal(await b.settings.increment("count", 5), 5);
  await a.sync.now();
  await b.settings.increment("count", 1);
  await b.sync.now();
  await a.sync.now();
  assert.equal(server.value("count"), 8);
  assert.deepEqual([await a.settings.get("count"), await b.settings.get("count")], [{ count: 8 }, { count: 8 }]);
  await a.settings.set({ name: "Ann" });
  await assert.rejects(a.settings.increment("name"), (error) => error.code === "validation_error" && error.status === 400);
  assert.deepEqual(await a.settings.get("name"), { name: "Ann" });
});

test("410 cursor_expired and 409 cursor_ahead fall back to the whole document", async () => {
  for (const [horizon, cursor] of [[100, 5], [0, 999]]) {
    const server = new FakeServer();
    const storage = memoryStorage();
    const client = await signedIn(server, storage);
    await client.settings.set({ pending: "local" });
    await storage.set({ "cf.cursor": cursor, "cf.v.stale": "gone on the server" });
    server.write("kept", "set", 1, "1-0");
    server.version = Math.max(server.version, 10);
    server.horizon = horizon;
    await client.sync.now();
    assert.equal(server.count("/api/sync/settings"), 1);
    assert.deepEqual(await client.settings.get(), { kept: 1, pending: "local" });
    assert.equal(storage.data.get("cf.cursor"), server.version);
  }
});

test("an op the server refuses as invalid is dropped alone and reported, the rest of its batch goes through", async () => {
  const server = new FakeServer();
  const client = await signedIn(server);
  const errors = [];
  client.sync.onError.addListener((error) => errors.push(error.code));
  await client.settings.increment("counter", 1);
  await client.settings.set({ ok: true });
  server.write("counter", "set", "now a string", `${Date.now() + 60_000}-0`);
  await client.sync.now();
  assert.deepEqual(errors, ["validation_error"]);
  assert.equal(server.value("ok"), true);
  assert.equal(await client.sync.pending(), 0);
  assert.deepEqual(await client.settings.get("counter"), { counter: "now a string" });
});

test("errors carry the server's shape: status, code, message, request id, details", async () => {
  const server = new FakeServer();
  const client = await signedIn(server);
  server.fail = () =>
    server.json(429, { error: { code: "rate_limited", message: "Too many requests.", request_id: "abc", fields: { x: ["y"] } } }, { "Retry-After": "7" });
  const error = await client.request("GET", "/api/sync/quota").catch((e) => e);
  assert.ok(error instanceof ChatFocusError);
  assert.deepEqual(
    { status: error.status, code: error.code, message: error.message, requestId: error.requestId, details: error.details, retryAfter: error.retryAfter },
    { status: 429, code: "rate_limited", message: "Too many requests.", requestId: "abc", details: { fields: { x: ["y"] } }, retryAfter: 7 },
  );
  await assert.rejects(client.settings.set({ "bad key!": 1 }), (e) => e.code === "validation_error");
});

test("backoff doubles from 1 s to at most 60 s, each wait drawn between half and all of it", () => {
  assert.deepEqual([1, 2, 3, 7, 20].map((n) => backoffDelay(n, () => 1)), [1000, 2000, 4000, 60_000, 60_000]);
  assert.deepEqual([1, 7].map((n) => backoffDelay(n, () => 0)), [500, 30_000]);
});

test("background sync waits out Retry-After on 503 and the Backoff header before syncing again", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: Date.now() });
  const server = new FakeServer();
  const client = await signedIn(server);
  let unavailable = true;
  server.fail = (method, path) => (unavailable && path === "/api/sync/push" ? server.error(503, "unavailable", { "Retry-After": "30" }) : undefined);
  await client.settings.set({ a: 1 });
  client.sync.start();
  t.mock.timers.tick(0);
  await flush();
  assert.equal(server.count("/api/sync/push"), 1);
  unavailable = false;
  t.mock.timers.tick(29_000);
  await flush();
  assert.equal(server.count("/api/sync/push"), 1, "retried before Retry-After");
  t.mock.timers.tick(7_000); // 30 s plus at most a fifth of it as jitter
  await flush();
  assert.equal(server.value("a"), 1);

  server.headers = { Backoff: "120" };
  await client.settings.set({ b: 2 }); // the response above carried no Backoff yet: this one goes out
  t.mock.timers.tick(0);
  await flush();
  assert.equal(server.value("b"), 2);
  await client.settings.set({ c: 3 });
  t.mock.timers.tick(100_000);
  await flush();
  assert.equal(server.value("c"), undefined, "synced during Backoff");
  t.mock.timers.tick(21_000);
  await flush();
  assert.equal(server.value("c"), 3);
  client.sync.stop();
});

test("without the user's opt-in analytics sends nothing; with it, events go in batches", async () => {
  const server = new FakeServer();
  const client = await signedIn(server);
  await client.analytics.track("filter_used", { surface: "popup" });
  await client.analytics.flush();
  assert.equal(server.count("/api/analytics/events"), 0);
  await client.analytics.setOptIn(true);
  for (let i = 0; i < 3; i++) await client.analytics.track("filter_used", { surface: "popup" });
  await client.analytics.flush();
  const sent = server.calls.filter((call) => call.path === "/api/analytics/events");
  assert.equal(sent.length, 1);
  assert.equal(sent[0].body.events.length, 3);
  assert.deepEqual(sent[0].body.events[0].client, { version: "1.0.0" });
});

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    FakeSocket.all.push(this);
    setImmediate(() => this.onopen?.());
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000) {
    this.onclose?.({ code });
  }
  receive(message) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
}

test("the socket authenticates in its first message, a poke pulls, 4401 refreshes and reconnects", async (t) => {
  FakeSocket.all = [];
  const server = new FakeServer();
  const client = await signedIn(server, memoryStorage(), { WebSocket: FakeSocket, pollInterval: 3_600_000 });
  const settled = async (condition) => {
    for (let i = 0; i < 2000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(condition());
  };
  client.sync.start();
  await settled(() => FakeSocket.all[0]?.sent.length === 1);
  const [socket] = FakeSocket.all;
  assert.equal(socket.url, "ws://api.test/ws/sync");
  assert.deepEqual(socket.sent[0], { type: "auth", access: server.access, device_id: await client.sync.deviceId() });
  await settled(() => client.sync.connected);
  await client.sync.now(); // the catch-up sync of a new socket is over: only the poke can bring what follows

  server.write("poked", "set", true, `${Date.now()}-0`);
  socket.receive({ type: "ping" });
  socket.receive({ type: "changed", version: server.version });
  const view = {};
  client.settings.onChanged.addListener((changes) => Object.assign(view, changes));
  await settled(() => view.poked?.newValue === true);

  t.mock.timers.enable({ apis: ["setTimeout"] });
  const refreshes = server.count("/api/auth/refresh");
  socket.close(4401);
  assert.equal(client.sync.connected, false);
  for (let i = 0; i < 100; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(server.count("/api/auth/refresh"), refreshes + 1);
  t.mock.timers.tick(1000);
  t.mock.timers.reset();
  await settled(() => FakeSocket.all.length === 2 && FakeSocket.all[1].sent.length === 1);
  assert.equal(FakeSocket.all[1].sent[0].access, server.access);
  client.sync.stop();
});

test("signing in as another account on the same storage starts from an empty view", async () => {
  const server = new FakeServer();
  const storage = memoryStorage();
  const client = await signedIn(server, storage);
  server.fail = () => offline();
  await client.settings.set({ private: "first account" });
  server.fail = (method, path) => (path === "/api/auth/login" ? server.json(200, { user: { id: "u2" }, ...server.issue() }) : undefined);
  await client.auth.login({ email: "b@example.com", password: "pw" });
  assert.deepEqual(await client.settings.get(), {});
  assert.equal(await client.sync.pending(), 0);
});

test("without a socket the client polls with If-None-Match and an idle poll changes nothing", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const server = new FakeServer();
  const client = await signedIn(server, memoryStorage(), { pollInterval: 5_000 });
  server.write("x", "set", 1, "1-0");
  client.sync.start();
  t.mock.timers.tick(0);
  await flush();
  const pulls = () => server.calls.filter((call) => call.path === "/api/sync/pull");
  assert.equal(pulls().length, 1);
  t.mock.timers.tick(5_000);
  await flush();
  assert.equal(pulls().length, 2);
  assert.equal(pulls()[1].headers.get("If-None-Match"), `"v${server.version}"`);
  server.write("y", "set", 2, "2-0");
  t.mock.timers.tick(5_000);
  await flush();
  assert.deepEqual(await client.settings.get(), { x: 1, y: 2 });
  client.sync.stop();
});

test("a socket closed for too many connections (4429) waits at least half a minute before reconnecting, polling meanwhile", async (t) => {
  FakeSocket.all = [];
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const server = new FakeServer();
  const client = await signedIn(server, memoryStorage(), { WebSocket: FakeSocket, pollInterval: 5_000 });
  client.sync.start();
  t.mock.timers.tick(0);
  await flush();
  assert.equal(client.sync.connected, true);
  FakeSocket.all[0].close(4429);
  await flush();
  const pulls = server.count("/api/sync/pull");
  t.mock.timers.tick(29_000);
  await flush();
  assert.equal(FakeSocket.all.length, 1, "reconnected before 30 s");
  assert.ok(server.count("/api/sync/pull") > pulls, "no polling while the socket was down");
  t.mock.timers.tick(31_000);
  await flush();
  assert.equal(FakeSocket.all.length, 2);
  client.sync.stop();
});
