import { describe, expect, it } from 'vitest';
import { type Alternative, type Message, joined, merge, newestId, optimistic, patch, picked, swipeable } from './conversation';

const msg = (id: number, sender: Message['sender'], content: string, at: string, extra: Partial<Message> = {}): Message => ({
  id,
  user_id: 'u',
  character_id: 'sophia',
  sender,
  content,
  is_read: true,
  created_at: at,
  client_id: null,
  photo_id: null,
  ...extra,
});

describe('merge', () => {
  it('keeps one bubble per message, oldest first, whatever order pages arrive in', () => {
    const newest = [msg(3, 'character', 'c', '2026-01-01T10:03:00Z'), msg(2, 'user', 'b', '2026-01-01T10:02:00Z')];
    const older = [msg(2, 'user', 'b', '2026-01-01T10:02:00Z'), msg(1, 'character', 'a', '2026-01-01T10:01:00Z')];
    const list = merge(merge([], newest), older);
    expect(list.map((b) => b.id)).toEqual([1, 2, 3]);
  });

  it('replaces the optimistic bubble by the stored message with its client id, keeping its key', () => {
    const pending = optimistic('salut', 'cid-1', new Date('2026-01-01T10:05:00Z'));
    const list = merge([pending], [msg(7, 'user', 'salut', '2026-01-01T10:05:01Z', { client_id: 'cid-1' })]);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ id: 7, key: pending.key, state: 'stored' });
  });

  it('a retried send answered with the same message adds nothing', () => {
    const stored = msg(7, 'user', 'salut', '2026-01-01T10:05:01Z', { client_id: 'cid-1' });
    const once = merge([optimistic('salut', 'cid-1')], [stored]);
    expect(merge(once, [stored])).toHaveLength(1);
  });

  it('bubbles still on their way stay after the stored ones', () => {
    const pending = optimistic('en route', 'cid-2', new Date('2026-01-01T09:00:00Z'));
    const list = merge([pending], [msg(1, 'character', 'a', '2026-01-01T10:01:00Z')]);
    expect(list.map((b) => b.content)).toEqual(['a', 'en route']);
  });

  it('a regenerated reply replaces the text of the same message', () => {
    const first = merge([], [msg(4, 'character', 'old', '2026-01-01T10:00:00Z')]);
    const again = merge(first, [msg(4, 'character', 'new', '2026-01-01T10:00:00Z')]);
    expect(again.map((b) => b.content)).toEqual(['new']);
    expect(again[0]?.key).toBe(first[0]?.key);
  });
});

describe('helpers', () => {
  it('newestId, patch and swipeable', () => {
    let list = merge([], [msg(1, 'user', 'a', '2026-01-01T10:00:00Z'), msg(2, 'character', 'b', '2026-01-01T10:01:00Z')]);
    expect(newestId(list)).toBe(2);
    expect(swipeable(list)?.id).toBe(2);
    list = patch(list, 'm2', { content: 'c' });
    expect(list[1]?.content).toBe('c');
    // Nothing is swiped when the user spoke last.
    expect(swipeable(merge(list, [msg(3, 'user', 'x', '2026-01-01T10:02:00Z')]))).toBeNull();
  });
});

describe('swipeable: the reply to the user\'s latest message', () => {
  const greeting = msg(1, 'character', 'Bonsoir', '2026-01-01T10:00:00Z');
  const asked = msg(2, 'user', 'Tu lis quoi ?', '2026-01-01T10:01:00Z');
  const answer = msg(3, 'character', 'Colette', '2026-01-01T10:02:00Z');
  const photo = (id: number, at: string) => msg(id, 'character', 'Pour toi', at, { photo_id: id * 10 });

  it('is the reply, not the photo it earned after it', () => {
    expect(swipeable(merge([], [greeting, asked, answer, photo(4, '2026-01-01T10:03:00Z')]))?.id).toBe(3);
  });

  it('is the reply when an earlier photo landed between the message and it', () => {
    expect(swipeable(merge([], [greeting, asked, photo(4, '2026-01-01T10:01:30Z'), answer]))?.id).toBe(3);
  });

  it('is nothing before the user has spoken (a greeting has no versions)', () => {
    expect(swipeable(merge([], [greeting]))).toBeNull();
  });

  it('is nothing once the character wrote again after its reply (writing first)', () => {
    expect(swipeable(merge([], [asked, answer, msg(5, 'character', 'Tu es là ?', '2026-01-02T10:00:00Z')]))).toBeNull();
  });

  it('skips a message that failed to send', () => {
    const failed = { ...optimistic('pas parti', 'cid-9'), state: 'failed' as const };
    expect(swipeable([...merge([], [asked, answer]), failed])?.id).toBe(3);
  });
});

describe('joined', () => {
  it('puts one space between a reply and its continuation, as the server does', () => {
    expect(joined('Bonsoir.', 'Et puis ')).toBe('Bonsoir. Et puis ');
    expect(joined('Bonsoir ', ' et puis')).toBe('Bonsoir et puis');
    expect(joined('Bonsoir', ', toi.')).toBe('Bonsoir, toi.');
    expect(joined('Bonsoir.', '')).toBe('Bonsoir.');
  });
});

describe('picked', () => {
  it('moves the picked mark to one version', () => {
    const v = (id: string, p: boolean): Alternative => ({ id, content: id, continued: false, created_at: '2026-01-01T10:00:00Z', picked: p });
    expect(picked([v('a', false), v('b', true)], 'a').map((x) => x.picked)).toEqual([true, false]);
  });
});
