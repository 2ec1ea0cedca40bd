// History routing: the gateway answers every navigation outside /api/ with index.html.
export type Route =
  | { name: 'home' }
  | { name: 'login' }
  | { name: 'signup' }
  | { name: 'discover' }
  | { name: 'chats' }
  | { name: 'chat'; id: string; message: number | null }
  | { name: 'photos'; id: string }
  | { name: 'memories'; id: string }
  | { name: 'search'; q: string }
  | { name: 'profile' }
  | { name: 'notFound' };

const ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** The route of a path and query. */
export function parse(pathname: string, search = ''): Route {
  const q = new URLSearchParams(search);
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const [a, b, c] = parts;
  if (parts.length === 0) return { name: 'home' };
  if (parts.length === 1) {
    switch (a) {
      case 'login':
      case 'signup':
      case 'discover':
      case 'chats':
      case 'profile':
        return { name: a };
      case 'search':
        return { name: 'search', q: q.get('q') ?? '' };
    }
  }
  if (a === 'chat' && b && ID.test(b)) {
    if (parts.length === 2) {
      const m = Number(q.get('m'));
      return { name: 'chat', id: b, message: Number.isInteger(m) && m > 0 ? m : null };
    }
    if (parts.length === 3 && c === 'photos') return { name: 'photos', id: b };
    if (parts.length === 3 && c === 'memories') return { name: 'memories', id: b };
  }
  return { name: 'notFound' };
}

const here = () =>
  typeof location === 'undefined' ? { path: '/', search: '' } : { path: location.pathname, search: location.search };

export const router = $state({ ...here(), route: parse(here().path, here().search) as Route });

function update(): void {
  const h = here();
  router.path = h.path;
  router.search = h.search;
  router.route = parse(h.path, h.search);
}

/** Goes to `href` (a path of the app). */
export function go(href: string, replace = false): void {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  update();
  window.scrollTo?.(0, 0);
}

/** Links of the app are followed without reloading the page. */
export function startRouter(): void {
  window.addEventListener('popstate', update);
  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = (ev.target as Element | null)?.closest?.('a');
    const href = a?.getAttribute('href');
    if (!a || !href || !href.startsWith('/') || href.startsWith('/api/') || a.target) return;
    ev.preventDefault();
    go(href);
  });
}
