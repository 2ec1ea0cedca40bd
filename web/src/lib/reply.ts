// The character's reply, streamed as server-sent events over a POST (EventSource cannot POST):
// `token` events ({text}) then `done` (the stored message). A dropped connection or a stream
// cut by the gateway (`error` event) is resumed with `Last-Event-ID`, so no token is shown
// twice and none is lost; the server writes the reply once whatever happens to the stream.
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { ApiFailure, failureOf } from './errors';

export interface ReplyEvents<M> {
  token(text: string): void;
  /** The connection dropped and is being resumed. */
  interrupted?(attempt: number): void;
  done?(message: M): void;
}

export interface ReplyOptions {
  regenerate?: boolean;
  signal?: AbortSignal;
  /** How often a cut stream is resumed before giving up. */
  attempts?: number;
  /** Milliseconds before the first resume (doubles each time, at most 4 s). */
  backoff?: number;
}

type Fetcher = (request: Request) => Promise<Response>;

/** Streams the reply to the user's latest message; resolves with the stored message. */
export async function streamReply<M>(
  fetcher: Fetcher,
  character: string,
  on: ReplyEvents<M>,
  opts: ReplyOptions = {},
): Promise<M> {
  const attempts = opts.attempts ?? 8;
  let delay = opts.backoff ?? 300;
  let lastId = 0;
  for (let attempt = 0; ; attempt++) {
    const query = opts.regenerate && lastId === 0 && attempt === 0 ? '?regenerate=true' : '';
    const headers: Record<string, string> = { accept: 'text/event-stream', 'content-type': 'application/json' };
    if (lastId > 0) headers['last-event-id'] = String(lastId);
    let outcome: { message?: M; cut?: boolean } = {};
    const origin = typeof location !== 'undefined' ? location.origin : 'http://localhost';
    const request = new Request(`${origin}/api/v1/conversations/${encodeURIComponent(character)}/reply${query}`, {
      method: 'POST',
      headers,
      body: '{}',
      signal: opts.signal,
    });
    try {
      const res = await fetcher(request);
      if (!res.ok) {
        const failure = await failureOf(res);
        // Someone else is writing it: follow it like a cut stream.
        if (failure.kind === 'conflict' && failure.code === 'generation_in_progress') outcome = { cut: true };
        else if (failure.kind === 'unavailable' || failure.status === 502) outcome = { cut: true };
        else throw failure;
      } else if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        // The reply was already written: it comes whole.
        outcome = { message: (await res.json()) as M };
        on.done?.(outcome.message as M);
        return outcome.message as M;
      } else {
        outcome = await readEvents<M>(res, (id) => {
          const fresh = id === null || id > lastId;
          if (id !== null && fresh) lastId = id;
          return fresh;
        }, on);
      }
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      if (!(e instanceof ApiFailure && e.kind === 'offline') && !(e instanceof TypeError)) throw e;
      outcome = { cut: true };
    }
    if (outcome.message !== undefined) {
      on.done?.(outcome.message);
      return outcome.message;
    }
    if (attempt + 1 >= attempts) throw new ApiFailure('unavailable', 503, 'stream_cut');
    on.interrupted?.(attempt + 1);
    await sleep(delay, opts.signal);
    delay = Math.min(delay * 2, 4000);
  }
}

async function readEvents<M>(
  res: Response,
  fresh: (id: number | null) => boolean,
  on: ReplyEvents<M>,
): Promise<{ message?: M; cut?: boolean }> {
  let message: M | undefined;
  let cut = false;
  const parser = createParser({
    onEvent(ev: EventSourceMessage) {
      const id = ev.id !== undefined && ev.id !== '' ? Number(ev.id) : null;
      if (ev.event === 'error') {
        cut = true;
        return;
      }
      if (!fresh(Number.isFinite(id) ? id : null)) return;
      if (ev.event === 'token') {
        on.token((JSON.parse(ev.data) as { text: string }).text);
      } else if (ev.event === 'done') {
        message = JSON.parse(ev.data) as M;
      }
    },
  });
  const reader = res.body?.getReader();
  if (!reader) return { cut: true };
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      if (message !== undefined || cut) break;
    }
  } catch {
    cut = true;
  } finally {
    reader.releaseLock();
  }
  return message !== undefined ? { message } : { cut: true };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });
}
