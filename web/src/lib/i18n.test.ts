import { describe, expect, it } from 'vitest';
import { keys, translate } from './i18n.svelte';

describe('the i18n table', () => {
  it('has every string in French and English, with the same placeholders', () => {
    for (const key of keys()) {
      const fr = translate('fr', key);
      const en = translate('en', key);
      expect(fr, key).not.toBe('');
      expect(en, key).not.toBe('');
      const vars = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect(vars(fr), key).toEqual(vars(en));
    }
  });
  it('fills placeholders', () => {
    expect(translate('fr', 'err.rateLimited', { n: 12 })).toBe('Trop de demandes. Réessayez dans 12 s.');
    expect(translate('en', 'conv.typing', { name: 'Hugo' })).toBe('Hugo is typing…');
  });
});
