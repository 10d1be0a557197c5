// Every state reads right for each role (issue 23). A newcomer's link to an open game offers
// "Join the game"; to a full one it just shows the game (no question, no seat promised); to a
// finished one it asks with a neutral "Continue". Spectators get neither the invite nor the
// turn cue. The typed-name rule is one rule: a name typed at the top and not saved is applied
// by a move exactly as by a chat line. A rename refused by the rate limit puts the field back
// to the name everyone sees and says what was refused. The status per role while playing and
// after a resignation: the loser never reads their own name in the third person.

import {
  spec, player, env, step, check, connected, click, seeMark, waitStatus, noErrors, onOrigin,
  rename, statusText, view, WAIT_MS,
} from './lib.mjs';

const dialogOf = (p) => p.page.getByRole('dialog', { name: 'What should other players call you?' });
const isOpen = (p) => p.page.locator('#name-dialog').evaluate((d) => d.open);
const seatName = (p, m) => p.page.locator(`#players .player[data-mark="${m}"] .player-name`).textContent();

async function statusIs(players, re) {
  for (const [p, r] of players) await waitStatus(p, r ?? re);
}

await spec('roles', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob', { named: false });
  const cy = await player(browser, 'Cy', { named: false });
  const dan = await player(browser, 'Dan', { named: false });

  step('Ann creates; Bob, a newcomer, is offered "Join the game" for the open seat');
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /^Waiting for an opponent/);
  const link = ann.page.url();
  await bob.page.goto(onOrigin(link, env.pinned[1]));
  await dialogOf(bob).waitFor();
  await bob.page.getByLabel('Name shown to other players').fill('Bob');
  await dialogOf(bob).getByRole('button', { name: 'Join the game' }).click();
  await waitStatus(bob, /^Ann's turn \(X\)\.$/);
  check(await bob.page.locator('#watching').isHidden(), 'Bob took the seat');

  step('Cy, a newcomer, opens the full game\'s link: shown the game, never offered to join');
  await cy.page.goto(onOrigin(link, env.pinned[2]));
  await cy.page.locator('#watching', { hasText: 'You are watching' }).waitFor();
  check(!(await isOpen(cy)), 'no name question for a game he can only watch');
  check(!cy.sent.some((m) => m.type === 'rename'), 'Cy was not renamed');
  const cyJoin = cy.sent.find((m) => m.type === 'join');
  check(cyJoin, 'Cy joined the game (as a spectator)');
  check(await cy.page.getByRole('button', { name: 'Join the game' }).count() === 0,
    'no "Join the game" anywhere on Cy\'s page');

  step('Players have the invite and the turn cue; the spectator has neither');
  for (const p of [ann, bob]) {
    check(await p.page.locator('#share').isVisible(), `${p.label} sees the invite`);
    check(await p.page.getByLabel(/Sound and notification when it is my turn/).isVisible(),
      `${p.label} sees the turn cue`);
  }
  check(await cy.page.locator('#share').isHidden(), 'Cy has no invite box');
  check(await cy.page.locator('#game-link').isHidden(), 'Cy has no game link field');
  check(await cy.page.locator('#cue').isHidden(), 'Cy has no turn cue checkbox');
  await view(cy, 'spectator');

  step('Playing: each role reads its own status');
  await statusIs([[ann, /^Your turn \(X\)\.$/], [bob, /^Ann's turn \(X\)\.$/], [cy, /^Ann to move \(X\)\.$/]]);

  step('The typed-name rule: a name typed and not saved is applied by a move...');
  await ann.page.getByLabel('Your name').fill('Annie');
  await click(ann, 4);
  await seeMark(bob, 4, 'X');
  const renameAt = ann.sent.findIndex((m) => m.type === 'rename' && m.name === 'Annie');
  const moveAt = ann.sent.findIndex((m) => m.type === 'move');
  check(renameAt >= 0 && renameAt < moveAt, `the typed name went before the move (${renameAt} < ${moveAt})`);
  for (const p of [bob, cy]) {
    await p.page.locator('#game-title', { hasText: /^Annie vs Bob$/ }).waitFor();
    check(await seatName(p, 'X') === 'Annie', `${p.label} sees Annie in the players list`);
  }
  await ann.page.locator('#server-info', { hasText: 'Signed in as Annie ' }).waitFor();

  step('...and by a chat line, the same way');
  await ann.page.getByLabel('Your name').fill('Anna');
  const say = ann.page.locator('#game-chat input[name="text"]');
  await say.fill('good luck');
  await say.press('Enter');
  const line = bob.page.locator('#game-chat .chat-line', { hasText: 'good luck' });
  await line.waitFor();
  check(await line.locator('.chat-from').textContent() === 'Anna', 'the chat line is from Anna');
  const chatRename = ann.sent.findIndex((m) => m.type === 'rename' && m.name === 'Anna');
  const chatAt = ann.sent.findIndex((m) => m.type === 'chat');
  check(chatRename >= 0 && chatRename < chatAt, 'the typed name went before the chat line');
  await bob.page.locator('#game-title', { hasText: /^Anna vs Bob$/ }).waitFor();

  step('A rename refused by the rate limit: the field goes back, the notice says what was refused');
  // Three renames in a row pass, then one every ten seconds: the next ones are refused.
  await rename(ann, 'Ann');
  let refused = null;
  for (const next of ['Ann4', 'Ann5']) {
    const input = ann.page.getByLabel('Your name');
    await input.fill(next);
    await input.press('Enter');
    const h = await ann.page.waitForFunction((n) => {
      const notice = document.querySelector('#notice');
      if (!notice.hidden) return notice.textContent;
      return document.querySelector('#server-info').textContent.includes(`Signed in as ${n} `) ? 'ok' : null;
    }, next, { timeout: WAIT_MS });
    const out = await h.jsonValue();
    if (out !== 'ok') {
      refused = { next, notice: out };
      break;
    }
  }
  check(refused, 'a rename was refused');
  check(/^Rename refused: slow down, try again in \d+ s\.$/.test(refused.notice),
    `the notice says what was refused: "${refused.notice}"`);
  const shown = (await ann.page.locator('#server-info').textContent()).match(/Signed in as (.+) · /)[1];
  check(shown !== refused.next, `the refused name ${refused.next} is not in effect (${shown})`);
  check(await ann.page.getByLabel('Your name').inputValue() === shown,
    `the field is back to the name everyone sees (${shown})`);
  await bob.page.locator('#game-title', { hasText: new RegExp(`^${shown} vs Bob$`) }).waitFor();
  await view(ann, 'rename-refused');

  step('A resignation: the loser reads "You lost", never her own name');
  await click(bob, 0);
  await seeMark(ann, 0, 'O');
  await ann.page.getByRole('button', { name: 'Resign' }).click();
  await ann.page.getByRole('button', { name: 'Really resign?' }).click();
  await statusIs([
    [ann, /^You lost: you resigned\.$/],
    [bob, new RegExp(`^You won! ${shown} resigned\\.$`)],
    [cy, new RegExp(`^Bob \\(O\\) won\\. ${shown} resigned\\.$`)],
  ]);
  check(!(await statusText(ann)).includes(shown), 'Ann\'s status does not name her');

  step('Dan, a newcomer, opens the finished game\'s link: a neutral question, no seat promised');
  await dan.page.goto(onOrigin(link, env.pinned[0]));
  await dialogOf(dan).waitFor();
  check(await dialogOf(dan).getByRole('button', { name: 'Join the game' }).count() === 0,
    'a finished game does not offer "Join the game"');
  await dialogOf(dan).getByRole('button', { name: 'Continue' }).click();
  await dan.page.locator('#watching', { hasText: 'You are watching' }).waitFor();
  await waitStatus(dan, /^Bob \(O\) won\./);
  noErrors(ann, bob, cy, dan);
});
