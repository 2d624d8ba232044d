// The service worker owns the one ChatFocusClient of this profile (one storage is one device); the
// popup asks it for state and sends it edits.
import { ChatFocusClient } from "./lib/chatfocus.js";

const DEFAULT_API = "http://127.0.0.1:8000";
let client = null;

async function getClient() {
  if (client) return client;
  const { "demo.apiUrl": baseUrl = DEFAULT_API, "demo.socketUrl": socketUrl, "demo.pollSeconds": pollSeconds = 30 } = await chrome.storage.local.get([
    "demo.apiUrl",
    "demo.socketUrl",
    "demo.pollSeconds",
  ]);
  client = new ChatFocusClient({
    baseUrl,
    socketUrl,
    pollInterval: pollSeconds * 1000,
    storage: chrome.storage.local,
    clientVersion: chrome.runtime.getManifest().version,
    deviceName: `Chrome ${navigator.platform}`,
    browser: "chrome",
  });
  client.settings.onChanged.addListener((changes, origin) => {
    chrome.runtime.sendMessage({ type: "changed", changes, origin }).catch(() => undefined); // no popup open
  });
  if (await client.auth.isSignedIn()) client.sync.start();
  return client;
}

const handlers = {
  async login({ apiUrl, email, password }) {
    client?.sync.stop();
    client = null;
    await chrome.storage.local.set({ "demo.apiUrl": apiUrl });
    const cf = await getClient();
    await cf.auth.login({ email, password });
    cf.sync.start();
  },
  async logout() {
    await (await getClient()).auth.logout();
  },
  async state() {
    const cf = await getClient();
    return {
      signedIn: await cf.auth.isSignedIn(),
      settings: await cf.settings.get(),
      pending: await cf.sync.pending(),
      connected: cf.sync.connected,
    };
  },
  async set({ items }) {
    await (await getClient()).settings.set(items);
  },
  async remove({ keys }) {
    await (await getClient()).settings.remove(keys);
  },
  async increment({ key, delta }) {
    return (await getClient()).settings.increment(key, delta);
  },
  async syncNow() {
    await (await getClient()).sync.now();
  },
};

chrome.runtime.onMessage.addListener((message, _sender, reply) => {
  const handler = handlers[message.cmd];
  if (!handler) return false;
  handler(message).then(
    (result) => reply({ ok: true, result }),
    (error) => reply({ ok: false, error: { status: error.status, code: error.code, message: error.message } }),
  );
  return true; // reply is asynchronous
});

// A service worker sleeps when idle: wake every minute to sync even without a socket.
chrome.alarms.create("sync", { periodInMinutes: 1 });
chrome.alarms.onAlarm.addListener(() => getClient().then((cf) => cf.auth.isSignedIn().then((yes) => yes && cf.sync.now())).catch(() => undefined));
getClient();
