import { describe, expect, it } from 'vitest';
import { avatarProblem, avatarType, changesOf, draftOf, MAX_AVATAR_BYTES, newCharacter, tagsOf } from './characters';

const lea = {
  id: 'lea-3f9a1c2b7d',
  name: 'Léa',
  tagline: 'Gardienne de phare',
  persona: 'Léa garde le phare.',
  greeting: 'La lanterne est allumée.',
  tags: ['mer', 'nuit'],
  owned: true,
};

describe('a character of one’s own in its form', () => {
  it('reads tags as typed', () => {
    expect(tagsOf(' mer, #nuit,, ')).toEqual(['mer', 'nuit']);
  });
  it('sends a new one with empty fields left out', () => {
    expect(newCharacter({ name: ' Léa ', tagline: ' ', persona: 'x', greeting: '', tags: '' })).toEqual({
      name: 'Léa',
      persona: 'x',
      tagline: null,
      greeting: null,
      tags: [],
    });
  });
  it('sends nothing when nothing changed', () => {
    expect(changesOf(lea, draftOf(lea))).toEqual({});
    expect(changesOf(lea, { ...draftOf(lea), name: ' Léa ', tags: 'mer,nuit' })).toEqual({});
  });
  it('sends only what changed, an emptied field as empty', () => {
    const d = { ...draftOf(lea), tagline: 'Gardienne de phare à Ouessant', greeting: '', tags: 'mer' };
    expect(changesOf(lea, d)).toEqual({ tagline: 'Gardienne de phare à Ouessant', greeting: '', tags: ['mer'] });
  });
  it('counts tags in another order as a change', () => {
    expect(changesOf(lea, { ...draftOf(lea), tags: 'nuit, mer' })).toEqual({ tags: ['nuit', 'mer'] });
  });
});

describe('an avatar, before it is sent', () => {
  const file = (name: string, type: string, size = 1000) => ({ name, type, size });
  it('takes PNG, JPEG and WebP', () => {
    expect(avatarProblem(file('a.png', 'image/png'))).toBeNull();
    expect(avatarProblem(file('a.jpg', 'image/jpeg'))).toBeNull();
    expect(avatarProblem(file('a.webp', 'image/webp'))).toBeNull();
  });
  it('refuses another type, and an empty file', () => {
    expect(avatarProblem(file('a.gif', 'image/gif'))).toBe('own.avatarType');
    expect(avatarProblem(file('notes.txt', 'text/plain'))).toBe('own.avatarType');
    expect(avatarProblem(file('a.png', 'image/png', 0))).toBe('own.avatarType');
  });
  it('refuses more than 8 MiB', () => {
    expect(avatarProblem(file('a.png', 'image/png', MAX_AVATAR_BYTES))).toBeNull();
    expect(avatarProblem(file('a.png', 'image/png', MAX_AVATAR_BYTES + 1))).toBe('own.avatarSize');
  });
  it('goes by the extension when the browser gives no type', () => {
    expect(avatarType(file('Portrait.JPEG', ''))).toBe('image/jpeg');
    expect(avatarType(file('portrait', ''))).toBeNull();
  });
});
