// The lobby: open games to join, live games to watch, new game, quick match, lobby chat.

import { $, el, show } from './dom.js';
import { ChatView } from './chat.js';

export class LobbyView {
  // actions: create(), quickMatch(), cancelMatch(), join(id), watch(id), chat(text).
  constructor(actions) {
    this.actions = actions;
    this.section = $('lobby');
    $('new-game').addEventListener('click', () => actions.create());
    $('quick-match').addEventListener('click', () => actions.quickMatch());
    $('cancel-match').addEventListener('click', () => actions.cancelMatch());
    this.chat = new ChatView($('lobby-chat'), { label: 'Lobby chat', onSend: actions.chat });
  }

  setQueued(queued, text) {
    show($('quick-match'), !queued);
    show($('cancel-match'), queued);
    $('new-game').disabled = queued;
    const status = $('match-status');
    status.textContent = text ?? (queued ? 'Looking for an opponent…' : '');
    show(status, Boolean(status.textContent));
  }

  render({ open, live }) {
    this.fill($('open-games'), $('open-empty'), open, 'Join', (g) => this.actions.join(g.game));
    this.fill($('live-games'), $('live-empty'), live, 'Watch', (g) => this.actions.watch(g.game));
  }

  fill(list, empty, games, verb, act) {
    list.replaceChildren(...games.map((g) => {
      const x = g.players?.X ?? 'nobody';
      const o = g.players?.O;
      const who = o ? `${x} vs ${o}` : `${x} is waiting`;
      const round = g.round > 1 ? ` · round ${g.round}` : '';
      const button = el('button', { type: 'button', 'aria-label': `${verb} ${who}` }, verb);
      button.addEventListener('click', () => act(g));
      const item = el('li', { class: 'game-item', dataset: { game: g.game } });
      item.append(el('span', { class: 'game-who' }, who + round), button);
      return item;
    }));
    show(empty, games.length === 0);
  }
}
