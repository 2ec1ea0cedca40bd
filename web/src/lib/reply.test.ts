import { describe, expect, it } from 'vitest';
import { streamReply } from './reply';

// The protocol as the ai service speaks it (see services/ai/src/handlers/reply.rs), served by
// a function: this checks the client's parsing and resumption; the real service is driven by
// the browser story (e2e/story.mjs).
function events(from: number, tokens: string[], end: 'done' | 'cut' | 'error'): Response {
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      tokens.forEach((t, i) => c.enqueue(enc.encode(`id: ${from + i + 1}\nevent: token\ndata: ${JSON.stringify({ text: t })}\n\n`)));
      if (end === 'done') {
        c.enqueue(enc.encode(`id: ${from + tokens.length + 1}\nevent: done\ndata: {"id":9,"content":"${tokens.join('')}"}\n\n`));
        c.close();
      } else if (end === 'error') {
        c.enqueue(enc.encode('event: error\ndata: {"code":"upstream_failed"}\n\n'));
        c.close();
      } else {
        // Once the tokens are read: erroring a stream drops what it still queues.
        setTimeout(() => c.error(new TypeError('network')), 20);
      }
    },
  });
  return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
}

describe('streamReply', () => {
  it('shows tokens as they come and resolves with the stored message', async () => {
    const seen: string[] = [];
    const m = await streamReply<{ id: number }>(async () => events(0, ['Bon', 'soir', ' !'], 'done'), 'sophia', {
      token: (t) => seen.push(t),
    });
    expect(seen).toEqual(['Bon', 'soir', ' !']);
    expect(m.id).toBe(9);
  });

  it('resumes a cut stream after the last event seen, without repeating a token', async () => {
    const asked: (string | null)[] = [];
    const responses = [events(0, ['Bon', 'soir'], 'cut'), events(2, [' mon', ' ami'], 'error'), events(4, ['.'], 'done')];
    const seen: string[] = [];
    let interrupted = 0;
    const m = await streamReply<{ id: number }>(
      async (req) => {
        asked.push(req.headers.get('last-event-id'));
        return responses.shift() as Response;
      },
      'sophia',
      { token: (t) => seen.push(t), interrupted: () => interrupted++ },
      { backoff: 1 },
    );
    expect(asked).toEqual([null, '2', '4']);
    expect(seen.join('')).toBe('Bonsoir mon ami.');
    expect(interrupted).toBe(2);
    expect(m).toMatchObject({ id: 9 });
  });

  it('an answer already written comes whole, and a swipe asks once for regeneration', async () => {
    const urls: string[] = [];
    const m = await streamReply<{ id: number }>(
      async (req) => {
        urls.push(new URL(req.url).search);
        return new Response('{"id":3}', { headers: { 'content-type': 'application/json' } });
      },
      'sophia',
      { token: () => {} },
      { ask: 'regenerate' },
    );
    expect(m.id).toBe(3);
    expect(urls).toEqual(['?regenerate=true']);
  });

  it('a continue asks once for more, then follows it as a plain reply from the last event seen', async () => {
    const asked: [string, string | null][] = [];
    const responses = [events(0, ['et', ' puis'], 'cut'), events(2, [' voilà.'], 'done')];
    const seen: string[] = [];
    const m = await streamReply<{ id: number; content: string }>(
      async (req) => {
        const url = new URL(req.url);
        asked.push([url.pathname + url.search, req.headers.get('last-event-id')]);
        return responses.shift() as Response;
      },
      'sophia',
      { token: (t) => seen.push(t) },
      { ask: 'continue', backoff: 1 },
    );
    // A second POST /continue would write one more version instead of resuming this one.
    expect(asked).toEqual([
      ['/api/v1/conversations/sophia/continue', null],
      ['/api/v1/conversations/sophia/reply', '2'],
    ]);
    expect(seen.join('')).toBe('et puis voilà.');
    expect(m.id).toBe(9);
  });

  it('a swipe whose answer was lost is asked again under the same key, then resumed as a plain reply', async () => {
    const asked: [string, string | null, string | null][] = [];
    // Made when asked for: a cut stream errors 20 ms after it is made.
    const responses = [() => events(0, [], 'cut'), () => events(0, ['Au', 'tre'], 'cut'), () => events(2, ['.'], 'done')];
    const seen: string[] = [];
    await streamReply<{ id: number; content: string }>(
      async (req) => {
        const url = new URL(req.url);
        asked.push([url.pathname + url.search, req.headers.get('last-event-id'), req.headers.get('idempotency-key')]);
        return (responses.shift() as () => Response)();
      },
      'sophia',
      { token: (t) => seen.push(t) },
      { ask: 'regenerate', backoff: 1 },
    );
    const key = asked[0]?.[2];
    expect(key).toMatch(/^[0-9a-f-]{36}$/);
    expect(asked).toEqual([
      ['/api/v1/conversations/sophia/reply?regenerate=true', null, key],
      ['/api/v1/conversations/sophia/reply?regenerate=true', null, key],
      ['/api/v1/conversations/sophia/reply', '2', key],
    ]);
    expect(seen.join('')).toBe('Autre.');
  });

  it('a plain reply needs no key', async () => {
    let key: string | null = 'unset';
    await streamReply(
      async (req) => {
        key = req.headers.get('idempotency-key');
        return events(0, ['Oui'], 'done');
      },
      'sophia',
      { token: () => {} },
    );
    expect(key).toBeNull();
  });

  it('a continue already written comes whole', async () => {
    const urls: string[] = [];
    const done: unknown[] = [];
    const m = await streamReply<{ id: number; content: string }>(
      async (req) => {
        urls.push(new URL(req.url).pathname);
        return new Response('{"id":4,"content":"Bonsoir. Et puis voilà."}', { headers: { 'content-type': 'application/json' } });
      },
      'sophia',
      { token: () => {}, done: (x) => done.push(x) },
      { ask: 'continue' },
    );
    expect(urls).toEqual(['/api/v1/conversations/sophia/continue']);
    expect(m.content).toBe('Bonsoir. Et puis voilà.');
    expect(done).toHaveLength(1);
  });

  it('a writer taken over starts again: the tokens shown go, the new ones all come', async () => {
    const enc = new TextEncoder();
    const restarted = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode('id: 0\nevent: reset\ndata: {}\n\n'));
        ['Re', 'bonsoir'].forEach((t, i) => c.enqueue(enc.encode(`id: ${i + 1}\nevent: token\ndata: ${JSON.stringify({ text: t })}\n\n`)));
        c.enqueue(enc.encode('id: 3\nevent: done\ndata: {"id":9}\n\n'));
        c.close();
      },
    });
    const responses = [events(0, ['Bon', 'soir', ' mon'], 'cut'), new Response(restarted, { headers: { 'content-type': 'text/event-stream' } })];
    let shown = '';
    let resets = 0;
    await streamReply<{ id: number }>(
      async () => responses.shift() as Response,
      'sophia',
      {
        token: (t) => (shown += t),
        reset: () => {
          resets++;
          shown = '';
        },
      },
      { backoff: 1 },
    );
    expect(resets).toBe(1);
    expect(shown).toBe('Rebonsoir');
  });

  it('a page that lets go of the stream ends it quietly: no resume, no interruption said', async () => {
    const stop = new AbortController();
    let calls = 0;
    let interrupted = 0;
    const run = streamReply(
      async () => {
        calls++;
        return events(0, ['Bon'], 'cut');
      },
      'sophia',
      { token: () => stop.abort(), interrupted: () => interrupted++ },
      { signal: stop.signal, backoff: 1 },
    );
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toBe(1);
    expect(interrupted).toBe(0);
  });

  it('gives up after its attempts with an unavailable failure', async () => {
    await expect(
      streamReply(async () => events(0, [], 'cut'), 'sophia', { token: () => {} }, { attempts: 2, backoff: 1 }),
    ).rejects.toMatchObject({ kind: 'unavailable' });
  });
});
