// The web app's story in a real Chromium (Debian's, driven by playwright-core) against a real
// gateway and services: sign up → discover → match → send → the reply streams in token by
// token → a photo arrives and displays → versions of the reply (another one, back to the first,
// kept after a reload) → continue it → a reply written while away is unread, then all marked
// read → search finds the message → edit a memory → reload keeps the session → edit and delete
// a message → unmatch → a character of one's own (create, export and import its card, delete,
// match) → its conversation's own write-first setting, off and kept → edit the character, give
// it an avatar (a wrong file refused, a PNG previewed, shown on its card, in the chat list and
// in its conversation), remove it → change the password → download one's data → sign out →
// sign out everywhere from another device → sign in again and delete the account. axe-core
// checks every screen (0 serious or critical violations); screenshots of each screen at desktop
// and phone sizes go to test-results/.
//
//   BASE_URL=http://127.0.0.1:8080 node e2e/story.mjs
//
// The gateway must have AI_PHOTO_EVERY small enough for the first reply to bring a photo.
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const BASE = process.env.BASE_URL ?? 'http://127.0.0.1:8080';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const OUT = process.env.OUT_DIR ?? new URL('../test-results/', import.meta.url).pathname;
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
mkdirSync(OUT, { recursive: true });

const started = Date.now();
const steps = [];
let failures = 0;
const problems = [];

function log(msg) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
}

async function step(name, f) {
  const t0 = Date.now();
  try {
    await f();
    steps.push({ name, ok: true, ms: Date.now() - t0 });
    log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    steps.push({ name, ok: false, ms: Date.now() - t0 });
    log(`FAIL ${name}: ${e?.stack ?? e}`);
    throw e;
  }
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** axe-core on the page as it is: 0 serious or critical violations. */
async function axe(page, screen) {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  log(`axe  ${screen}: ${result.length} violation(s), ${bad.length} serious/critical${result.length ? ' ' + JSON.stringify(result) : ''}`);
  check(bad.length === 0, `axe on ${screen}: ${JSON.stringify(bad)}`);
}

async function shot(page, name) {
  await page.screenshot({ path: `${OUT}${name}.png`, fullPage: false });
}

/** A small PNG written here (a gradient, `side`×`side` pixels, 8-bit RGB): the avatar uploaded. */
function png(side) {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = table[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header[8] = 8; // bits per sample
  header[9] = 2; // RGB
  const row = 1 + side * 3; // each row starts with its filter (0: none)
  const pixels = Buffer.alloc(side * row);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      pixels.set([200, 40 + Math.floor((x * 150) / side), 90 + Math.floor((y * 150) / side)], y * row + 1 + x * 3);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(pixels)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Waits until the `<img>` at `selector` is there and drawn. */
function drawn(page, selector) {
  return page.waitForFunction((sel) => {
    const i = document.querySelector(sel);
    return i && i.complete && i.naturalWidth > 0;
  }, selector, { timeout: 15_000 });
}

function watch(page, label) {
  page.on('console', (m) => {
    const text = m.text();
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(text)) problems.push(`${label} CSP: ${text}`);
  });
  page.on('pageerror', (e) => problems.push(`${label} page error: ${e.message}`));
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
const email = `story-${Date.now()}@example.com`;
const password = 'un mot de passe solide';
const said = 'Ce soir je relis Colette au bord du Rhône';
let summary;
try {
  // Someone in Ontario: the time zone is not the server's default (UTC).
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 820 }, locale: 'fr-FR', timezoneId: 'America/Toronto' });
  const page = await desktop.newPage();
  watch(page, 'desktop');

  await step('a signed-out visitor lands on sign-in, in French', async () => {
    await page.goto(`${BASE}/`);
    await page.waitForURL('**/login');
    await page.getByRole('heading', { name: 'Se connecter' }).waitFor();
    const html = await page.request.get(`${BASE}/`, { headers: { accept: 'text/html' } });
    const csp = html.headers()['content-security-policy'] ?? '';
    check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `CSP: ${csp}`);
    await axe(page, 'login');
    await shot(page, 'desktop-1-login');
  });

  await step('sign up', async () => {
    await page.getByRole('link', { name: /En créer un/ }).click();
    await page.waitForURL('**/signup');
    await page.getByLabel('Votre prénom').fill('Camille');
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Mot de passe').fill(password);
    await axe(page, 'signup');
    await shot(page, 'desktop-2-signup');
    await page.getByRole('button', { name: 'Créer un compte' }).click();
    await page.waitForURL('**/discover');
    // The refresh token is an HttpOnly cookie; page scripts see no token at all.
    const cookies = await desktop.cookies();
    const refresh = cookies.find((c) => c.name === 'dream_refresh');
    check(refresh && refresh.httpOnly && refresh.sameSite === 'Strict' && refresh.path === '/api/v1/auth', `refresh cookie: ${JSON.stringify(refresh)}`);
    const visible = await page.evaluate(() => document.cookie + JSON.stringify(localStorage) + JSON.stringify(sessionStorage));
    check(!/dream_refresh|dream_media|eyJ/.test(visible), `scripts can read a token: ${visible}`);
  });

  await step('discover: cards, a tag filter, match', async () => {
    await page.locator('[data-character="sophia"]').waitFor();
    const all = await page.locator('.cards > li').count();
    await page.getByRole('button', { name: '#romantique' }).click();
    const filtered = await page.locator('.cards > li').count();
    check(filtered >= 1 && filtered < all, `filter: ${filtered} of ${all}`);
    await axe(page, 'discover');
    await shot(page, 'desktop-3-discover');
    await page.locator('[data-character="sophia"]').getByRole('button', { name: /Matcher/ }).click();
    await page.waitForURL('**/chat/sophia');
  });

  let frames = [];
  await step('send: optimistic bubble, then the reply streams in token by token', async () => {
    // Every text the streaming bubble shows, as the page draws it.
    await page.evaluate(() => {
      window.__frames = [];
      new MutationObserver(() => {
        const b = document.querySelector('.bubble.character[data-state="streaming"] .text');
        const text = b?.textContent ?? '';
        if (text && window.__frames[window.__frames.length - 1] !== text) window.__frames.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    const box = page.getByRole('textbox', { name: 'Écrire un message…' });
    await box.fill(said);
    await box.press('Enter');
    await page.locator('.bubble.user', { hasText: said }).waitFor();
    await page.locator('.bubble.character[data-state="streaming"] .text').waitFor({ timeout: 15_000 });
    await shot(page, 'desktop-4-streaming');
    await page.locator('.bubble.character[data-state="stored"]').last().waitFor({ timeout: 60_000 });
    await page.waitForFunction(() => !document.querySelector('[data-state="streaming"]'));
    frames = await page.evaluate(() => window.__frames);
    const final = await page.locator('.bubble.character[data-state="stored"] .text').last().textContent();
    check(frames.length >= 5, `only ${frames.length} intermediate states: ${JSON.stringify(frames)}`);
    check(frames.every((f, i) => i === 0 || f.startsWith(frames[i - 1].slice(0, -1)) || f.length > frames[i - 1].length), 'frames grow');
    check(final && final.startsWith(frames[frames.length - 1].trim().slice(0, 10)), `final ${final} vs ${frames.at(-1)}`);
    log(`     the reply arrived in ${frames.length} steps: "${frames[0]}" … "${final?.slice(0, 60)}…"`);
  });

  await step('a photo arrives and displays', async () => {
    const img = page.locator('.bubble img').first();
    await img.waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => {
      const i = document.querySelector('.bubble img');
      return i && i.complete && i.naturalWidth > 0;
    }, null, { timeout: 30_000 });
    const src = await img.getAttribute('src');
    check(src && /^\/api\/v1\/media\/\d+\?w=256$/.test(src), `img src ${src}`);
    await page.locator('[data-testid="affection"]').waitFor();
    await axe(page, 'conversation');
    await shot(page, 'desktop-5-conversation');
    await img.click();
    await page.locator('dialog.lightbox img').waitFor();
    await page.waitForFunction(() => document.querySelector('dialog.lightbox img')?.naturalWidth > 0);
    await axe(page, 'lightbox');
    await shot(page, 'desktop-6-lightbox');
    await page.keyboard.press('Escape');
    await page.locator('dialog.lightbox').waitFor({ state: 'detached' });
  });

  // The reply to the latest message has its versions even with the photo it earned after it
  // (with AI_PHOTO_EVERY=2 every new reply earns one; a regenerate or a continue earns none).
  let reply = '';
  let first = '';
  await step('versions of a reply: another one, back to the first, kept after a reload', async () => {
    await page.locator('.bubble.character .versions').waitFor();
    reply = `#${await page.locator('.bubble.character:has(.versions)').getAttribute('id')}`;
    const text = page.locator(`${reply} p.text`);
    first = (await text.textContent()) ?? '';
    check(first.length > 0, 'the reply has no text');
    await page.locator(reply).getByRole('button', { name: 'Autre réponse' }).click();
    await page.locator(`${reply} .versions .count`, { hasText: '2/2' }).waitFor({ timeout: 60_000 });
    const second = (await text.textContent()) ?? '';
    log(`     version 2 ${second === first ? 'reads as version 1 did' : 'is another text'}: "${second.slice(0, 60)}…"`);
    await axe(page, 'conversation, two versions of a reply');
    await shot(page, 'desktop-16-versions');
    const previous = page.locator(reply).getByRole('button', { name: 'Version précédente' });
    await previous.click();
    await page.locator(`${reply} .versions .count`, { hasText: '1/2' }).waitFor();
    check((await text.textContent()) === first, `version 1 shows "${await text.textContent()}", not "${first}"`);
    check((await previous.getAttribute('aria-disabled')) === 'true', 'a version before the first');
    await page.reload();
    await page.locator(`${reply} .versions .count`, { hasText: '1/2' }).waitFor();
    check((await page.locator(`${reply} p.text`).textContent()) === first, 'the version picked was not kept');
  });

  await step('continue: the reply goes on in its bubble, token by token, as a third version', async () => {
    const text = page.locator(`${reply} p.text`);
    const before = (await text.textContent()) ?? '';
    check(before === first, `the reply reads "${before}"`);
    await page.evaluate(() => {
      window.__frames = [];
      new MutationObserver(() => {
        const b = document.querySelector('.bubble.character[data-state="streaming"] .text');
        const t = b?.textContent ?? '';
        if (t && window.__frames[window.__frames.length - 1] !== t) window.__frames.push(t);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.locator(reply).getByRole('button', { name: 'Continuer' }).click();
    await page.locator(`${reply} .versions .count`, { hasText: '3/3' }).waitFor({ timeout: 60_000 });
    const after = (await text.textContent()) ?? '';
    const seen = await page.evaluate(() => window.__frames);
    check(after.startsWith(before) && after.length > before.length, `continued: "${before}" → "${after}"`);
    check(seen.length >= 2 && seen.every((f) => f.startsWith(before)), `the bubble while streaming: ${JSON.stringify(seen)}`);
    check(seen.some((f) => f.length > before.length), `no new text while streaming: ${JSON.stringify(seen)}`);
    log(`     continued in ${seen.length} steps: …"${after.slice(before.length, before.length + 60)}…"`);
  });

  await step('a reply written while away is unread; mark all read clears every badge', async () => {
    const box = page.getByRole('textbox', { name: 'Écrire un message…' });
    await box.fill('Et toi, que lis-tu en ce moment ?');
    await box.press('Enter');
    // Once it streams, the server writes the reply (and asks for its photo) whether or not the
    // page stays to read it.
    await page.locator('.bubble.character[data-state="streaming"] .text').waitFor({ timeout: 15_000 });
    await page.getByRole('link', { name: /Discussions/ }).first().click();
    await page.waitForURL('**/chats');
    const row = page.locator('[data-character="sophia"]');
    await row.waitFor();
    const badge = row.locator('.badge');
    const unread = async () => ((await badge.count()) ? Number(await badge.textContent()) : 0);
    // The reply and its photo, both unread: the list is asked again until both are there.
    for (let i = 0; i < 30 && (await unread()) < 2; i++) {
      await page.waitForTimeout(1000);
      await page.reload();
      await row.waitFor();
    }
    check((await unread()) >= 2, `unread: ${await unread()}`);
    const markAll = page.getByRole('button', { name: 'Tout marquer comme lu' });
    await axe(page, 'chats, unread');
    await shot(page, 'desktop-17-unread');
    await markAll.click();
    await page.getByText('Toutes les discussions sont lues.').waitFor();
    await page.waitForFunction(() => !document.querySelector('.chat-list .badge'));
    check((await markAll.count()) === 0, 'the button stays with nothing unread');
    await page.reload();
    await row.waitFor();
    check((await page.locator('.chat-list .badge').count()) === 0, 'a badge came back after a reload');
  });

  await step('the chat list shows the match, its last message and time', async () => {
    await page.getByRole('link', { name: /Discussions/ }).first().click();
    await page.waitForURL('**/chats');
    await page.locator('[data-character="sophia"]').waitFor();
    await axe(page, 'chats');
    await shot(page, 'desktop-7-chats');
  });

  await step('search finds the message and jumps to it', async () => {
    await page.getByRole('link', { name: /Recherche/ }).first().click();
    await page.getByRole('searchbox').fill('Colette');
    await page.getByRole('button', { name: 'Chercher' }).click();
    const hit = page.locator('.hit', { hasText: 'relis' }).first();
    await hit.waitFor();
    check((await hit.locator('mark').count()) > 0, 'the match is highlighted');
    await axe(page, 'search');
    await shot(page, 'desktop-8-search');
    await hit.click();
    await page.waitForURL(/\/chat\/sophia\?m=\d+/);
    await page.locator('.bubble.found', { hasText: said }).waitFor();
  });

  const edited = 'Camille relit Colette le soir, au bord du Rhône';
  await step('edit a memory', async () => {
    await page.getByRole('link', { name: 'Souvenirs' }).click();
    await page.waitForURL('**/chat/sophia/memories');
    await page.locator('.memories, .muted').first().waitFor();
    if ((await page.locator('.memories > li').count()) === 0) {
      await page.getByLabel('Ajouter un souvenir').fill('Camille aime les romans');
      await page.getByRole('button', { name: 'Enregistrer' }).click();
      await page.locator('.memories > li').first().waitFor();
    }
    await axe(page, 'memories');
    await shot(page, 'desktop-9-memories');
    const first = page.locator('.memories > li').first();
    await first.getByRole('button', { name: /Modifier/ }).click();
    await first.getByRole('textbox').fill(edited);
    await first.getByRole('button', { name: 'Enregistrer' }).click();
    await page.locator('.memories > li p', { hasText: edited }).waitFor();
  });

  await step('reload keeps the session (and the edit)', async () => {
    await page.reload();
    await page.locator('.memories > li p', { hasText: edited }).waitFor();
    check(page.url().endsWith('/chat/sophia/memories'), page.url());
    const t0 = Date.now();
    await page.goto(`${BASE}/chats`);
    await page.locator('[data-character="sophia"]').waitFor();
    const timing = await page.evaluate(() => ({
      fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
      app: window.__dreamFirstRender ?? null,
    }));
    log(`     first render: FCP ${timing.fcp?.toFixed(0)} ms, app mounted in ${timing.app?.toFixed(0)} ms, chat list shown ${Date.now() - t0} ms after navigation`);
    summary = { ...(summary ?? {}), fcp: timing.fcp, mount: timing.app, chatsShownMs: Date.now() - t0 };
  });

  await step('profile, XP, stats and leaderboard; English switch', async () => {
    await page.getByRole('link', { name: /Profil/ }).first().click();
    await page.getByRole('heading', { name: 'Classement' }).waitFor();
    await axe(page, 'profile');
    await shot(page, 'desktop-10-profile');
    await page.getByRole('button', { name: 'English' }).click();
    await page.getByRole('heading', { name: 'Leaderboard' }).waitFor();
    await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
    await shot(page, 'desktop-11-profile-en');
    await page.getByRole('button', { name: 'Français' }).click();
    await page.getByRole('heading', { name: 'Classement' }).waitFor();
  });

  await step('characters who write first: off and on again, in the person’s time zone', async () => {
    const box = page.getByLabel('Les personnages peuvent m’écrire en premier');
    await box.waitFor();
    check(await box.isChecked(), 'on by default');
    await box.uncheck();
    await page.getByText('Réglage enregistré.').waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Quand le silence dure' }).waitFor();
    check(!(await page.getByLabel('Les personnages peuvent m’écrire en premier').isChecked()), 'still on after a reload');
    await page.getByLabel('Les personnages peuvent m’écrire en premier').check();
    const here = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
    check(here === 'America/Toronto', `the browser's time zone: ${here}`);
    await page.getByRole('button', { name: `Utiliser mon fuseau horaire (${here})` }).click();
    await page.getByText(`(${here}).`).waitFor();
    await page.reload();
    await page.getByText(`(${here}).`).waitFor();
    check(await page.getByLabel('Les personnages peuvent m’écrire en premier').isChecked(), 'off after turning it on');
    check((await page.getByRole('button', { name: /Utiliser mon fuseau/ }).count()) === 0, 'the time zone offer stays');
    await page.locator('.write-first').screenshot({ path: `${OUT}desktop-14-write-first.png` });
    await axe(page, 'profile, writing first');
  });

  await step('phone: every screen at 390×844', async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'fr-FR',
    });
    const p = await phone.newPage();
    watch(p, 'phone');
    await p.goto(`${BASE}/login`);
    await shot(p, 'phone-1-login');
    await p.getByLabel('E-mail').fill(email);
    await p.getByLabel('Mot de passe').fill(password);
    await p.getByRole('button', { name: 'Se connecter' }).click();
    await p.waitForURL('**/chats');
    await p.locator('[data-character="sophia"]').waitFor();
    await axe(p, 'phone chats');
    await shot(p, 'phone-2-chats');
    await p.goto(`${BASE}/discover`);
    await p.locator('[data-character="hugo"]').waitFor();
    await axe(p, 'phone discover');
    await shot(p, 'phone-3-discover');
    await p.goto(`${BASE}/chat/sophia`);
    await p.waitForFunction(() => {
      const i = document.querySelector('.bubble img');
      return i && i.complete && i.naturalWidth > 0;
    }, null, { timeout: 30_000 });
    await axe(p, 'phone conversation');
    await shot(p, 'phone-4-conversation');
    await p.goto(`${BASE}/chat/sophia/photos`);
    await p.waitForFunction(() => document.querySelector('.gallery img')?.naturalWidth > 0, null, { timeout: 30_000 });
    await axe(p, 'phone photos');
    await shot(p, 'phone-5-photos');
    await p.goto(`${BASE}/search?q=Colette`);
    await p.locator('.hit mark').first().waitFor();
    await shot(p, 'phone-6-search');
    await p.goto(`${BASE}/chat/sophia/memories`);
    await p.locator('.memories > li').first().waitFor();
    await shot(p, 'phone-7-memories');
    await p.goto(`${BASE}/profile`);
    await p.getByRole('heading', { name: 'Classement' }).waitFor();
    await axe(p, 'phone profile');
    await shot(p, 'phone-8-profile');
    await phone.close();
  });

  await step('edit a message, then delete it; the reply stays', async () => {
    await page.goto(`${BASE}/chat/sophia`);
    const mine = page.locator('.bubble.user', { hasText: said });
    await mine.waitFor();
    const at = `#${await mine.getAttribute('id')}`;
    const rewritten = 'Ce soir je relis Colette au bord de la Saône';
    await page.locator(at).getByRole('button', { name: 'Modifier' }).click();
    await page.locator(at).getByRole('textbox').fill(rewritten);
    await shot(page, 'desktop-13-edit-message');
    await axe(page, 'conversation, editing a message');
    await page.locator(at).getByRole('button', { name: 'Enregistrer' }).click();
    await page.locator(`${at} p.text`, { hasText: rewritten }).waitFor();
    await page.reload();
    await page.locator(`${at} p.text`, { hasText: rewritten }).waitFor();
    await axe(page, 'conversation after an edit');
    const replies = await page.locator('.bubble.character').count();
    page.once('dialog', (d) => d.accept());
    await page.locator(at).getByRole('button', { name: 'Supprimer' }).click();
    await page.locator(at).waitFor({ state: 'detached' });
    await page.reload();
    await page.locator('.messages[aria-busy="false"]').waitFor();
    await page.locator('.bubble.character').first().waitFor();
    check((await page.locator(at).count()) === 0, 'the deleted message came back');
    const after = await page.locator('.bubble.character').count();
    check(after === replies, `the character's messages: ${replies} before, ${after} after`);
  });

  await step('unmatch: the conversation goes, the character can be matched again', async () => {
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Ne plus matcher' }).click();
    await page.waitForURL('**/chats');
    await page.getByText('Vous ne matchez plus avec').waitFor();
    check((await page.locator('[data-character="sophia"]').count()) === 0, 'sophia is still in the chat list');
    await page.goto(`${BASE}/discover`);
    await page.locator('[data-character="sophia"]').getByRole('button', { name: /Matcher/ }).waitFor();
  });

  await step('a character of one’s own: create it, export its card, import it back, delete the copy, match it', async () => {
    await page.goto(`${BASE}/discover`);
    await page.getByRole('button', { name: 'Créer un personnage' }).click();
    await page.getByLabel('Nom', { exact: true }).fill('Léa');
    await page.getByLabel('En une ligne').fill('Gardienne de phare à Ouessant');
    await page.getByLabel('Personnalité').fill('Léa garde le phare du Creac’h. Elle parle peu, précisément, aime les tempêtes et les cartes marines.');
    await page.getByLabel('Premier message').fill('La lanterne est allumée. Tu es arrivé·e par le dernier bateau ?');
    await page.getByLabel('Thèmes (séparés par des virgules)').fill('mer, nuit');
    await axe(page, 'discover, creating a character');
    await page.getByRole('button', { name: 'Créer', exact: true }).click();
    const mine = page.locator('.cards > li', { hasText: 'Gardienne de phare' });
    await mine.first().waitFor();
    check((await mine.count()) === 1, `cards of Léa: ${await mine.count()}`);
    await mine.getByText('à vous').waitFor();
    await shot(page, 'desktop-15-own-character');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      mine.getByRole('button', { name: /Exporter la carte/ }).click(),
    ]);
    const file = await download.path();
    const card = JSON.parse(readFileSync(file, 'utf8'));
    check(card.spec === 'chara_card_v3' && card.data?.name === 'Léa' && /phare/.test(card.data?.description ?? card.data?.personality ?? JSON.stringify(card.data)), `card: ${JSON.stringify(card).slice(0, 300)}`);
    await page.locator('input[type=file]').setInputFiles({ name: 'lea.json', mimeType: 'application/json', buffer: readFileSync(file) });
    await page.getByText('Carte importée.').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('.cards > li').length > 0 && [...document.querySelectorAll('.cards > li')].filter((li) => li.textContent.includes('Gardienne de phare')).length === 2);
    page.once('dialog', (d) => d.accept());
    await mine.last().getByRole('button', { name: /Supprimer/ }).click();
    await page.getByText('Léa a été supprimé·e.').waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll('.cards > li')].filter((li) => li.textContent.includes('Gardienne de phare')).length === 1);
    await mine.getByRole('button', { name: /Matcher/ }).click();
    await page.waitForURL('**/chat/**');
    await page.locator('.bubble.character', { hasText: 'La lanterne est allumée' }).waitFor();
  });

  await step('a conversation’s own setting: Léa does not write first, still so after a reload', async () => {
    const settings = page.getByRole('button', { name: 'Réglages', exact: true });
    check((await settings.getAttribute('aria-expanded')) === 'false', 'the settings are open before they are asked for');
    await settings.click();
    check((await settings.getAttribute('aria-expanded')) === 'true', 'the settings button says they are closed');
    const box = page.getByLabel('Léa peut m’écrire en premier');
    await box.waitFor();
    check(await box.isChecked(), 'off by default');
    const after = page.getByLabel('Après un silence de');
    check(await after.isEnabled(), 'no silence to choose with the setting on');
    await axe(page, 'conversation, its settings');
    await page.locator('.conv-settings').screenshot({ path: `${OUT}desktop-18-conversation-settings.png` });
    await box.uncheck();
    await page.getByText('Réglage enregistré.').waitFor();
    check(await after.isDisabled(), 'a silence to choose with the setting off');
    await page.reload();
    await page.getByRole('button', { name: 'Réglages', exact: true }).click();
    await page.getByLabel('Léa peut m’écrire en premier').waitFor();
    check(!(await page.getByLabel('Léa peut m’écrire en premier').isChecked()), 'on again after a reload');
    await axe(page, 'conversation, its settings off');
  });

  await step('a character of one’s own: edit it; an avatar (checked, previewed, shown where Léa is), removed', async () => {
    await page.goto(`${BASE}/discover`);
    const card = page.locator('.cards > li', { hasText: 'Gardienne de phare' });
    await card.waitFor();
    const id = await card.getAttribute('data-character');
    const lea = page.locator(`.cards > li[data-character="${id}"]`);
    const editButton = lea.getByRole('button', { name: 'Modifier Léa' });
    await editButton.click();
    const tagline = lea.getByLabel('En une ligne');
    check((await tagline.inputValue()) === 'Gardienne de phare à Ouessant', `the form holds "${await tagline.inputValue()}"`);
    check(await lea.getByLabel('Nom', { exact: true }).evaluate((e) => e === document.activeElement), 'the keyboard is not in the form');
    await axe(page, 'discover, editing a character');
    await shot(page, 'desktop-19-edit-character');
    const retold = 'Gardienne de phare à Ouessant, les nuits de tempête';
    await tagline.fill(retold);
    await lea.getByRole('button', { name: 'Enregistrer', exact: true }).click();
    await page.getByText('Modifications de Léa enregistrées.').waitFor();
    await lea.locator('.tagline', { hasText: retold }).waitFor();
    check(await editButton.evaluate((e) => e === document.activeElement), 'the keyboard did not go back to the card');
    await page.reload();
    await lea.locator('.tagline', { hasText: retold }).waitFor();

    await editButton.click();
    const picker = lea.getByLabel('Choisir une image');
    await picker.setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('pas une image') });
    await lea.getByText('Ce fichier n’est pas une image PNG, JPEG ou WebP.').waitFor();
    check((await lea.getByRole('button', { name: 'Utiliser cette image' }).count()) === 0, 'a text file can be sent as an avatar');
    await picker.setInputFiles({ name: 'phare.png', mimeType: 'image/png', buffer: png(48) });
    await drawn(page, '.avatar-preview');
    check((await lea.getByText('Ce fichier n’est pas une image').count()) === 0, 'the refusal stays for a good file');
    check(await lea.getByRole('img', { name: 'Aperçu du nouvel avatar' }).isVisible(), 'no preview');
    await axe(page, 'discover, an avatar previewed');
    await shot(page, 'desktop-20-avatar-preview');
    await lea.getByRole('button', { name: 'Utiliser cette image' }).click();
    await page.getByText('Avatar enregistré.').waitFor();
    const face = `.cards > li[data-character="${id}"] .avatar img`;
    await drawn(page, face);
    check((await page.locator('.avatar-preview').count()) === 0, 'the preview stays after the upload');
    await lea.getByRole('button', { name: 'Annuler', exact: true }).click();
    await drawn(page, face);
    const src = await page.locator(face).getAttribute('src');
    check(src?.startsWith('blob:'), `the avatar's src: ${src}`);
    await axe(page, 'discover, an avatar');
    await lea.screenshot({ path: `${OUT}desktop-21-avatar.png` });
    // Shown wherever Léa is, after a reload too (fetched with the token, not the media cookie).
    await page.goto(`${BASE}/chats`);
    await drawn(page, `.chat-list [data-character="${id}"] .avatar img`);
    await page.goto(`${BASE}/chat/${id}`);
    await drawn(page, '.conv-head .avatar img');

    await page.goto(`${BASE}/discover`);
    await editButton.click();
    await lea.getByRole('button', { name: 'Retirer l’avatar' }).click();
    await page.getByText('Avatar retiré.').waitFor();
    await page.waitForFunction((sel) => !document.querySelector(sel), face);
    await lea.getByRole('button', { name: 'Annuler', exact: true }).click();
    await page.reload();
    await lea.locator('.avatar').waitFor();
    check((await lea.locator('.avatar img').count()) === 0, 'the avatar came back after a reload');
    check((await lea.locator('.avatar').textContent()) === 'L', `the initials: ${await lea.locator('.avatar').textContent()}`);
  });

  const newPassword = 'un nouveau mot de passe';
  await step('change the password: a wrong one is explained, the new one keeps this page signed in', async () => {
    await page.goto(`${BASE}/profile`);
    await page.getByRole('heading', { name: 'Compte', exact: true }).waitFor();
    await page.getByLabel('Mot de passe actuel').fill('pas le bon');
    await page.getByLabel('Nouveau mot de passe').fill(newPassword);
    await page.getByRole('button', { name: 'Changer de mot de passe' }).click();
    await page.getByText('E-mail ou mot de passe incorrect.').waitFor();
    await page.getByLabel('Mot de passe actuel').fill(password);
    await page.getByRole('button', { name: 'Changer de mot de passe' }).click();
    await page.getByText('Mot de passe changé.', { exact: false }).waitFor();
    check((await page.getByLabel('Mot de passe actuel').inputValue()) === '', 'the form keeps the old password');
    // The new session lives in the page's cookie: a reload (a refresh by cookie) keeps it.
    await page.reload();
    await page.getByRole('heading', { name: 'Compte', exact: true }).waitFor();
    check(page.url().endsWith('/profile'), page.url());
    await axe(page, 'profile account');
    await page.locator('.account').screenshot({ path: `${OUT}desktop-12-account.png` });
  });

  await step('download my data: a zip archive of the account', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Télécharger mes données' }).click(),
    ]);
    const name = download.suggestedFilename();
    check(/^dream-export-\d{4}-\d{2}-\d{2}\.zip$/.test(name), `archive name: ${name}`);
    const bytes = readFileSync(await download.path());
    check(bytes.length > 1000 && bytes.subarray(0, 2).toString() === 'PK', `archive: ${bytes.length} bytes, starts ${bytes.subarray(0, 4).toString('hex')}`);
    log(`     export: ${name}, ${bytes.length} bytes`);
  });

  await step('sign out ends the session', async () => {
    await page.getByRole('button', { name: 'Se déconnecter', exact: true }).click();
    await page.waitForURL('**/login');
    await page.reload();
    await page.waitForURL('**/login');
    await page.getByRole('heading', { name: 'Se connecter' }).waitFor();
    const cookies = await desktop.cookies();
    check(!cookies.some((c) => c.name === 'dream_refresh' && c.value), `cookies left: ${JSON.stringify(cookies)}`);
  });

  await step('sign out everywhere, from another device, ends this page’s session too', async () => {
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Mot de passe').fill(newPassword);
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.waitForURL('**/chats');
    const other = await browser.newContext({ locale: 'fr-FR' });
    const p = await other.newPage();
    watch(p, 'other');
    await p.goto(`${BASE}/login`);
    await p.getByLabel('E-mail').fill(email);
    await p.getByLabel('Mot de passe').fill(newPassword);
    await p.getByRole('button', { name: 'Se connecter' }).click();
    await p.waitForURL('**/chats');
    await p.goto(`${BASE}/profile`);
    await p.getByRole('button', { name: 'Se déconnecter partout' }).click();
    await p.waitForURL('**/login');
    await p.getByText('Toutes vos sessions sont fermées.').waitFor();
    await other.close();
    await page.reload();
    await page.waitForURL('**/login');
  });

  await step('sign in with the new password, delete the account; it cannot sign in again', async () => {
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Mot de passe').fill(newPassword);
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.waitForURL('**/chats');
    // Within the page (no reload): the catalogue with Léa is loaded, as it would be for someone
    // who browsed before leaving.
    await page.getByRole('link', { name: /Découvrir/ }).first().click();
    await page.locator('.cards > li', { hasText: 'Gardienne de phare' }).waitFor();
    await page.getByRole('link', { name: /Profil/ }).first().click();
    await page.getByRole('heading', { name: 'Compte', exact: true }).waitFor();
    await page.getByLabel('Mot de passe', { exact: true }).fill(newPassword);
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Supprimer mon compte' }).click();
    await page.waitForURL('**/login');
    await page.getByText('Votre compte a été supprimé.').waitFor();
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Mot de passe').fill(newPassword);
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.getByText('E-mail ou mot de passe incorrect.').waitFor();
    check(page.url().endsWith('/login'), page.url());
  });

  await step('the next person to sign up in this tab sees none of the last one’s characters', async () => {
    await page.getByRole('link', { name: /En créer un/ }).click();
    await page.waitForURL('**/signup');
    await page.getByLabel('Votre prénom').fill('Sacha');
    await page.getByLabel('E-mail').fill(`next-${email}`);
    await page.getByLabel('Mot de passe').fill(password);
    await page.getByRole('button', { name: 'Créer un compte' }).click();
    await page.waitForURL('**/discover');
    await page.locator('[data-character="sophia"]').waitFor();
    check((await page.locator('.cards > li', { hasText: 'Gardienne de phare' }).count()) === 0, 'the last person’s own character is shown');
  });

  await step('no CSP violation, no page error', async () => {
    check(problems.length === 0, problems.join('\n'));
  });
  await desktop.close();
} catch {
  // reported by step()
} finally {
  await browser.close();
}
const passed = steps.filter((s) => s.ok).length;
console.log(`web story: ${steps.length} steps in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${OUT}`);
if (summary) console.log(`web story: first render ${JSON.stringify(summary)}`);
console.log(`${passed} passed, ${steps.length - passed + (failures && passed === steps.length ? 1 : 0)} failed`);
process.exit(failures ? 1 : 0);
