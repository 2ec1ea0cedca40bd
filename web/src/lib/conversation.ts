// The state logic of a conversation, free of the DOM (unit-tested): messages merged from
// pages, polls and optimistic sends without duplicates, in the order they were written.
import type { components } from '../api/schema';

export type Message = components['schemas']['Message'];
/** One version of a character's reply (a reply, a regenerate or a continue wrote it). */
export type Alternative = components['schemas']['Alternative'];

/** A message as the screen holds it: stored, or still on its way. */
export interface Bubble {
  key: string;
  id: number | null;
  client_id: string | null;
  sender: 'user' | 'character' | 'system';
  content: string;
  created_at: string;
  photo_id: number | null;
  /** `sending`, `failed` (retry keeps the client id), `streaming` (tokens arriving). */
  state: 'stored' | 'sending' | 'failed' | 'streaming';
}

export function fromMessage(m: Message): Bubble {
  return {
    key: `m${m.id}`,
    id: m.id,
    client_id: m.client_id ?? null,
    sender: m.sender,
    content: m.content,
    created_at: m.created_at,
    photo_id: m.photo_id ?? null,
    state: 'stored',
  };
}

export function optimistic(content: string, clientId: string, now = new Date()): Bubble {
  return {
    key: `c${clientId}`,
    id: null,
    client_id: clientId,
    sender: 'user',
    content,
    created_at: now.toISOString(),
    photo_id: null,
    state: 'sending',
  };
}

function order(a: Bubble, b: Bubble): number {
  // Stored messages by time then id; bubbles still on their way after everything stored.
  const pa = a.id === null ? 1 : 0;
  const pb = b.id === null ? 1 : 0;
  if (pa !== pb) return pa - pb;
  const t = Date.parse(a.created_at) - Date.parse(b.created_at);
  if (t !== 0) return t;
  return (a.id ?? 0) - (b.id ?? 0);
}

/**
 * `current` with `incoming` stored messages merged in: one bubble per message id; a stored
 * message replaces the optimistic bubble with its client id (and keeps its key, so the
 * screen does not redraw it); the newest content wins (a regenerated reply).
 */
export function merge(current: Bubble[], incoming: Message[]): Bubble[] {
  const byId = new Map<number, Bubble>();
  const byClient = new Map<string, Bubble>();
  const rest: Bubble[] = [];
  for (const b of current) {
    if (b.id !== null) byId.set(b.id, b);
    else rest.push(b);
    if (b.client_id) byClient.set(b.client_id, b);
  }
  for (const m of incoming) {
    const fresh = fromMessage(m);
    const pending = m.client_id ? byClient.get(m.client_id) : undefined;
    const prior = byId.get(m.id) ?? pending;
    if (prior) fresh.key = prior.key;
    byId.set(m.id, fresh);
    if (pending && pending.id === null) rest.splice(rest.indexOf(pending), 1);
  }
  return [...byId.values(), ...rest].sort(order);
}

/** `list` with the bubble of `key` changed. */
export function patch(list: Bubble[], key: string, change: Partial<Bubble>): Bubble[] {
  return list.map((b) => (b.key === key ? { ...b, ...change } : b));
}

/** The newest stored id (what a poll needs to be newer than). */
export function newestId(list: Bubble[]): number {
  return list.reduce((max, b) => (b.id !== null && b.id > max ? b.id : max), 0);
}

/**
 * The reply to the user's latest message, which a regenerate rewrites and a continue extends
 * (the server's rule): the character's one text after that message. Photos may follow it (a
 * reply can earn one) or come before it; anything else written after it (the character
 * writing first) leaves nothing to swipe, and so does a conversation the user has not spoken in.
 */
export function swipeable(list: Bubble[]): Bubble | null {
  const live = list.filter((b) => b.state !== 'failed');
  let asked = live.length - 1;
  while (asked >= 0 && live[asked]?.sender !== 'user') asked--;
  if (asked < 0) return null;
  const said = live.slice(asked + 1).filter((b) => b.photo_id === null);
  const reply = said[0];
  return said.length === 1 && reply && reply.sender === 'character' && reply.id !== null && reply.state === 'stored'
    ? reply
    : null;
}

/**
 * A reply with more of it, as the server joins them: one space between unless the more starts
 * with white space or closing punctuation (services/ai `generate::join`).
 */
export function joined(reply: string, more: string): string {
  const head = reply.trimEnd();
  if (more === '') return head;
  return /^[\s,.!?;:…)]/.test(more) ? head + more : `${head} ${more.trimStart()}`;
}

/** `versions` with `id` the one picked. */
export function picked(versions: Alternative[], id: string): Alternative[] {
  return versions.map((v) => ({ ...v, picked: v.id === id }));
}
