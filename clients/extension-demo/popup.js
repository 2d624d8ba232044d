// The popup holds no client: it renders the service worker's view and forwards edits to it.
const $ = (selector) => document.querySelector(selector);

async function call(cmd, args = {}) {
  const reply = await chrome.runtime.sendMessage({ cmd, ...args });
  $("#error").textContent = reply.ok ? "" : `${reply.error.message} (${reply.error.code})`;
  if (!reply.ok) throw new Error(reply.error.message);
  return reply.result;
}

async function render() {
  const state = await call("state");
  $("#login").hidden = state.signedIn;
  $("#signed-in").hidden = !state.signedIn;
  const { settings } = state;
  $("#ignoreForwarded").checked = Boolean(settings.filterSettings?.ignoreForwarded);
  const contacts = Object.keys(settings).filter((key) => key.startsWith("focusedContacts/")).map((key) => key.slice(16)).sort();
  $("#contacts").replaceChildren(
    ...contacts.map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      item.dataset.contact = name;
      return item;
    }),
  );
  $("#filtersUsed").textContent = settings["usageStats/filtersUsed"] ?? 0;
  $("#pending").textContent = state.pending;
  $("#link").textContent = state.connected ? "live" : "polling";
  $("#settings").textContent = JSON.stringify(settings, null, 1);
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  await call("login", { apiUrl: form.get("apiUrl"), email: form.get("email"), password: form.get("password") }).catch(() => undefined);
  await render();
});
$("#ignoreForwarded").addEventListener("change", async (event) => {
  await call("set", { items: { filterSettings: { ignoreForwarded: event.target.checked } } });
  await render();
});
$("#add-contact").addEventListener("submit", async (event) => {
  event.preventDefault();
  // One key per contact: two devices adding different contacts at once both keep theirs.
  await call("set", { items: { [`focusedContacts/${event.target.contact.value}`]: true } });
  event.target.reset();
  await render();
});
$("#filter-used").addEventListener("click", async () => {
  await call("increment", { key: "usageStats/filtersUsed", delta: 1 });
  await render();
});
$("#logout").addEventListener("click", async () => {
  await call("logout");
  await render();
});

chrome.runtime.onMessage.addListener((message) => {
  if (message.type === "changed") render();
});
// Also keeps the service worker awake while the popup is open.
setInterval(() => render().catch(() => undefined), 1000);
render();
