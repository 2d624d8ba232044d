// An in-memory API speaking the sync protocol of DESIGN §5 (per-key HLC winner, incr adds, gapless
// versions, op_id dedupe), answering through a fetch function. Tests break it on purpose with `fail`.

const jwt = (exp) => `h.${Buffer.from(JSON.stringify({ exp })).toString("base64url")}.s`;
const cmp = (a, b) => {
  const [am, ac] = a.split("-").map(Number);
  const [bm, bc] = b.split("-").map(Number);
  return am - bm || ac - bc;
};

export class FakeServer {
  constructor() {
    this.version = 0;
    this.entries = new Map(); // key → {value, deleted, version, hlc, device_id}
    this.ops = new Map(); // op_id → result
    this.calls = [];
    this.refreshes = 0;
    this.accessLifetime = 900;
    this.fail = null; // (method, path, body) → Response | undefined
    this.horizon = 0; // pulls with since below it → 410
    this.headers = {};
    this.issue();
  }

  issue() {
    this.access = jwt(Math.floor(Date.now() / 1000) + this.accessLifetime);
    this.refresh = `r${++this.refreshes}`;
    return { access: this.access, refresh: this.refresh };
  }

  json(status, body, headers = {}) {
    return new Response(body === null ? null : JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json", "X-Server-Time": String(Date.now()), ...this.headers, ...headers },
    });
  }

  error(status, code, headers = {}) {
    return this.json(status, { error: { code, message: code, request_id: "req-1" } }, headers);
  }

  get fetch() {
    return async (url, init = {}) => {
      const { pathname, searchParams } = new URL(url);
      const body = init.body ? JSON.parse(init.body) : undefined;
      const headers = new Headers(init.headers);
      this.calls.push({ method: init.method, path: pathname, body, headers });
      const injected = this.fail?.(init.method, pathname, body);
      if (injected) return typeof injected === "function" ? injected() : injected;
      if (pathname === "/api/auth/login") return this.json(200, { user: { id: "u1", email: body.email }, ...this.issue() });
      if (pathname === "/api/auth/refresh") {
        if (body.refresh !== this.refresh) return this.error(401, "token_reused");
        return this.json(200, this.issue());
      }
      if (pathname === "/api/auth/logout") return new Response(null, { status: 204 });
      if (headers.get("Authorization") !== `Bearer ${this.access}`) return this.error(401, "token_invalid");
      if (pathname === "/api/sync/push") return this.push(body);
      if (pathname === "/api/sync/pull") return this.pull(Number(searchParams.get("since")), headers.get("If-None-Match"));
      if (pathname === "/api/sync/settings") {
        const settings = Object.fromEntries([...this.entries].filter(([, e]) => !e.deleted).map(([k, e]) => [k, e.value]));
        return this.json(200, { settings, version: this.version, updated_at: null });
      }
      if (pathname === "/api/sync/devices") return this.json(201, body);
      if (pathname === "/api/users/me/settings") return this.json(200, { analytics_opt_in: body?.analytics_opt_in ?? false });
      if (pathname === "/api/analytics/events") return this.json(202, { accepted: body.events.length, duplicates: 0, dropped: 0, rejected: [] });
      return this.error(404, "not_found");
    };
  }

  /** Writes as another device would. */
  write(key, op, value, hlc, device_id = "other") {
    return this.apply(device_id, { op_id: `${device_id}-${this.version}-${key}-${hlc}`, key, op, value, hlc });
  }

  apply(device_id, op) {
    if (this.ops.has(op.op_id)) return { ...this.ops.get(op.op_id), status: "duplicate" };
    const entry = this.entries.get(op.key);
    let result;
    if (op.op === "incr") {
      const hlc = entry && cmp(entry.hlc, op.hlc) > 0 ? entry.hlc : op.hlc;
      const base = entry && !entry.deleted ? entry.value : 0;
      this.entries.set(op.key, { value: base + op.value, deleted: false, version: ++this.version, hlc, device_id });
      result = { op_id: op.op_id, status: "applied", version: this.version };
    } else if (entry && cmp(entry.hlc, op.hlc) >= 0) {
      result = { op_id: op.op_id, status: "superseded", version: null };
    } else {
      this.entries.set(op.key, { value: op.op === "set" ? op.value : null, deleted: op.op === "delete", version: ++this.version, hlc: op.hlc, device_id });
      result = { op_id: op.op_id, status: "applied", version: this.version };
    }
    this.ops.set(op.op_id, result);
    return result;
  }

  push({ device_id, ops }) {
    for (const op of ops) {
      if (op.op === "incr") {
        const entry = this.entries.get(op.key);
        if (entry && !entry.deleted && typeof entry.value !== "number") return this.error(400, "validation_error");
      }
    }
    const results = ops.map((op) => this.apply(device_id, op));
    return this.json(200, { version: this.version, server_time: Date.now(), results });
  }

  pull(since, ifNoneMatch) {
    if (since && since < this.horizon) return this.error(410, "cursor_expired");
    if (since > this.version) return this.error(409, "cursor_ahead");
    if (ifNoneMatch === `"v${this.version}"`) return new Response(null, { status: 304, headers: this.headers });
    const changes = [...this.entries]
      .filter(([, e]) => e.version > since)
      .sort(([, a], [, b]) => a.version - b.version)
      .map(([key, e]) => ({ key, value: e.deleted ? null : e.value, deleted: e.deleted, version: e.version, hlc: e.hlc, device_id: e.device_id }));
    return this.json(200, { changes, version: this.version, has_more: false, server_time: Date.now() }, { ETag: `"v${this.version}"` });
  }

  value(key) {
    const entry = this.entries.get(key);
    return entry && !entry.deleted ? entry.value : undefined;
  }

  count(path) {
    return this.calls.filter((call) => call.path === path).length;
  }
}
