// Small pure helpers the screens share (unit-tested).

/** A search headline (`ts_headline` over escaped text, matches in `<mark>`) as text parts. */
export function headlineParts(html: string): { text: string; mark: boolean }[] {
  const parts: { text: string; mark: boolean }[] = [];
  const re = /<mark>(.*?)<\/mark>/gs;
  let last = 0;
  for (let m = re.exec(html); m; m = re.exec(html)) {
    if (m.index > last) parts.push({ text: unescape(html.slice(last, m.index)), mark: false });
    parts.push({ text: unescape(m[1] ?? ''), mark: true });
    last = m.index + m[0].length;
  }
  if (last < html.length) parts.push({ text: unescape(html.slice(last)), mark: false });
  return parts;
}

function unescape(s: string): string {
  return s
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
}

/** XP at which `level` starts (level 1 at 0; 100, 400, 900 … as the auth service counts). */
export function levelStart(level: number): number {
  return 100 * (level - 1) ** 2;
}

/** Progress (0–1) through the current level, and the XP left to the next. */
export function levelProgress(xp: number, level: number): { ratio: number; left: number } {
  const start = levelStart(level);
  const end = levelStart(level + 1);
  return { ratio: Math.min(1, Math.max(0, (xp - start) / (end - start))), left: Math.max(0, end - xp) };
}

/** A time as a chat list shows it: the hour today, the day otherwise. */
export function shortTime(iso: string | null | undefined, locale: string, now = new Date()): string {
  if (!iso) return '';
  const d = new Date(iso);
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString(locale, { day: 'numeric', month: 'short' });
}

/** Initials for an avatar. */
export function initials(name: string): string {
  return name
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w[0]?.toUpperCase() ?? '')
    .join('');
}

/** A stable hue for a name (avatars keep their colour). */
export function hue(seed: string): number {
  let h = 0;
  for (const c of seed) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

/** A silence of `seconds` in the largest unit it is a whole number of (days, then hours), for
 * the i18n keys `writeFirst.day(s)` / `writeFirst.hour(s)`; under an hour (a development
 * setting), an hour. */
export function silence(seconds: number): { unit: 'day' | 'days' | 'hour' | 'hours'; n: number } {
  if (seconds >= 86_400 && seconds % 86_400 === 0) {
    const n = seconds / 86_400;
    return { unit: n === 1 ? 'day' : 'days', n };
  }
  const n = Math.max(1, Math.round(seconds / 3600));
  return { unit: n === 1 ? 'hour' : 'hours', n };
}

/** The silences a conversation can be given (the ai service takes an hour to 30 days). */
export const SILENCES = [3_600, 4 * 3_600, 12 * 3_600, 86_400, 3 * 86_400, 7 * 86_400] as const;
