// An absent opponent is clear: a disconnected player and one who left are told apart, the
// forfeit countdown ticks, Rematch is disabled while the opponent is gone, and a player whose
// own connection is down sees the presence greyed and the board dimmed. FORFEIT_GRACE_MS is
// 8 s here (tests/it/browser.rs).

import {
  spec, player, env, step, check, connected, shot, click, seeMark, waitStatus, noErrors, onOrigin, WAIT_MS,
} from './lib.mjs';

const AWAY = /^Bob is away \(disconnected\) — you win by forfeit in (\d+) s$/;
const LEFT = /^Bob left the game — you win by forfeit in (\d+) s$/;

// Waits until the away line matches `re`; returns its seconds.
async function awayLine(p, re) {
  const h = await p.page.waitForFunction((src) => {
    const t = document.querySelector('#away-status');
    const m = t && !t.hidden ? new RegExp(src).exec(t.textContent) : null;
    return m ? Number(m[1]) : null;
  }, re.source, { timeout: WAIT_MS });
  return h.jsonValue();
}

const pill = (p, m) => p.page.locator(`#players .player[data-mark="${m}"] .presence`).textContent();

await spec('absent', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob');

  step('Ann and Bob play on two instances');
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  const link = ann.page.url();
  await bob.page.goto(onOrigin(link, env.pinned[1]));
  await click(ann, 4);
  await seeMark(bob, 4, 'X');

  const annBoard = await ann.page.locator('#board').boundingBox();
  step('Bob loses the network: his page dims the board and greys the presence');
  const online = await bob.page.locator('#players .player[data-mark="X"] .presence')
    .evaluate((e) => getComputedStyle(e).color);
  await bob.context.setOffline(true);
  await bob.page.locator('.game-layout[data-offline="true"]').waitFor();
  await bob.page.waitForFunction(() => Number(getComputedStyle(document.querySelector('#board')).opacity) < 0.6);
  const grey = await bob.page.locator('#players .player[data-mark="X"] .presence')
    .evaluate((e) => getComputedStyle(e).color);
  check(grey !== online, `Ann's presence is greyed on Bob's page (${online} -> ${grey})`);
  await shot(bob, 'absent-bob-offline');

  step('Ann sees Bob away (disconnected) with a ticking forfeit countdown');
  const first = await awayLine(ann, AWAY);
  check(first > 0 && first <= 8, `the countdown starts from the grace period (${first} s)`);
  const later = await ann.page.waitForFunction(([src, n]) => {
    const m = new RegExp(src).exec(document.querySelector('#away-status').textContent);
    return m && Number(m[1]) < n ? Number(m[1]) : null;
  }, [AWAY.source, first], { timeout: WAIT_MS });
  check(await later.jsonValue() < first, 'the countdown ticks down');
  check(await pill(ann, 'O') === 'disconnected', 'Bob\'s pill says disconnected');
  const moved = await ann.page.locator('#board').boundingBox();
  check(moved.y === annBoard.y && moved.x === annBoard.x,
    `the countdown does not move Ann's board (${annBoard.x},${annBoard.y} -> ${moved.x},${moved.y})`);
  await shot(ann, 'absent-ann-countdown');

  step('Bob comes back: the countdown goes, his page is bright again');
  await bob.context.setOffline(false);
  await ann.page.locator('#away-status').waitFor({ state: 'hidden' });
  await ann.page.locator('#players .player[data-mark="O"][data-online="true"]').waitFor();
  check(await pill(ann, 'O') === 'online', 'Bob is online again');
  await bob.page.locator('.game-layout[data-offline="false"]').waitFor();

  step('Bob leaves the game: "left the game", then he forfeits');
  await bob.page.getByRole('button', { name: 'Leave' }).click();
  await awayLine(ann, LEFT);
  check(await pill(ann, 'O') === 'left', 'Bob\'s pill says left');
  await waitStatus(ann, /^You won! Bob was away too long\.$/);
  await ann.page.locator('#away-status').waitFor({ state: 'hidden' });

  step('Rematch is shown but disabled while Bob is gone');
  const rematch = ann.page.locator('#rematch');
  await rematch.waitFor();
  check(await rematch.isDisabled(), 'Rematch is disabled while Bob is gone');
  await ann.page.locator('#rematch-status', { hasText: 'Bob left the game: a rematch needs them back.' }).waitFor();
  await shot(ann, 'absent-ann-no-rematch');

  step('Bob returns by the link: Rematch works again');
  await bob.page.goto(onOrigin(link, env.pinned[1]));
  // The loser reads about himself in the second person (issue 23), not "Bob was away too long".
  await waitStatus(bob, /^You lost: you were away too long\.$/);
  await ann.page.locator('#rematch:not([disabled])').waitFor();
  await rematch.click();
  await bob.page.getByRole('button', { name: 'Accept rematch' }).click();
  await waitStatus(bob, /^Your turn \(O\)/);
  noErrors(ann, bob);
});
