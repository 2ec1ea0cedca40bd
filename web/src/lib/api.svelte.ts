// The API client (generated types from /api/v1/openapi.json, see src/api/schema.d.ts) and the
// session. The access token lives in memory only; the refresh token is an HttpOnly cookie the
// page never sees (`X-Dream-Session: cookie`). A 401 refreshes once and retries; refreshes are
// one at a time across tabs (Web Locks), since a refresh token used twice ends the session.
import createClient from 'openapi-fetch';
import type { components, paths } from '../api/schema';
import { ApiFailure, failureOf } from './errors';

export type User = components['schemas']['UserDto'];

export const session = $state({
  token: null as string | null,
  user: null as User | null,
  /** The first refresh (on load) has answered. */
  ready: false,
});

const SESSION_HEADERS = { 'content-type': 'application/json', 'x-dream-session': 'cookie' };

let refreshing: Promise<boolean> | null = null;

/** A new access token from the refresh cookie; false when there is no session (any more). */
export function refresh(): Promise<boolean> {
  refreshing ??= locked(refreshNow).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** The refresh itself; the caller holds the `dream-refresh` lock. */
async function refreshNow(): Promise<boolean> {
  const res = await send('/api/v1/auth/refresh', { method: 'POST', headers: SESSION_HEADERS, body: '{}' });
  if (res.ok) {
    await keepToken(res);
    return true;
  }
  if (res.status === 401 || res.status === 422) {
    session.token = null;
    session.user = null;
    return false;
  }
  throw await failureOf(res);
}

function locked<T>(f: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
  return locks ? (locks.request('dream-refresh', f) as Promise<T>) : f();
}

/** `fetch`, with a network failure turned into an `offline` failure. */
async function send(input: RequestInfo, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(input, { credentials: 'same-origin', ...init });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiFailure('offline', 0);
  }
}

/** An authorized request: the token added, one refresh and retry on 401. */
export async function authed(request: Request): Promise<Response> {
  const retry = request.clone();
  const first = await send(withToken(request));
  if (first.status !== 401 || !session.token) return first;
  if (!(await refresh())) return first;
  return send(withToken(retry));
}

function withToken(request: Request): Request {
  if (session.token) request.headers.set('authorization', `Bearer ${session.token}`);
  return request;
}

export const api = createClient<paths>({ baseUrl: '', fetch: authed });

/** The data of an openapi-fetch result, or its failure thrown. */
export async function ok<T>(
  p: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const r = await p;
  if (!r.response.ok) throw await failureOf(r.response);
  return r.data as T;
}

async function signedIn(res: Response): Promise<void> {
  if (!res.ok) throw await failureOf(res);
  session.user = (await keepToken(res)).user ?? null;
}

/** Keeps the access token an answer carries (a sign-in, a refresh, a password change) and
 * renews it before it expires; the answer's body. */
async function keepToken(res: Response): Promise<{ user?: User }> {
  const body = (await res.json()) as { access_token: string; expires_in: number; user?: User };
  session.token = body.access_token;
  renewBefore(body.expires_in);
  return body;
}

let renewal: ReturnType<typeof setTimeout> | undefined;

/**
 * Refreshes a minute before the access token expires, so the media cookie (which lives as long
 * as the token) is always current for `<img>`, and a request never waits on a refresh.
 */
function renewBefore(expiresIn: number): void {
  clearTimeout(renewal);
  const ms = Math.max(10, expiresIn - 60) * 1000;
  renewal = setTimeout(() => {
    if (session.token) refresh().catch(() => {});
  }, ms);
}

export async function signIn(email: string, password: string): Promise<void> {
  await signedIn(
    await send('/api/v1/auth/login', { method: 'POST', headers: SESSION_HEADERS, body: JSON.stringify({ email, password }) }),
  );
}

export async function signUp(email: string, password: string, display_name: string): Promise<void> {
  await signedIn(
    await send('/api/v1/auth/register', {
      method: 'POST',
      headers: SESSION_HEADERS,
      body: JSON.stringify({ email, password, display_name }),
    }),
  );
}

export async function signOut(): Promise<void> {
  try {
    await send('/api/v1/auth/logout', { method: 'POST', headers: SESSION_HEADERS, body: '{}' });
  } finally {
    clearTimeout(renewal);
    session.token = null;
    session.user = null;
  }
}

/** On load: the session the cookie holds, if any. */
export async function resume(): Promise<void> {
  try {
    if (await refresh()) {
      session.user = await ok(api.GET('/api/v1/users/me'));
    }
  } finally {
    session.ready = true;
  }
}

/** The caller's bearer header, for the few calls made without the generated client. */
function bearer(): Record<string, string> {
  return session.token ? { authorization: `Bearer ${session.token}` } : {};
}

/**
 * An account call that proves who is asking with a password: sent with the token; a 401 for the
 * token (not for the password) refreshes once and sends again, so that a tab left in the
 * background (its timers slowed, its token expired) does not fail. A wrong password is sent once,
 * and counted once by the sign-in throttle. The caller holds the `dream-refresh` lock.
 */
async function accountCall(path: string, method: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const call = () =>
    send(path, { method, headers: { 'content-type': 'application/json', ...headers, ...bearer() }, body: JSON.stringify(body) });
  const res = await call();
  if (res.status !== 401 || (await failureOf(res)).code === 'invalid_credentials') return res;
  return (await refreshNow()) ? call() : res;
}

/**
 * Changes the password. Every session of the account ends, this page's included; the answer
 * opens a new one, whose refresh token the server puts in this page's cookie. Under the refresh
 * lock: a refresh by another tab with the old cookie must not land after the new one.
 */
export async function changePassword(current_password: string, new_password: string): Promise<void> {
  await locked(async () => {
    const res = await accountCall('/api/v1/users/me/password', 'PUT', { current_password, new_password }, SESSION_HEADERS);
    if (!res.ok) throw await failureOf(res);
    await keepToken(res);
  });
}

/** Ends every session of the account (other devices too), then this page's. */
export async function signOutEverywhere(): Promise<void> {
  const res = await authed(new Request('/api/v1/auth/logout-everywhere', { method: 'POST', headers: SESSION_HEADERS, body: '{}' }));
  if (!res.ok) throw await failureOf(res);
  await signOut();
}

/** Deletes the account for good (the password confirms it); the page is then signed out. */
export async function deleteAccount(password: string): Promise<void> {
  const res = await locked(() => accountCall('/api/v1/users/me', 'DELETE', { password }));
  if (!res.ok) throw await failureOf(res);
  await signOut();
}

/** A file the API hands out (the account's archive, a character's card), and the name the
 * server gave it, if it gave one. */
export async function fetchFile(path: string): Promise<{ blob: Blob; name: string | null }> {
  const res = await authed(new Request(path));
  if (!res.ok) throw await failureOf(res);
  const disposition = res.headers.get('content-disposition') ?? '';
  return { blob: await res.blob(), name: /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? null };
}
