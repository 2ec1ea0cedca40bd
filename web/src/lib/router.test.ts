import { describe, expect, it } from 'vitest';
import { parse } from './router.svelte';

describe('parse', () => {
  it('knows every screen', () => {
    expect(parse('/')).toEqual({ name: 'home' });
    expect(parse('/discover')).toEqual({ name: 'discover' });
    expect(parse('/chat/sophia', '?m=42')).toEqual({ name: 'chat', id: 'sophia', message: 42 });
    expect(parse('/chat/sophia')).toEqual({ name: 'chat', id: 'sophia', message: null });
    expect(parse('/chat/sophia/photos')).toEqual({ name: 'photos', id: 'sophia' });
    expect(parse('/chat/sophia/memories')).toEqual({ name: 'memories', id: 'sophia' });
    expect(parse('/search', '?q=colette')).toEqual({ name: 'search', q: 'colette' });
  });
  it('anything else is not found', () => {
    for (const p of ['/chat/Sophia', '/chat/a/b', '/metrics', '/chat/sophia/x', '/discover/x']) {
      expect(parse(p).name).toBe('notFound');
    }
    expect(parse('/chat/sophia', '?m=-1')).toMatchObject({ message: null });
  });
});
