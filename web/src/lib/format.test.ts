import { describe, expect, it } from 'vitest';
import { headlineParts, hue, initials, levelProgress, levelStart, shortTime, silence } from './format';

describe('headlineParts', () => {
  it('splits marks and unescapes text without interpreting HTML', () => {
    expect(headlineParts('je relis <mark>Colette</mark> &lt;3 &amp; toi')).toEqual([
      { text: 'je relis ', mark: false },
      { text: 'Colette', mark: true },
      { text: ' <3 & toi', mark: false },
    ]);
    // Escaped markup stays text; stray tags are dropped.
    expect(headlineParts('&lt;script&gt;<b>x</b>').map((p) => p.text).join('')).toBe('<script>x');
  });
});

describe('levels', () => {
  it('match the auth service (100, 400, 900 … XP)', () => {
    expect([1, 2, 3, 4].map(levelStart)).toEqual([0, 100, 400, 900]);
    expect(levelProgress(250, 2)).toEqual({ ratio: 0.5, left: 150 });
    expect(levelProgress(0, 1)).toEqual({ ratio: 0, left: 100 });
  });
});

describe('small helpers', () => {
  it('initials, hue and short times', () => {
    expect(initials('Sophia')).toBe('S');
    expect(initials('Jean  Marc Dupont')).toBe('JM');
    expect(hue('sophia')).toBe(hue('sophia'));
    const now = new Date('2026-03-02T15:00:00Z');
    expect(shortTime('2026-03-02T14:05:00Z', 'fr-FR', now)).toMatch(/\d{2}:\d{2}/);
    expect(shortTime('2026-02-20T14:05:00Z', 'fr-FR', now)).toMatch(/20/);
    expect(shortTime(null, 'fr-FR', now)).toBe('');
  });
});

describe('silence', () => {
  it('says days when it is whole days, hours otherwise', () => {
    expect(silence(86_400)).toEqual({ unit: 'day', n: 1 });
    expect(silence(3 * 86_400)).toEqual({ unit: 'days', n: 3 });
    expect(silence(36 * 3600)).toEqual({ unit: 'hours', n: 36 });
    expect(silence(3600)).toEqual({ unit: 'hour', n: 1 });
  });
  it('says an hour for a shorter development setting', () => {
    expect(silence(30)).toEqual({ unit: 'hour', n: 1 });
  });
});
