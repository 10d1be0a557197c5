// The profile panel: without a profile, what one is and "Create my profile"; with one, its
// name, rating, record, rank and recent games (each replayable move by move), a new recovery
// code and deletion (asked twice). A recovery code is shown once, with a copy button and a
// plain "write it down". "Use a recovery code" brings a profile to this device.

import { $, el, show } from './dom.js';
import { announce } from './announcer.js';
import { HistoryReplay } from './history.js';
import { ratingSpoken, ratingText } from './ratings.js';

const COPIED_MS = 2000;

export function ordinal(n) {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${{ 1: 'st', 2: 'nd', 3: 'rd' }[n % 10] ?? 'th'}`;
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

export function recordText({ wins = 0, draws = 0, losses = 0 }) {
  return `${plural(wins, 'win', 'wins')} · ${plural(draws, 'draw', 'draws')} · ${plural(losses, 'loss', 'losses')}`;
}

const RESULT = { win: 'Won', loss: 'Lost', draw: 'Drew' };
const HOW = { forfeit: ' by forfeit', resign: ' by resignation' };

// "Won against Bob (1490) by resignation", of one history entry.
export function historyTitle(g) {
  const opponent = g.computer ? `the computer (${g.computer})` : (g.opponent ?? 'someone');
  const theirs = g.opponent_rating != null ? ` (${g.opponent_rating})` : '';
  const how = g.result === 'draw' ? '' : HOW[g.reason] ?? '';
  return `${RESULT[g.result] ?? 'Played'} against ${opponent}${theirs}${how}`;
}

export class ProfileView {
  // actions: create(), newCode(), remove(), recover(code).
  constructor(actions) {
    this.actions = actions;
    this.replay = new HistoryReplay();
    this.copiedTimer = null;
    $('profile-create').addEventListener('click', () => actions.create());
    $('profile-new-code').addEventListener('click', () => actions.newCode());
    // Deleting cannot be undone: it is asked for, then confirmed.
    $('profile-delete').addEventListener('click', () => this.confirmDelete(true));
    $('delete-no').addEventListener('click', () => this.confirmDelete(false));
    $('delete-yes').addEventListener('click', () => {
      this.confirmDelete(false, false);
      actions.remove();
    });
    $('copy-code').addEventListener('click', () => this.copyCode());
    $('code-done').addEventListener('click', () => this.hideCode());
    $('recover-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const code = $('recover-code').value.trim();
      if (code) actions.recover(code);
    });
  }

  loading(on) {
    show($('profile-loading'), on);
  }

  // `profile`: the server's profile (docs/protocol.md, Profiles), or null without one.
  render(profile) {
    this.loading(false);
    show($('profile-none'), !profile);
    show($('profile-some'), Boolean(profile));
    if (!profile) {
      this.replay.close();
      this.confirmDelete(false, false);
      return;
    }
    $('profile-name').textContent = profile.name;
    const rating = $('profile-rating');
    rating.replaceChildren(el('span', { class: 'rating-big' }, ratingText(profile.rating, profile.provisional)));
    rating.setAttribute('aria-label', ratingSpoken(profile.rating, profile.provisional));
    if (profile.provisional) {
      rating.append(el('span', { class: 'hint' }, ' provisional: a few more rated games make it firm'));
    }
    $('profile-record').textContent = recordText(profile);
    $('profile-rank').textContent = profile.rank != null
      ? ordinal(profile.rank)
      : 'none yet: play a rated game to be on the leaderboard';
    this.renderHistory(profile.games ?? []);
  }

  renderHistory(games) {
    const items = games.map((g) => {
      const title = historyTitle(g);
      const li = el('li', { class: 'history-item', dataset: { result: g.result ?? '', game: g.game } });
      const text = el('span', { class: 'history-text' });
      text.append(el('span', { class: `result result-${g.result}` }, title));
      const bits = [];
      bits.push(g.rated ? 'rated' : 'casual');
      if (g.rated && g.rating_before != null && g.rating_after != null) {
        const d = g.rating_after - g.rating_before;
        bits.push(`${g.rating_before} → ${g.rating_after} (${d >= 0 ? '+' : '−'}${Math.abs(d)})`);
      }
      bits.push(`you were ${g.you}`);
      bits.push(plural(g.moves?.length ?? 0, 'move', 'moves'));
      if (g.ended_ms) bits.push(new Date(g.ended_ms).toLocaleString());
      text.append(el('span', { class: 'hint history-meta' }, bits.join(' · ')));
      const button = el('button', { type: 'button', class: 'quiet', 'aria-label': `Replay: ${title}` }, 'Replay');
      button.addEventListener('click', () => this.replay.open(g, `${title} · you were ${g.you}`));
      li.append(text, button);
      return li;
    });
    $('history').replaceChildren(...items);
    show($('history-empty'), games.length === 0);
    if (this.replay.entry && !games.some((g) => g.game === this.replay.entry.game
      && g.ended_ms === this.replay.entry.ended_ms)) this.replay.close();
  }

  // A recovery code, just made: shown until the player says it is saved.
  showCode(code) {
    $('profile-code').value = code;
    show($('code-box'), true);
    $('copy-code').textContent = 'Copy code';
    $('profile-code').focus();
    $('profile-code').select();
    announce(`Your recovery code is ${code.split('').join(' ')}. Write it down: it is shown only once.`);
  }

  hideCode() {
    $('profile-code').value = '';
    show($('code-box'), false);
    $('profile-title').focus();
  }

  async copyCode() {
    const input = $('profile-code');
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select();
      document.execCommand('copy');
    }
    const b = $('copy-code');
    b.textContent = 'Copied ✓';
    announce('Recovery code copied.');
    clearTimeout(this.copiedTimer);
    this.copiedTimer = setTimeout(() => {
      b.textContent = 'Copy code';
    }, COPIED_MS);
  }

  confirmDelete(ask, refocus = true) {
    show($('delete-confirm'), ask);
    $('profile-delete').disabled = ask;
    if (ask) $('delete-no').focus();
    else if (refocus) $('profile-delete').focus();
  }

  recovering(on) {
    $('recover-form').querySelector('button[type="submit"]').disabled = on;
  }

  recovered() {
    $('recover-code').value = '';
  }
}
