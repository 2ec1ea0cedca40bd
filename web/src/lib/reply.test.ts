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
      { regenerate: true },
    );
    expect(m.id).toBe(3);
    expect(urls).toEqual(['?regenerate=true']);
  });

  it('gives up after its attempts with an unavailable failure', async () => {
    await expect(
      streamReply(async () => events(0, [], 'cut'), 'sophia', { token: () => {} }, { attempts: 2, backoff: 1 }),
    ).rejects.toMatchObject({ kind: 'unavailable' });
  });
});
