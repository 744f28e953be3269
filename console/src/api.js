// The API client: same-origin cookie session, CSRF header on every unsafe method.
const UNSAFE = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);
const BASE = '/api/v1';

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

let csrfToken = '';
let unauthorized = () => {};

export function setCsrf(token) {
  csrfToken = token || '';
}

export function onUnauthorized(handler) {
  unauthorized = handler;
}

function cookieCsrf() {
  const match = document.cookie.match(/(?:^|;\s*)soc_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : '';
}

export function hasSession() {
  return Boolean(cookieCsrf() || csrfToken);
}

export function apiUrl(path, params) {
  const url = new URL(BASE + path, location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(name, v));
    else url.searchParams.set(name, value);
  }
  return url.pathname + url.search;
}

function detailText(detail, fallback) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).join('.')}: ${d.msg}`).join('; ');
  return fallback;
}

export async function request(method, path, { params, body } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (UNSAFE.has(method)) {
    const token = cookieCsrf() || csrfToken;
    if (token) headers['X-CSRF-Token'] = token;
  }
  const response = await fetch(apiUrl(path, params), init);
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = detailText((await response.json()).detail, detail);
    } catch {
      // A body that is not JSON: keep the status text.
    }
    if (response.status === 401 && !path.startsWith('/auth/')) unauthorized();
    throw new ApiError(response.status, detail);
  }
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

const prefetched = new Map();
const PREFETCH_TTL_MS = 3000;

/** Start a GET now; the next `get` of the same URL within a few seconds takes its answer. */
export function prefetch(path, params) {
  const url = apiUrl(path, params);
  const pending = request('GET', path, { params });
  pending.catch(() => {}); // the later `get` reports any failure
  prefetched.set(url, { pending, at: Date.now() });
}

export function get(path, params) {
  const url = apiUrl(path, params);
  const early = prefetched.get(url);
  if (early) {
    prefetched.delete(url);
    if (Date.now() - early.at < PREFETCH_TTL_MS) return early.pending;
  }
  return request('GET', path, { params });
}
export const post = (path, body) => request('POST', path, { body });
export const patch = (path, body) => request('PATCH', path, { body });
export const del = (path) => request('DELETE', path);

/** Whether an optional part answers: false when its routes are absent (404/405) or it does not
 * run in this process (503, e.g. the notifier under a separate `soc api`). */
export async function probe(path) {
  try {
    await get(path);
    return true;
  } catch (error) {
    if (error instanceof ApiError && [404, 405, 503].includes(error.status)) return false;
    throw error;
  }
}
