// The lobby: open games to join, live games to watch (with their terms and the players'
// ratings), new game (rated or casual), quick match with its offer of the computer after a
// wait, playing the computer at a chosen level, and the lobby chat.

import { $, el, show } from './dom.js';
import { ChatView } from './chat.js';
import { announce } from './announcer.js';
import { storage } from './storage.js';
import { LEVELS, ratingText, termsText } from './ratings.js';

export class LobbyView {
  // actions: create(), quickMatch(), cancelMatch(), playComputer(level), join(id), watch(id),
  // chat(text), profile(), leaderboard().
  constructor(actions) {
    this.actions = actions;
    this.section = $('lobby');
    this.queued = false;
    this.offerTimer = null;
    $('new-game').addEventListener('click', () => actions.create());
    $('quick-match').addEventListener('click', () => actions.quickMatch());
    $('cancel-match').addEventListener('click', () => actions.cancelMatch());
    $('play-computer').addEventListener('click', () => actions.playComputer(this.level('computer-level')));
    $('offer-play').addEventListener('click', () => actions.playComputer(this.level('offer-level')));
    $('offer-wait').addEventListener('click', () => {
      this.hideOffer();
      // Focus stays on the waiting: Cancel is what a keyboard user may want next.
      $('cancel-match').focus();
    });
    $('open-profile').addEventListener('click', () => actions.profile());
    $('open-leaderboard').addEventListener('click', () => actions.leaderboard());
    // Both level choices show the level chosen last, here or in an earlier visit.
    const selects = [$('computer-level'), $('offer-level')];
    const choose = (level) => {
      if (!LEVELS.includes(level)) return;
      for (const s of selects) s.value = level;
      storage.setLevel(level);
    };
    choose(storage.level());
    for (const s of selects) s.addEventListener('change', () => choose(s.value));
    this.chat = new ChatView($('lobby-chat'), { label: 'Lobby chat', onSend: actions.chat });
    this.setProfile(null);
  }

  level(id) {
    const v = $(id).value;
    return LEVELS.includes(v) ? v : 'medium';
  }

  // Whether the player asked for a rated game (only offered with a profile).
  rated() {
    return $('terms-rated').checked && !$('terms-rated').disabled;
  }

  // `profile`: the welcome's or a reply's { rating, provisional }, or null without one.
  setProfile(profile) {
    const rated = $('terms-rated');
    rated.disabled = !profile;
    if (!profile && rated.checked) this.section.querySelector('input[name="terms"][value="casual"]').checked = true;
    $('terms-why').textContent = profile
      ? 'Rated games move both players\' ratings; casual ones do not.'
      : 'Rated games need a profile: create one under Profile.';
    // The leading space keeps the button's name readable: "Profile 1523?".
    $('my-rating').textContent = profile ? ` ${ratingText(profile.rating, profile.provisional)}` : '';
  }

  setQueued(queued, text) {
    this.queued = queued;
    show($('quick-match'), !queued);
    show($('cancel-match'), queued);
    $('new-game').disabled = queued;
    const status = $('match-status');
    status.textContent = text ?? (queued ? 'Looking for an opponent…' : '');
    show(status, Boolean(status.textContent));
    if (!queued) this.hideOffer();
  }

  // Quick match's ack says how long to wait before offering the computer instead; the offer
  // shows only if the player is still waiting by then, and goes once matched or cancelled.
  armOffer(ms) {
    clearTimeout(this.offerTimer);
    this.offerTimer = setTimeout(() => {
      this.offerTimer = null;
      if (!this.queued) return;
      show($('computer-offer'), true);
      announce('Nobody yet. You can play the computer instead, or keep waiting.');
    }, ms);
  }

  hideOffer() {
    clearTimeout(this.offerTimer);
    this.offerTimer = null;
    show($('computer-offer'), false);
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
      const terms = termsText(g);
      const rated = (m) => (g.ratings?.[m] != null ? `, ${g.players?.[m]} rated ${g.ratings[m]}` : '');
      const button = el('button', {
        type: 'button', 'aria-label': `${verb} ${who}, ${terms.toLowerCase()}${rated('X')}${rated('O')}`,
      }, verb);
      button.addEventListener('click', () => act(g));
      const item = el('li', { class: 'game-item', dataset: { game: g.game, rated: String(Boolean(g.rated)) } });
      const text = el('span', { class: 'game-who' });
      const name = (m) => {
        const span = el('span', { class: 'nm', title: g.players[m] }, g.players[m]);
        const r = g.ratings?.[m];
        return r != null ? [span, el('span', { class: 'rating' }, ratingText(r))] : [span];
      };
      if (o) text.append(...name('X'), ' vs ', ...name('O'), round);
      else text.append(...(g.players?.X ? name('X') : ['nobody']), ' is waiting', round);
      text.append(el('span', { class: 'tag', dataset: { rated: String(Boolean(g.rated)) } }, terms));
      item.append(text, button);
      return item;
    }));
    show(empty, games.length === 0);
  }
}
