/** Every failure the client reports: the server's error shape, or `network_error` (status 0) when it was not reached. */
export class ChatFocusError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string | null;
  /** The error's `details` and, for validation errors, its `fields` (field → messages). */
  readonly details: Record<string, unknown> | null;
  /** Seconds the server asked to wait (Retry-After on 429/503), else null. */
  readonly retryAfter: number | null;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    requestId?: string | null;
    details?: Record<string, unknown> | null;
    retryAfter?: number | null;
  }) {
    super(init.message);
    this.name = "ChatFocusError";
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId ?? null;
    this.details = init.details ?? null;
    this.retryAfter = init.retryAfter ?? null;
  }
}

/** Seconds from a Retry-After or Backoff header (delta-seconds or an HTTP date), else null. */
export function headerSeconds(value: string | null): number | null {
  if (!value) return null;
  const seconds = /^\s*\d+\s*$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(0, seconds) : null;
}

export async function errorFromResponse(response: Response): Promise<ChatFocusError> {
  let body: { error?: { code?: string; message?: string; request_id?: string; fields?: unknown; details?: unknown } } = {};
  try {
    body = await response.json();
  } catch {
    // A proxy's HTML error page: the status alone tells what happened.
  }
  const error = body.error ?? {};
  const details = error.details || error.fields ? { ...(error.details as object), ...(error.fields ? { fields: error.fields } : {}) } : null;
  return new ChatFocusError({
    status: response.status,
    code: error.code ?? (response.status >= 500 ? "unavailable" : "http_error"),
    message: error.message ?? `HTTP ${response.status}`,
    requestId: error.request_id ?? response.headers.get("X-Request-ID"),
    details,
    retryAfter: headerSeconds(response.headers.get("Retry-After")),
  });
}

export const localError = (code: string, message: string, status = 400) => new ChatFocusError({ status, code, message });
