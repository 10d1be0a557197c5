// The page holds still (issue 23). Ann on a desktop and Bob on a phone (390 x 844), both with
// 24-character names by the end: each one's board stays within 1 px through the opponent
// joining, long names, a notice, an offline/online cycle, the away countdown and a forfeit.
// The phone's header keeps its height offline; notices cover neither the title nor the status;
// long names leave the marks and the scores whole; the moves list does not push the chat
// input down; no empty gap above the board; the replay label stays on one line and nothing
// around it moves; disabled buttons are readable (contrast of at least 4.5:1).
// FORFEIT_GRACE_MS is 8 s here (tests/it/browser.rs).

import {
  spec, player, env, step, check, connected, click, seeMark, waitStatus, noErrors, onOrigin,
  box, still, contrast, overlap, lines, view, DESKTOP, PHONE, WAIT_MS,
} from './lib.mjs';

// 24 characters each, the most a name may have.
const LONG_ANN = 'Annabella Wolfeschlegels';
const LONG_ANN2 = 'Annabella Wolfeschlegelz';
const LONG_BOB = 'Bartholomew Featherstone';
for (const n of [LONG_ANN, LONG_ANN2, LONG_BOB]) check(n.length === 24, `${n} has 24 characters`);

// What must not move, per player: the board, and (desktop) the chat input.
async function anchors(p) {
  const m = { board: await box(p, '#board') };
  if (p.size === 'desktop') m.chat = await box(p, '#game-chat input[name="text"]');
  return m;
}

async function unmoved(p, before, what) {
  for (const [k, sel] of [['board', '#board'], ['chat', '#game-chat input[name="text"]']]) {
    if (before[k]) await still(p, sel, before[k], what);
  }
}

// Renames through the header form; resolves once the rename is sent.
async function typeName(p, name) {
  const sent = p.sent.length;
  const input = p.page.getByLabel('Your name');
  await input.fill(name);
  await input.press('Enter');
  await p.waitSent((m) => m.type === 'rename' && m.name === name && p.sent.indexOf(m) >= sent, `rename to ${name}`);
}

// The status is right against the board: no empty band above it.
async function noGapAboveBoard(p) {
  const status = await p.page.locator('#game-status').evaluate((e) => {
    const r = e.getBoundingClientRect();
    return { bottom: r.bottom, lines: Math.round(r.height / parseFloat(getComputedStyle(e).lineHeight)) };
  });
  const board = await box(p, '#board');
  const gap = board.y - status.bottom;
  check(gap >= 0 && gap <= 10, `${p.label} (${p.size}): the status sits right above the board (gap ${gap.toFixed(1)} px)`);
  check(status.lines >= 1 && status.lines <= 2, `${p.label}: the status takes 1 or 2 lines (${status.lines})`);
}

// On the phone: the name gives way, the mark, tags and score stay whole and on screen.
async function playersFit(p, mark) {
  const row = `#players .player[data-mark="${mark}"]`;
  const r = await p.page.locator(row).evaluate((li) => {
    const q = (s) => li.querySelector(s);
    const rect = (e) => e.getBoundingClientRect();
    const name = q('.player-name');
    return {
      vw: document.documentElement.clientWidth,
      markW: rect(q('.mark')).width,
      markNeed: parseFloat(getComputedStyle(q('.mark')).fontSize) * 1.2,
      score: { right: rect(q('.score')).right, w: rect(q('.score')).width, clipped: q('.score').scrollWidth > q('.score').clientWidth },
      tag: q('.presence') ? { right: rect(q('.presence')).right, clipped: q('.presence').scrollWidth > q('.presence').clientWidth + 1, text: q('.presence').textContent } : null,
      nameCut: name.scrollWidth > name.clientWidth,
      nameRight: rect(name).right,
      liHeight: rect(li).height,
    };
  });
  check(r.markW >= r.markNeed - 0.5, `${p.label}: the ${mark} mark is not squashed (${r.markW} px of ${r.markNeed})`);
  check(r.score.w > 0 && r.score.right <= r.vw && !r.score.clipped,
    `${p.label}: the score of ${mark} is whole and on screen (right ${r.score.right} of ${r.vw})`);
  if (r.tag) {
    check(!r.tag.clipped && r.tag.right <= r.score.right, `${p.label}: the "${r.tag.text}" tag is whole`);
  }
  check(r.nameRight <= r.vw, `${p.label}: the name ends on screen`);
  check(r.liHeight < 40, `${p.label}: the ${mark} row is one line (${r.liHeight} px)`);
  return r;
}

async function checkNotice(p, expected) {
  const notice = p.page.locator('#notice');
  await notice.waitFor();
  const text = (await notice.textContent()).trim();
  check(expected.test(text), `${p.label}'s notice says what was refused: "${text}"`);
  const n = await box(p, '#notice');
  for (const sel of ['#game-title', '#game-status', '#board', '.play .actions']) {
    const b = await box(p, sel);
    check(!overlap(n, b), `${p.label} (${p.size}): the notice does not cover ${sel} `
      + `(${JSON.stringify(n)} vs ${JSON.stringify(b)})`);
  }
}

async function awayShows(p, re) {
  await p.page.waitForFunction((src) => {
    const t = document.querySelector('#away-status');
    return t && !t.hidden && new RegExp(src).test(t.textContent);
  }, re.source, { timeout: WAIT_MS });
  // The whole line is seen, countdown included: nothing clipped by the two-line box.
  const fit = await p.page.locator('#away-status').evaluate((e) => e.scrollHeight <= e.clientHeight + 1);
  check(fit, `${p.label} (${p.size}): the away line fits its box`);
}

async function readable(p, selector, what) {
  check(await p.page.locator(selector).isDisabled(), `${what} is disabled`);
  const ratio = await contrast(p, selector);
  check(ratio >= 4.5, `${p.label} (${p.size}): disabled ${what} reads at ${ratio.toFixed(2)}:1 (at least 4.5:1)`);
  step(`disabled ${what} (${p.size}): ${ratio.toFixed(2)}:1`);
}

await spec('steady', async (browser) => {
  const ann = await player(browser, 'Ann', { width: DESKTOP.width, height: DESKTOP.height });
  const bob = await player(browser, 'Bob', { width: PHONE.width, height: PHONE.height });

  step('Ann creates a game on a desktop; Bob joins on a phone');
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /^Waiting for an opponent/);
  const a0 = await anchors(ann);
  await bob.page.goto(onOrigin(ann.page.url(), env.pinned[1]));
  await waitStatus(bob, /^Ann's turn \(X\)\.$/);
  await waitStatus(ann, /^Your turn \(X\)\.$/);
  await unmoved(ann, a0, 'when Bob joined');
  const b0 = await anchors(bob);
  const header0 = await box(bob, '.top');
  for (const p of [ann, bob]) await noGapAboveBoard(p);

  step('Both take 24-character names: titles, statuses and players lists, nothing moves');
  await typeName(ann, LONG_ANN);
  await typeName(bob, LONG_BOB);
  for (const p of [ann, bob]) {
    await p.page.locator('#game-title', { hasText: `${LONG_ANN} vs ${LONG_BOB}` }).waitFor();
    check(await lines(p, '#game-title') === 1, `${p.label}: the title keeps one line`);
  }
  await waitStatus(bob, new RegExp(`^${LONG_ANN}'s turn \\(X\\)\\.$`));
  await unmoved(ann, a0, 'with long names');
  await unmoved(bob, b0, 'with long names');
  await playersFit(bob, 'X');
  await playersFit(bob, 'O');

  step('Moves: the list grows, the chat input and the boards stay');
  await click(ann, 4);
  await seeMark(bob, 4, 'X');
  await waitStatus(ann, new RegExp(`^${LONG_BOB}'s turn \\(O\\)\\.$`));
  await unmoved(ann, a0, `with "${LONG_BOB}'s turn" as the status`);
  await noGapAboveBoard(ann);
  await click(bob, 0);
  await click(ann, 8);
  await click(bob, 2);
  await seeMark(ann, 2, 'O');
  check(await ann.page.locator('#moves li').count() === 4, 'four moves listed');
  await unmoved(ann, a0, 'after four moves');
  await unmoved(bob, b0, 'after four moves');
  await view(ann, 'playing-long-names');
  await view(bob, 'playing-long-names');

  step('A notice (a refused rename) covers neither the title nor the status, and moves nothing');
  // Renames, alternating two 24-character names, until one is over the budget (three in a
  // row, then one every ten seconds): at most four.
  const names = { Ann: [LONG_ANN2, LONG_ANN], Bob: [`${LONG_BOB.slice(0, 23)}2`, LONG_BOB] };
  const now = { Ann: LONG_ANN, Bob: LONG_BOB };
  for (const p of [ann, bob]) {
    let refused = false;
    for (let i = 0; i < 4 && !refused; i++) {
      const next = names[p.label][i % 2];
      await typeName(p, next);
      const h = await p.page.waitForFunction((n) => {
        if (!document.querySelector('#notice').hidden) return 'refused';
        return document.querySelector('#server-info').textContent.includes(`Signed in as ${n} `) ? 'ok' : null;
      }, next, { timeout: WAIT_MS });
      refused = (await h.jsonValue()) === 'refused';
      if (!refused) now[p.label] = next;
    }
    check(refused, `${p.label}: the fourth rename in a row is refused`);
    await checkNotice(p, /^Rename refused: slow down, try again in \d+ s\.$/);
    check(await p.page.getByLabel('Your name').inputValue() === now[p.label],
      `${p.label}'s field is back to the name everyone sees (${now[p.label]})`);
    await view(p, 'notice');
  }
  const annName = now.Ann;
  const bobName = now.Bob;
  await ann.page.locator('#game-title', { hasText: `${annName} vs ${bobName}` }).waitFor();
  await bob.page.locator('#game-title', { hasText: `${annName} vs ${bobName}` }).waitFor();
  await unmoved(ann, a0, 'with a notice');
  await unmoved(bob, b0, 'with a notice');

  step('Bob\'s phone goes offline and comes back: one header row of the same height');
  await bob.context.setOffline(true);
  await bob.page.locator('#conn[data-state="reconnecting"], #conn[data-state="offline"]').waitFor();
  await waitStatus(bob, /Waiting for the connection\.$/);
  await still(bob, '.top', header0, 'offline');
  const offlineHeader = await bob.page.evaluate(() => {
    const kids = [...document.querySelector('.top').children].filter((k) => k.offsetParent !== null);
    const r = kids.map((k) => k.getBoundingClientRect());
    return {
      oneRow: Math.max(...r.map((x) => x.top)) < Math.min(...r.map((x) => x.bottom)),
      inside: r.every((x) => x.right <= document.documentElement.clientWidth + 0.5),
      retry: !document.querySelector('#conn-retry').hidden,
    };
  });
  check(offlineHeader.oneRow && offlineHeader.inside && offlineHeader.retry,
    `offline, the phone's header is one row on screen, with Reconnect now (${JSON.stringify(offlineHeader)})`);
  await unmoved(bob, b0, 'offline');
  await view(bob, 'offline');
  const awayBob = new RegExp(`^${bobName} is away \\(disconnected\\) — you win by forfeit in \\d+ s$`);
  await awayShows(ann, awayBob);
  await unmoved(ann, a0, 'with the away countdown');
  await view(ann, 'away-countdown');
  await bob.context.setOffline(false);
  await connected(bob);
  await ann.page.locator('#away-status').waitFor({ state: 'hidden' });
  await still(bob, '.top', header0, 'back online');
  await unmoved(bob, b0, 'back online');
  await unmoved(ann, a0, 'when the countdown went');

  step('Ann goes offline: Bob\'s phone counts down, then Ann forfeits');
  await ann.context.setOffline(true);
  const awayAnn = new RegExp(`^${annName} is away \\(disconnected\\) — you win by forfeit in \\d+ s$`);
  await awayShows(bob, awayAnn);
  await unmoved(bob, b0, 'with the away countdown');
  await bob.page.locator('#players .player[data-mark="X"] .presence', { hasText: 'disconnected' }).waitFor();
  await playersFit(bob, 'X');
  await view(bob, 'away-countdown');
  await waitStatus(bob, new RegExp(`^You won! ${annName} was away too long\\.$`));
  await bob.page.locator('#away-status').waitFor({ state: 'hidden' });
  await unmoved(bob, b0, 'after the forfeit');
  await unmoved(ann, a0, 'offline');
  await ann.context.setOffline(false);
  await connected(ann);
  await waitStatus(ann, /^You lost: you were away too long\.$/);
  await unmoved(ann, a0, 'after the forfeit');
  await noGapAboveBoard(ann);
  await view(ann, 'forfeit-lost');
  await view(bob, 'forfeit-won');

  step('Replay: the label keeps one line; the replay buttons and the Rematch row stay put');
  for (const p of [ann, bob]) {
    await p.page.getByRole('button', { name: 'Start of the round' }).click();
    await p.page.locator('#replay-pos', { hasText: 'Start of 4 moves' }).waitFor();
    check(await lines(p, '#replay-pos') === 1, `${p.label} (${p.size}): "Start of 4 moves" on one line`);
    const at = { next: await box(p, '#replay-next'), rematch: await box(p, '#rematch') };
    await readable(p, '#replay-first', 'Start of the round');
    await readable(p, '#replay-prev', 'Previous move');
    await p.page.getByRole('button', { name: 'Next move' }).click();
    await p.page.locator('#replay-pos', { hasText: 'Move 1 of 4' }).waitFor();
    await still(p, '#replay-next', at.next, 'from "Start of 4 moves" to "Move 1 of 4"');
    await still(p, '#rematch', at.rematch, 'from "Start of 4 moves" to "Move 1 of 4"');
    await p.page.getByRole('button', { name: 'End of the round' }).click();
    await p.page.locator('#replay-pos', { hasText: 'Move 4 of 4' }).waitFor();
    await readable(p, '#replay-next', 'Next move');
    await still(p, '#rematch', at.rematch, 'at the end of the replay');
  }
  await view(bob, 'replay');
  await unmoved(ann, a0, 'through the replay');
  await unmoved(bob, b0, 'through the replay');

  step('Rematch asked, Send over the limit: both disabled and readable');
  await ann.page.getByRole('button', { name: 'Rematch' }).click();
  await ann.page.locator('#rematch[disabled]').waitFor();
  await readable(ann, '#rematch', 'Rematch');
  await ann.page.locator('#game-chat input[name="text"]').fill('x'.repeat(281));
  await ann.page.locator('#game-chat button[type="submit"][disabled]').waitFor();
  await readable(ann, '#game-chat button[type="submit"]', 'Send');
  await unmoved(ann, a0, 'at the end');
  noErrors(ann, bob);
});
