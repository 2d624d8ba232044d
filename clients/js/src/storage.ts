/** Where the client keeps its state: `chrome.storage.local` fits as is. One storage is one device. */
export interface KeyValueStorage {
  get(keys: string | string[] | null): Promise<Record<string, unknown>>;
  set(items: Record<string, unknown>): Promise<void>;
  remove(keys: string | string[]): Promise<void>;
}

const clone = <T>(value: T): T => (value === undefined ? value : JSON.parse(JSON.stringify(value)));

/** An in-memory storage for Node and tests; values are copied as chrome.storage copies them. */
export function memoryStorage(initial: Record<string, unknown> = {}): KeyValueStorage & { data: Map<string, unknown> } {
  const data = new Map(Object.entries(clone(initial)));
  return {
    data,
    async get(keys) {
      const wanted = keys === null ? [...data.keys()] : typeof keys === "string" ? [keys] : keys;
      const out: Record<string, unknown> = {};
      for (const key of wanted) if (data.has(key)) out[key] = clone(data.get(key));
      return out;
    },
    async set(items) {
      for (const [key, value] of Object.entries(items)) data.set(key, clone(value));
    },
    async remove(keys) {
      for (const key of typeof keys === "string" ? [keys] : keys) data.delete(key);
    },
  };
}
