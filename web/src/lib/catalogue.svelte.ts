// The character catalogue and the person's matches, loaded once and shared by the screens.
import type { components } from '../api/schema';
import { api, ok } from './api.svelte';
import { forgetAvatars } from './avatars.svelte';

export type Character = components['schemas']['CharacterCard'];
export type MatchSummary = components['schemas']['MatchSummary'];

export const catalogue = $state({ characters: [] as Character[], matches: [] as MatchSummary[], loaded: false });

let loading: Promise<void> | null = null;
/** Bumped when the signed-in person changes: an answer asked for before is not theirs. */
let generation = 0;

export function loadCharacters(): Promise<void> {
  if (catalogue.loaded) return Promise.resolve();
  const asked = generation;
  loading ??= ok(api.GET('/api/v1/characters'))
    .then((list) => {
      if (asked !== generation) return;
      catalogue.characters = list;
      catalogue.loaded = true;
    })
    .finally(() => {
      if (asked === generation) loading = null;
    });
  return loading;
}

/** Bumped when conversations are marked read here: a list asked for before is stale. */
let reads = 0;

export async function loadMatches(): Promise<MatchSummary[]> {
  const asked = generation;
  const since = reads;
  const list = await ok(api.GET('/api/v1/matches'));
  if (asked === generation && since === reads) catalogue.matches = list;
  return list;
}

/** Conversations the server marked read (one, or every one), read here at once; a list asked
 * for before would bring their unread counts back. */
export function markedRead(character?: string): void {
  reads++;
  for (const m of catalogue.matches) if (character === undefined || m.character_id === character) m.unread_count = 0;
}

export function character(id: string): Character | undefined {
  return catalogue.characters.find((c) => c.id === id);
}

export function nameOf(id: string): string {
  return character(id)?.name ?? catalogue.matches.find((m) => m.character_id === id)?.character_name ?? id;
}

/** Forgets what was loaded (another person signs in; one's own characters changed). */
export function forgetCatalogue(): void {
  generation++;
  loading = null;
  catalogue.characters = [];
  catalogue.matches = [];
  catalogue.loaded = false;
  forgetAvatars();
}

/** The catalogue again, after one's own characters changed. */
export async function reloadCharacters(): Promise<void> {
  await loading?.catch(() => {});
  catalogue.loaded = false;
  await loadCharacters();
}
