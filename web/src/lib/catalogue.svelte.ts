// The character catalogue and the person's matches, loaded once and shared by the screens.
import type { components } from '../api/schema';
import { api, ok } from './api.svelte';

export type Character = components['schemas']['CharacterCard'];
export type MatchSummary = components['schemas']['MatchSummary'];

export const catalogue = $state({ characters: [] as Character[], matches: [] as MatchSummary[], loaded: false });

let loading: Promise<void> | null = null;

export function loadCharacters(): Promise<void> {
  if (catalogue.loaded) return Promise.resolve();
  loading ??= ok(api.GET('/api/v1/characters'))
    .then((list) => {
      catalogue.characters = list;
      catalogue.loaded = true;
    })
    .finally(() => (loading = null));
  return loading;
}

export async function loadMatches(): Promise<MatchSummary[]> {
  catalogue.matches = await ok(api.GET('/api/v1/matches'));
  return catalogue.matches;
}

export function character(id: string): Character | undefined {
  return catalogue.characters.find((c) => c.id === id);
}

export function nameOf(id: string): string {
  return character(id)?.name ?? catalogue.matches.find((m) => m.character_id === id)?.character_name ?? id;
}

/** Forgets what was loaded (another person signs in; one's own characters changed). */
export function forgetCatalogue(): void {
  catalogue.characters = [];
  catalogue.matches = [];
  catalogue.loaded = false;
}

/** The catalogue again, after one's own characters changed. */
export async function reloadCharacters(): Promise<void> {
  await loading?.catch(() => {});
  catalogue.loaded = false;
  await loadCharacters();
}
