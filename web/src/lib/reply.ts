// The character's reply, streamed as server-sent events over a POST (EventSource cannot POST):
// `token` events ({text}) then `done` (the stored message). A dropped connection or a stream
// cut by the gateway (`error` event) is resumed with `Last-Event-ID`, so no token is shown
// twice and none is lost; the server writes the reply once whatever happens to the stream.
//
// A regenerate or a continue carries an `Idempotency-Key` of its own: asked again before any of
// its events came (the answer was lost), the server follows or replays the version it may have
// started instead of writing one more. Once events came, a resume asks for the plain reply from
// the last one seen, which follows the generation under way (or replays it, once written). A `reset` event says a writer died and another
// took over from the start: what was shown of this stream goes.
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { ApiFailure, failureOf } from './errors';

/** A reply to the user's latest message; that reply written again (a swipe); more of it. */
export type Ask = 'reply' | 'regenerate' | 'continue';

export interface ReplyEvents<M> {
  /** New text. For a continue, only what comes after the reply's text. */
  token(text: string): void;
  /** The connection dropped and is being resumed. */
  interrupted?(attempt: number): void;
  /** Another writer starts over: drop the tokens shown so far. */
  reset?(): void;
  /** The stored message (for a continue, the whole reply). */
  done?(message: M): void;
}

export interface ReplyOptions {
  ask?: Ask;
  signal?: AbortSignal;
  /** How often a cut stream is resumed before giving up. */
  attempts?: number;
  /** Milliseconds before the first resume (doubles each time, at most 4 s). */
  backoff?: number;
}

type Fetcher = (request: Request) => Promise<Response>;

/** Where `ask` goes until one of its events came; a resume after one goes to the plain reply. */
function pathOf(character: string, ask: Ask, resuming: boolean): string {
  const base = `/api/v1/conversations/${encodeURIComponent(character)}`;
  if (resuming || ask === 'reply') return `${base}/reply`;
  return ask === 'continue' ? `${base}/continue` : `${base}/reply?regenerate=true`;
}

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
  const ask = opts.ask ?? 'reply';
  // A reply to a message is one already; a new version needs a key to be asked twice safely.
  const key = ask === 'reply' ? null : crypto.randomUUID();
  const origin = typeof location !== 'undefined' ? location.origin : 'http://localhost';
  for (let attempt = 0; ; attempt++) {
    const headers: Record<string, string> = { accept: 'text/event-stream', 'content-type': 'application/json' };
    if (lastId > 0) headers['last-event-id'] = String(lastId);
    if (key) headers['idempotency-key'] = key;
    let outcome: { message?: M; cut?: boolean } = {};
    const request = new Request(`${origin}${pathOf(character, ask, lastId > 0)}`, {
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
        outcome = await readEvents<M>(
          res,
          {
            fresh(id) {
              const fresh = id === null || id > lastId;
              if (id !== null && fresh) lastId = id;
              return fresh;
            },
            reset() {
              lastId = 0;
              on.reset?.();
            },
          },
          on,
        );
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
    // Cut because the page let go of it (the person left): nothing to resume, nothing to say.
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (attempt + 1 >= attempts) throw new ApiFailure('unavailable', 503, 'stream_cut');
    on.interrupted?.(attempt + 1);
    await sleep(delay, opts.signal);
    delay = Math.min(delay * 2, 4000);
  }
}

interface Position {
  /** Whether an event of this id is new (and, if so, remembers it as the last one seen). */
  fresh(id: number | null): boolean;
  /** The events start over from the first. */
  reset(): void;
}

async function readEvents<M>(
  res: Response,
  position: Position,
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
      if (ev.event === 'reset') {
        position.reset();
        return;
      }
      if (!position.fresh(Number.isFinite(id) ? id : null)) return;
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
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}
