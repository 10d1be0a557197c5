// Profiles, rated games and the leaderboard, in the page: a profile is created (its recovery
// code shown once, copyable), rated games are offered only with one, a rated game shows its
// badge and the players' ratings on the board and in the lobby, the leaderboard lists the two
// players with the viewer's own row highlighted (and has an address: Back closes it, a reload
// opens it again), the history replays the round move by move,
// a recovery code brings the profile to another browser (an old code does not), and the
// profile is deleted there.
//
// Ann and Bob come from different addresses (X-Forwarded-For, see `player`): two profiles
// from one address play rated games that move no rating (docs/protocol.md, Rated games).

import {
  spec, player, env, step, check, connected, view, click, seeMark, waitStatus, noErrors,
} from './lib.mjs';

const CODE = /^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$/;

const text = async (p, sel) => (await p.page.locator(sel).textContent()).trim();

// Opens the profile panel from the lobby and creates a profile; returns its recovery code.
async function createProfile(p) {
  await p.page.getByRole('button', { name: /^Profile/ }).click();
  await p.page.getByRole('button', { name: 'Create my profile' }).click();
  // The code arrives with the server's answer: wait for the box that shows it.
  await p.page.locator('#code-box:not([hidden])').waitFor();
  const code = await p.page.locator('#profile-code').inputValue();
  check(CODE.test(code), `${p.label}'s recovery code reads like one (${code})`);
  return code;
}

async function toLobby(p) {
  await p.page.locator('.view:not([hidden]) .to-lobby').click();
  await p.page.locator('#lobby:not([hidden])').waitFor();
}

await spec('profiles', async (browser) => {
  const ann = await player(browser, 'Ann', { address: '198.51.100.11' });
  const bob = await player(browser, 'Bob', { width: 390, height: 844, address: '198.51.100.22' });
  const cy = await player(browser, 'Cy', { address: '198.51.100.33' });
  await ann.page.goto(env.pinned[0]);
  await bob.page.goto(env.pinned[1]);
  await connected(ann);
  await connected(bob);

  step('Without a profile, rated games are explained, not offered');
  const rated = ann.page.getByRole('radio', { name: 'Rated' });
  check(await rated.isDisabled(), 'Rated is not offered without a profile');
  check((await text(ann, '#terms-why')).includes('need a profile'), 'the page says why');

  step('Ann creates her profile: the code is shown once, with a copy button');
  const firstCode = await createProfile(ann);
  await ann.page.getByRole('button', { name: 'Copy code' }).click();
  await ann.page.getByRole('button', { name: 'Copied ✓' }).waitFor();
  const copied = await ann.page.evaluate(() => navigator.clipboard.readText());
  check(copied === firstCode, `the copy button copies the code (${copied})`);
  check((await text(ann, '#code-note')).includes('shown only this once'), 'the page says to write it down');
  await view(ann, 'profile-code');
  await ann.page.getByRole('button', { name: 'I have saved it' }).click();
  await ann.page.locator('#code-box').waitFor({ state: 'hidden' });
  check(await text(ann, '#profile-name') === 'Ann', 'the profile takes the session\'s name');
  check(await text(ann, '#profile-record') === '0 wins · 0 draws · 0 losses', 'an empty record');
  check((await text(ann, '#profile-rating')).startsWith('1500?'), 'a new rating is provisional');
  await toLobby(ann);
  check(!(await rated.isDisabled()), 'with a profile, Rated is offered');
  check((await text(ann, '#open-profile')).includes('1500?'), 'the lobby shows her rating');

  step('Bob (on a phone) creates his');
  await createProfile(bob);
  await bob.page.getByRole('button', { name: 'I have saved it' }).click();
  await view(bob, 'profile');
  await toLobby(bob);

  step('Ann opens a rated game: its badge, her rating in Bob\'s lobby');
  await rated.check();
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  const create = await ann.waitSent((m) => m.type === 'create', 'create');
  check(create.rated === true, 'the create asks for a rated game');
  check(await text(ann, '#game-terms') === 'Rated', 'the board says Rated');
  const entry = bob.page.locator('#open-games .game-item', { hasText: 'Ann' });
  await entry.locator('.tag', { hasText: 'Rated' }).waitFor();
  check((await entry.locator('.rating').first().textContent()) === '1500', 'her rating beside her name in the lobby');
  await view(bob, 'lobby-rated');

  step('Bob joins; both ratings show beside the names; Ann wins');
  await entry.getByRole('button', { name: /^Join Ann is waiting, rated/ }).click();
  await waitStatus(bob, /^Ann's turn \(X\)/);
  for (const p of [ann, bob]) {
    for (const m of ['X', 'O']) {
      const r = await p.page.locator(`#players .player[data-mark="${m}"] .rating`).textContent();
      check(r === '1500', `${p.label} sees ${m}'s rating (${r})`);
    }
  }
  await view(bob, 'rated-playing');
  for (const [p, c, m] of [[ann, 0, 'X'], [bob, 3, 'O'], [ann, 1, 'X'], [bob, 4, 'O'], [ann, 2, 'X']]) {
    await click(p, c);
    await seeMark(ann, c, m);
  }
  await waitStatus(ann, /^You won!/);
  await waitStatus(bob, /^Ann won\./);

  step('The leaderboard lists both, Ann\'s row highlighted, and around her');
  await ann.page.getByRole('button', { name: 'Leave' }).click();
  await ann.page.getByRole('button', { name: 'Leaderboard' }).click();
  const top = ann.page.locator('#top-table tbody tr');
  await top.nth(1).waitFor();
  const rows = await top.evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent.trim())));
  check(rows.length === 2 && rows[0][1].startsWith('Ann') && rows[1][1].startsWith('Bob'),
    `Ann above Bob (${JSON.stringify(rows)})`);
  check(parseInt(rows[0][2], 10) > 1500 && parseInt(rows[1][2], 10) < 1500,
    `the rated win moved both ratings (${rows[0][2]}, ${rows[1][2]})`);
  const mine = ann.page.locator('#top-table tr.me[aria-current="true"]');
  check((await mine.count()) === 1 && (await mine.textContent()).includes('(you)'), 'her own row is highlighted');
  await ann.page.locator('#around-section:not([hidden]) tr.me').waitFor();
  check((await text(ann, '#leaderboard-me')).startsWith('You are 1st'), 'her rank is said');
  await view(ann, 'leaderboard');
  await bob.page.getByRole('button', { name: 'Leave' }).click();
  await bob.page.getByRole('button', { name: 'Leaderboard' }).click();
  await bob.page.locator('#top-table tr.me', { hasText: 'Bob' }).waitFor();
  await view(bob, 'leaderboard');

  step('The leaderboard has an address: Back closes it, Forward and a reload open it again');
  const viewIn = (p) => new URL(p.page.url()).searchParams.get('view');
  check(viewIn(ann) === 'leaderboard', `the address names the panel (${ann.page.url()})`);
  await ann.page.goBack();
  await ann.page.locator('#lobby:not([hidden])').waitFor();
  check(await ann.page.locator('#leaderboard').isHidden(), 'Back closed the leaderboard');
  check(viewIn(ann) === null, `and the address is the lobby's (${ann.page.url()})`);
  await ann.page.goForward();
  await ann.page.locator('#leaderboard:not([hidden])').waitFor();
  await ann.page.reload();
  await ann.page.locator('#leaderboard:not([hidden]) #top-table tr.me', { hasText: 'Ann' }).waitFor();
  check(await ann.page.locator('#lobby').isHidden(), 'the reloaded page shows the panel, not the lobby');

  step('Ann\'s profile: the record, the rank and the round, replayed move by move');
  await toLobby(ann);
  await ann.page.getByRole('button', { name: /^Profile/ }).click();
  await ann.page.locator('#profile-record', { hasText: '1 win · 0 draws · 0 losses' }).waitFor();
  check(viewIn(ann) === 'profile', `the address names the profile panel (${ann.page.url()})`);
  check(await text(ann, '#profile-rank') === '1st', 'her rank');
  const game = ann.page.locator('#history .history-item').first();
  check((await game.textContent()).includes('Won against Bob (1500)'), 'the round is in her history');
  await game.getByRole('button', { name: /^Replay: Won against Bob/ }).click();
  const board = () => ann.page.locator('#history-board .cell').evaluateAll((cs) => cs.map((c) => c.dataset.mark || '.').join(''));
  await ann.page.locator('#history-pos', { hasText: 'Move 5 of 5' }).waitFor();
  check(await board() === 'XXXOO....', `the final board (${await board()})`);
  const winning = () => ann.page.locator('#history-board .cell.win').evaluateAll((cs) => cs.map((c) => c.getAttribute('aria-label')));
  const line = await winning();
  check(line.length === 3 && line.every((l, i) => l.startsWith(['top left,', 'top,', 'top right,'][i]) && l.includes('winning line')),
    `the winning line is shown and read out at the final move (${JSON.stringify(line)})`);
  const replay = ann.page.getByRole('group', { name: /^Won against Bob/ });
  await replay.getByRole('button', { name: 'Start of the round' }).click();
  check(await board() === '.........', 'the replay starts empty');
  check((await winning()).length === 0, 'no winning line before the final move');
  await replay.getByRole('button', { name: 'Next move' }).click();
  await replay.getByRole('button', { name: 'Next move' }).click();
  await ann.page.locator('#history-pos', { hasText: 'Move 2 of 5' }).waitFor();
  check(await board() === 'X..O.....', `after two moves (${await board()})`);
  await view(ann, 'profile-history');

  step('A new code replaces the old one');
  await ann.page.getByRole('button', { name: 'New recovery code' }).click();
  await ann.page.locator('#code-box:not([hidden])').waitFor();
  const newCode = await ann.page.locator('#profile-code').inputValue();
  check(CODE.test(newCode) && newCode !== firstCode, 'a new code');
  await ann.page.getByRole('button', { name: 'I have saved it' }).click();

  step('Cy\'s browser: the old code is refused, the new one brings Ann\'s profile');
  await cy.page.goto(env.pinned[2]);
  await connected(cy);
  const tokenBefore = await cy.page.evaluate(() => localStorage.getItem('ttt.token'));
  await cy.page.getByRole('button', { name: /^Profile/ }).click();
  await cy.page.getByRole('button', { name: 'Create my profile' }).waitFor();
  await cy.page.getByLabel('Recovery code', { exact: true }).last().fill(firstCode.toLowerCase());
  await cy.page.getByRole('button', { name: 'Restore' }).click();
  await cy.page.locator('#notice', { hasText: 'No profile has this recovery code' }).waitFor();
  await cy.page.getByLabel('Recovery code', { exact: true }).last().fill(newCode.replaceAll('-', ' '));
  await cy.page.getByRole('button', { name: 'Restore' }).click();
  await cy.page.locator('#server-info', { hasText: 'Signed in as Ann ' }).waitFor();
  await cy.page.locator('#profile-record', { hasText: '1 win · 0 draws · 0 losses' }).waitFor();
  check(await text(cy, '#profile-name') === 'Ann', 'Cy\'s browser now plays as Ann');
  const tokenAfter = await cy.page.evaluate(() => localStorage.getItem('ttt.token'));
  check(tokenAfter && tokenAfter !== tokenBefore, 'the recovered session\'s token is kept');
  check(await cy.page.locator('#history .history-item').count() === 1, 'with her history');

  step('Deleting asks first, then the profile is gone');
  await cy.page.getByRole('button', { name: 'Delete my profile' }).click();
  await cy.page.getByRole('button', { name: 'Keep my profile' }).click();
  check(await cy.page.locator('#profile-some').isVisible(), 'kept when not confirmed');
  await cy.page.getByRole('button', { name: 'Delete my profile' }).click();
  await cy.page.getByRole('button', { name: 'Delete for good' }).click();
  await cy.page.getByRole('button', { name: 'Create my profile' }).waitFor();
  await toLobby(cy);
  check(await cy.page.getByRole('radio', { name: 'Rated' }).isDisabled(), 'no rated games without it');
  // Her first browser was left on her profile panel, which a reload keeps.
  await ann.page.reload();
  await connected(ann);
  await ann.page.locator('#profile:not([hidden])').getByRole('button', { name: 'Create my profile' }).waitFor();
  await toLobby(ann);
  check(await ann.page.getByRole('radio', { name: 'Rated' }).isDisabled(), 'Ann\'s first browser has no profile either');
  noErrors(ann, bob, cy);
});
