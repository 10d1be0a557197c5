// Shared by the specs: the environment the Rust harness passes, Chromium launch, one player
// per browser context, and bounded waits. Every wait has a timeout; nothing sleeps.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

// Each wait inside a spec; the spec as a whole is bounded by TTT_TIMEOUT_MS.
export const WAIT_MS = 15000;

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set: run the specs through cargo test --test it browser`);
    process.exit(2);
  }
  return v;
}

export const env = {
  url: need('TTT_URL'),
  pinned: need('TTT_PINNED').split(','),
  // "ttt-1=1234,ttt-2=..." -> { 'ttt-1': 1234, ... }
  pids: Object.fromEntries(need('TTT_INSTANCES').split(',').map((e) => {
    const [name, pid] = e.split('=');
    return [name, Number(pid)];
  })),
  artifacts: need('TTT_ARTIFACTS'),
  // <target>/browser-screenshots/<spec>/: a screenshot per view and size (see `view`).
  screenshots: need('TTT_SCREENSHOTS'),
  chromium: need('TTT_CHROMIUM'),
  timeoutMs: Number(process.env.TTT_TIMEOUT_MS ?? 110000),
};

// Launch flags known to work with Debian's Chromium (shared/FACTS.md).
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function step(text) {
  console.log(`[${(performance.now() / 1000).toFixed(1)}s] ${text}`);
}

export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

// Runs a spec: launches Chromium, calls `body(browser)`, always closes the browser, and exits
// non-zero on failure (or when the whole spec overruns its time).
export async function spec(name, body) {
  const watchdog = setTimeout(() => {
    console.error(`${name}: no result after ${env.timeoutMs} ms`);
    process.exit(3);
  }, env.timeoutMs);
  // Screenshots of an earlier run must not pass for this one's.
  for (const f of fs.readdirSync(env.artifacts)) {
    if (f.startsWith(`${name}-`)) fs.rmSync(path.join(env.artifacts, f));
  }
  const browser = await chromium.launch({ executablePath: env.chromium, headless: true, args: ARGS });
  let failed = null;
  try {
    await body(browser);
  } catch (e) {
    failed = e;
  }
  // Screenshots of every open page help most when something failed.
  if (failed) {
    for (const [i, ctx] of browser.contexts().entries()) {
      for (const [j, page] of ctx.pages().entries()) {
        await page.screenshot({ path: path.join(env.artifacts, `${name}-failure-${i}-${j}.png`) })
          .catch(() => {});
      }
    }
  }
  await browser.close();
  clearTimeout(watchdog);
  if (failed) {
    console.error(`${name} FAILED: ${failed.stack ?? failed}`);
    process.exit(1);
  }
  step(`${name} passed`);
}

// The two sizes the page is checked at: a desktop and a phone.
export const DESKTOP = { width: 1100, height: 800, size: 'desktop' };
export const PHONE = { width: 390, height: 844, size: '390' };
export const PHONE_DARK = { ...PHONE, size: '390-dark', scheme: 'dark' };

// One player: its own browser context (own localStorage, so its own session), with every
// page error, failed console line and dialog recorded. Unless `named` is false the player has
// already chosen its label as its name (so the page does not ask); `named: false` is a
// newcomer. `scheme: 'dark'` shows the page in its dark colours. `address`: the client address
// the server believes, sent as X-Forwarded-For (nginx appends its own peer, which the server
// trusts): players from different addresses on one machine.
export async function player(browser, label, {
  width = 1100, height = 800, named = true, scheme = 'light', address = null,
} = {}) {
  const context = await browser.newContext({
    viewport: { width, height },
    colorScheme: scheme,
    permissions: ['clipboard-read', 'clipboard-write', 'notifications'],
    extraHTTPHeaders: address ? { 'X-Forwarded-For': address } : undefined,
  });
  context.setDefaultTimeout(WAIT_MS);
  if (named) {
    await context.addInitScript((n) => {
      if (!localStorage.getItem('ttt.name')) localStorage.setItem('ttt.name', n);
    }, label);
  }
  const page = await context.newPage();
  const p = {
    label, context, page, errors: [], dialogs: [], sent: [], waiters: [],
    size: (width <= 480 ? '390' : 'desktop') + (scheme === 'dark' ? '-dark' : ''),
  };
  // Resolves with the first frame sent (so far or from now on) that matches `pred`.
  p.waitSent = (pred, what) => new Promise((resolve, reject) => {
    const hit = p.sent.find(pred);
    if (hit) return resolve(hit);
    const timer = setTimeout(() => reject(new Error(`${label} never sent ${what}`)), WAIT_MS);
    p.waiters.push({ pred, done: (m) => { clearTimeout(timer); resolve(m); } });
  });
  page.on('pageerror', (e) => p.errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|WebSocket connection/.test(m.text())) {
      p.errors.push(`console: ${m.text()}`);
    }
  });
  page.on('dialog', (d) => {
    p.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  // Every frame the page sends, to check what it retries and with which ids.
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => {
      let msg;
      try {
        msg = JSON.parse(f.payload);
      } catch {
        return;
      }
      p.sent.push(msg);
      p.waiters = p.waiters.filter((w) => !(w.pred(msg) && (w.done(msg), true)));
    });
  });
  return p;
}

// A screenshot kept with the spec's others: <TTT_SCREENSHOTS>/<name>-<size>.png.
export async function shot(p, name) {
  const file = path.join(env.screenshots, `${name}-${p.size}.png`);
  await p.page.screenshot({ path: file, fullPage: true });
  step(`screenshot ${file}`);
}

const AXE_SOURCE = fs.readFileSync(
  new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8',
);
const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

// Runs axe-core (WCAG 2.1 A and AA rules) on the page as it is; throws with every violation,
// readably, if there is any. The page's Content-Security-Policy refuses a <script> added to it
// (`addScriptTag`), but not code evaluated through the DevTools protocol: axe-core goes in that
// way, and the page is audited under its real policy (no `bypassCSP`).
export async function audit(p, what) {
  if (!(await p.page.evaluate(() => typeof window.axe === 'object'))) {
    await p.page.evaluate(AXE_SOURCE);
  }
  const { passed, violations } = await p.page.evaluate(async (tags) => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: tags },
      resultTypes: ['violations'],
    });
    return { passed: r.passes.length, violations: r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`),
    })) };
  }, WCAG_TAGS);
  // An engine that checked nothing would find nothing: some rules must have applied.
  check(passed > 0, `axe-core applied no rule to ${what}`);
  if (violations.length > 0) {
    const text = violations.map((v) => `  ${v.id} (${v.impact}): ${v.help}\n`
      + v.nodes.map((n) => `    - ${n}`).join('\n')).join('\n');
    throw new Error(`axe-core: ${violations.length} WCAG 2.1 A/AA violation(s) in ${what}:\n${text}`);
  }
}

// A view as a player sees it: a full-page screenshot kept as
// <TTT_SCREENSHOTS>/<view>-<size>.png (printed), then the accessibility audit of it.
export async function view(p, name) {
  await shot(p, name);
  await audit(p, `${name} (${p.size}, ${p.label})`);
}

// Where an element is on the page (document coordinates, so that a scroll does not count as a
// move; rounded to 0.1 px), or null when it is not rendered.
export async function box(p, selector) {
  return p.page.locator(selector).first().evaluate((e) => {
    if (!e.getClientRects().length) return null;
    const b = e.getBoundingClientRect();
    const r = (v) => Math.round(v * 10) / 10;
    return { x: r(b.x + scrollX), y: r(b.y + scrollY), w: r(b.width), h: r(b.height) };
  });
}

// Fails unless `selector` is where it was (`before`, from `box`) within `tol` px.
export async function still(p, selector, before, what, tol = 1) {
  const now = await box(p, selector);
  check(now, `${selector} is on screen for ${p.label} (${what})`);
  const d = Math.max(Math.abs(now.x - before.x), Math.abs(now.y - before.y),
    Math.abs(now.w - before.w), Math.abs(now.h - before.h));
  check(d <= tol, `${p.label}'s ${selector} did not move ${what} (${p.size}): `
    + `${JSON.stringify(before)} -> ${JSON.stringify(now)}`);
}

export async function connected(p) {
  await p.page.locator('#conn[data-state="connected"]').waitFor();
}

export async function instanceOf(p) {
  await connected(p);
  return p.page.locator('#server-info').getAttribute('data-instance');
}

// Renames through the header form (Enter submits): the page sends `rename`.
export async function rename(p, name) {
  const input = p.page.getByLabel('Your name');
  await input.fill(name);
  await input.press('Enter');
  await p.page.waitForFunction(
    (n) => document.querySelector('#server-info')?.textContent.includes(`Signed in as ${n} `),
    name,
    { timeout: WAIT_MS },
  );
  await connected(p);
}

export const cell = (p, i) => p.page.locator(`#board .cell[data-cell="${i}"]`);

// Waits until the cell shows `mark` on this player's board.
export async function seeMark(p, i, mark) {
  await p.page.locator(`#board .cell[data-cell="${i}"][data-mark="${mark}"]`).waitFor();
}

// Plays by mouse once the cell is playable.
export async function click(p, i) {
  await p.page.locator(`#board .cell[data-cell="${i}"][aria-disabled="false"]`).waitFor();
  await cell(p, i).click();
}

export async function statusText(p) {
  return (await p.page.locator('#game-status').textContent()).trim();
}

export async function waitStatus(p, re) {
  await p.page.waitForFunction(
    (src) => new RegExp(src).test(document.querySelector('#game-status')?.textContent ?? ''),
    re.source,
    { timeout: WAIT_MS },
  );
}

export function noErrors(...players) {
  for (const p of players) {
    check(p.errors.length === 0, `${p.label} had page errors: ${p.errors.join(' | ')}`);
    check(p.dialogs.length === 0, `${p.label} saw dialogs: ${p.dialogs.join(' | ')}`);
  }
}

// The same path and query on another origin (another nginx port).
export function onOrigin(link, base) {
  const u = new URL(link);
  return new URL(u.pathname + u.search, base).toString();
}

// The WCAG contrast ratio of an element's text against what is behind it, as painted: its
// colour and every background up the tree blended by their alpha and the elements' opacity,
// over white.
export async function contrast(p, selector) {
  return p.page.locator(selector).first().evaluate((node) => {
    const rgba = (s) => {
      const m = s.match(/rgba?\(([^)]+)\)/);
      if (!m) return [0, 0, 0, 0];
      const v = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
    };
    const over = (top, under) => {
      const a = top[3] + under[3] * (1 - top[3]);
      if (a === 0) return [0, 0, 0, 0];
      return [0, 1, 2].map((i) => (top[i] * top[3] + under[i] * under[3] * (1 - top[3])) / a).concat(a);
    };
    // Backgrounds from the root down to the element, each faded by the opacity above it.
    const chain = [];
    for (let e = node; e; e = e.parentElement) chain.unshift(e);
    let bg = [255, 255, 255, 1];
    let opacity = 1;
    for (const e of chain) {
      const cs = getComputedStyle(e);
      opacity *= Number(cs.opacity);
      const c = rgba(cs.backgroundColor);
      bg = over([c[0], c[1], c[2], c[3] * opacity], bg);
    }
    const fgc = rgba(getComputedStyle(node).color);
    const fg = over([fgc[0], fgc[1], fgc[2], fgc[3] * opacity], bg);
    const lum = ([r, g, b]) => {
      const f = (v) => {
        const c = v / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    return (hi + 0.05) / (lo + 0.05);
  });
}

// Whether two boxes (from `box`) overlap.
export function overlap(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

// How many lines of text an element shows (its height over its line height).
export async function lines(p, selector) {
  return p.page.locator(selector).first().evaluate((e) => {
    const cs = getComputedStyle(e);
    const lh = parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.2;
    const h = e.getBoundingClientRect().height - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom);
    return Math.round(h / lh);
  });
}
