// A character of one's own as its form shows it, and the checks made before an avatar is sent
// (unit-tested).
import type { components } from '../api/schema';
import type { Key } from './i18n.svelte';

type Character = components['schemas']['CharacterCard'];
export type CreateCharacter = components['schemas']['CreateCharacter'];
export type UpdateCharacter = components['schemas']['UpdateCharacter'];

/** The form's fields, as typed (tags comma-separated). */
export interface CharacterDraft {
  name: string;
  tagline: string;
  persona: string;
  greeting: string;
  tags: string;
}

export const EMPTY_DRAFT: Readonly<CharacterDraft> = { name: '', tagline: '', persona: '', greeting: '', tags: '' };

/** `poésie, #nuit,` as `['poésie', 'nuit']`. */
export function tagsOf(text: string): string[] {
  return text
    .split(',')
    .map((x) => x.trim().replace(/^#/, ''))
    .filter(Boolean);
}

/** The form filled in with one of one's own characters. */
export function draftOf(c: Character): CharacterDraft {
  return { name: c.name, tagline: c.tagline, persona: c.persona ?? '', greeting: c.greeting, tags: c.tags.join(', ') };
}

export function newCharacter(d: CharacterDraft): CreateCharacter {
  return {
    name: d.name.trim(),
    persona: d.persona.trim(),
    tagline: d.tagline.trim() || null,
    greeting: d.greeting.trim() || null,
    tags: tagsOf(d.tags),
  };
}

/** What the form changed, and only that (an edit leaves the fields it does not name as they
 * are); empty when nothing changed. A field emptied is sent empty (`null` would keep it). */
export function changesOf(c: Character, d: CharacterDraft): UpdateCharacter {
  const out: UpdateCharacter = {};
  const name = d.name.trim();
  const tagline = d.tagline.trim();
  const persona = d.persona.trim();
  const greeting = d.greeting.trim();
  const tags = tagsOf(d.tags);
  if (name !== c.name) out.name = name;
  if (tagline !== c.tagline) out.tagline = tagline;
  if (persona !== (c.persona ?? '')) out.persona = persona;
  if (greeting !== c.greeting) out.greeting = greeting;
  if (tags.length !== c.tags.length || tags.some((x, i) => x !== c.tags[i])) out.tags = tags;
  return out;
}

/** What the media service takes as an avatar (it keeps a PNG of it). */
export const AVATAR_TYPES = ['image/png', 'image/jpeg', 'image/webp'] as const;
export const MAX_AVATAR_BYTES = 8 * 1024 * 1024;
export const MAX_AVATAR_SIDE = 4096;

const EXTENSIONS: Record<string, (typeof AVATAR_TYPES)[number]> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
};

/** The image type of a picked file: its own, or (a browser that gave none) its extension's. */
export function avatarType(file: { type: string; name: string }): string | null {
  if (file.type) return (AVATAR_TYPES as readonly string[]).includes(file.type) ? file.type : null;
  return EXTENSIONS[file.name.toLowerCase().split('.').pop() ?? ''] ?? null;
}

/** Why a picked file cannot be an avatar (said before it is sent), or `null`. */
export function avatarProblem(file: { type: string; name: string; size: number }): Key | null {
  if (!avatarType(file)) return 'own.avatarType';
  if (file.size > MAX_AVATAR_BYTES) return 'own.avatarSize';
  if (file.size === 0) return 'own.avatarType';
  return null;
}
