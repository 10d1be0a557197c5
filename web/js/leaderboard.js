// The leaderboard panel: the top 100 by rating and the rows around the player's own place,
// their row highlighted in both. The board changes as rated rounds end; the panel asks for it
// when it opens and on Refresh.

import { Disconnected } from './connection.js';
import { $, el, show } from './dom.js';
import { notify } from './notice.js';
import { errorText } from './protocol.js';
import { ordinal } from './profile.js';
import { ratingText } from './ratings.js';

const COLUMNS = [['Rank'], ['Player'], ['Rating'], ['W', 'Wins'], ['D', 'Draws'], ['L', 'Losses']];

function table(node, rows, me) {
  const head = el('tr');
  for (const [short, long] of COLUMNS) {
    const th = el('th', { scope: 'col' });
    th.append(long ? el('abbr', { title: long }, short) : short);
    head.append(th);
  }
  const body = rows.map((r) => {
    const mine = me != null && r.rank === me.rank;
    const tr = el('tr', { class: mine ? 'me' : null, 'aria-current': mine ? 'true' : null });
    const name = el('td', { class: 'rank-name' });
    name.append(el('span', { class: 'nm', title: r.name }, r.name));
    if (mine) name.append(el('span', { class: 'you' }, ' (you)'));
    const rating = el('td', { class: 'num' }, ratingText(r.rating));
    if (r.provisional) {
      rating.append(el('span', { 'aria-hidden': 'true' }, '?'), el('span', { class: 'visually-hidden' }, ', provisional'));
    }
    tr.append(
      el('td', { class: 'num' }, String(r.rank)),
      name,
      rating,
      el('td', { class: 'num' }, String(r.wins ?? 0)),
      el('td', { class: 'num' }, String(r.draws ?? 0)),
      el('td', { class: 'num' }, String(r.losses ?? 0)),
    );
    return tr;
  });
  node.replaceChildren(el('thead'), el('tbody'));
  node.tHead.append(head);
  node.tBodies[0].append(...body);
}

export function createLeaderboard({ page, conn, showPanel }) {
  $('leaderboard-refresh').addEventListener('click', () => load());

  async function open() {
    showPanel('leaderboard');
    await load();
  }

  async function load() {
    let reply;
    try {
      reply = await conn.request({ type: 'leaderboard' });
    } catch (e) {
      if (!(e instanceof Disconnected)) throw e;
      notify('Not connected: wait for the connection to come back.');
      return;
    }
    if (reply.type !== 'leaderboard') {
      notify(errorText(reply));
      return;
    }
    render(reply);
  }

  function render({ top = [], me = null, around = [] }) {
    table($('top-table'), top, me);
    show($('top-table'), top.length > 0);
    show($('top-empty'), top.length === 0);
    table($('around-table'), around, me);
    show($('around-section'), Boolean(me) && around.length > 0);
    const line = $('leaderboard-me');
    if (me) {
      line.textContent = `You are ${ordinal(me.rank)} (rating ${ratingText(me.rating, me.provisional)}).`;
    } else if (page.profile) {
      line.textContent = 'You are not on the board yet: it lists players with at least one rated game.';
    } else {
      line.textContent = 'Create a profile and play rated games to be on the board.';
    }
  }

  return { open, load };
}
