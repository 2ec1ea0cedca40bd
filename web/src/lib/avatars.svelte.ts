// The avatars of one's own characters, shown from memory. The API hands one out to the bearer
// token only (the media cookie that lets `<img>` load a photo is scoped to /api/v1/media), so
// the page fetches it and shows it as a `blob:` URL (allowed by the CSP's img-src). The browser
// still revalidates it by its ETag, so a copy asked for again costs a 304.
import { untrack } from 'svelte';
import { fetchFile } from './api.svelte';

/** Avatar path (`/api/v1/characters/{id}/avatar`) → object URL. */
export const avatars = $state({ shown: {} as Record<string, string> });

/** The load under way or done, per path: one fetch each, however many places show it. */
const asked = new Map<string, { done: Promise<void> }>();

/** Fetches the avatar at `path` unless it is fetched already; resolves once it is shown (or,
 * failing, not: the initials stay, and the next screen to show it asks again). */
export function loadAvatar(path: string): Promise<void> {
  const known = asked.get(path);
  if (known) return known.done;
  const mine = { done: Promise.resolve() };
  asked.set(path, mine);
  mine.done = (async () => {
    try {
      const { blob } = await fetchFile(path);
      // Forgotten meanwhile (replaced, removed, someone else signed in): not shown.
      if (asked.get(path) !== mine) return;
      avatars.shown[path] = URL.createObjectURL(blob);
    } catch {
      if (asked.get(path) === mine) asked.delete(path);
    }
  })();
  return mine.done;
}

/** Drops what is shown for `path` (the avatar was replaced or removed). */
export function forgetAvatar(path: string): void {
  asked.delete(path);
  const url = avatars.shown[path];
  if (url) {
    URL.revokeObjectURL(url);
    delete avatars.shown[path];
  }
}

/** Drops every avatar (another person signs in). Called from an effect, which must not come to
 * depend on what it drops. */
export function forgetAvatars(): void {
  untrack(() => {
    for (const path of [...asked.keys(), ...Object.keys(avatars.shown)]) forgetAvatar(path);
  });
}
