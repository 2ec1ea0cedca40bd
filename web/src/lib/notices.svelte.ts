// Friendly messages at the top of every screen (an aria-live region): errors explained in the
// person's language, never a blank screen.
import { explain } from './errors';
import type { Key } from './i18n.svelte';

export interface Notice {
  id: number;
  key: Key;
  vars?: Record<string, string | number>;
  tone: 'error' | 'info';
}

export const notices = $state({ list: [] as Notice[], online: typeof navigator === 'undefined' || navigator.onLine });

let next = 1;

export function notify(key: Key, vars?: Record<string, string | number>, tone: Notice['tone'] = 'info'): void {
  const id = next++;
  // The same message twice is shown once.
  notices.list = [...notices.list.filter((n) => n.key !== key), { id, key, vars, tone }];
  setTimeout(() => dismiss(id), tone === 'error' ? 10_000 : 4_000);
}

/** Tells the person what went wrong with `e`. */
export function report(e: unknown): void {
  if (e instanceof DOMException && e.name === 'AbortError') return;
  console.warn(e);
  const { key, vars } = explain(e);
  notify(key, vars, 'error');
}

export function dismiss(id: number): void {
  notices.list = notices.list.filter((n) => n.id !== id);
}

export function watchNetwork(): void {
  window.addEventListener('online', () => (notices.online = true));
  window.addEventListener('offline', () => (notices.online = false));
}
