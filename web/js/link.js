// A game's link (`?game=<id>`): its address, copying it, and arriving by one, where a newcomer
// is asked for a name only when the game has a seat to take.

import { storage } from './storage.js';
import { announce } from './announcer.js';
import { $ } from './dom.js';

export function gameLink(id) {
  return `${location.origin}${location.pathname}?game=${encodeURIComponent(id)}`;
}

export function createLink({ page, conn, gameView, withName, join }) {
  // A seat takes the player's name, so a newcomer is asked for one before joining, with a
  // default to accept. Whether there is a seat to take, `peek` says without joining (and so
  // without showing up as a spectator): a waiting game offers "Join the game"; a game being
  // played has no seat for a newcomer, who just watches and is not asked; anything else
  // (finished, unknown, no answer) gets a neutral "Continue".
  async function arriveByLink(id) {
    const go = () => (page.wanted === id && !page.current ? join(id, false) : null);
    if (storage.name()) {
      withName('link', go);
      return;
    }
    let info = null;
    try {
      info = await conn.request({ type: 'peek', game: id });
    } catch {
      // Disconnected: the welcome after the reconnect asks again.
      return;
    }
    if (page.wanted !== id || page.current) return;
    const status = info?.type === 'game_info' ? info.status : null;
    if (status === 'playing') go();
    else withName(status === 'waiting' && !info.players.O ? 'link' : 'link-unsure', go);
  }

  async function copyLink() {
    const input = $('game-link');
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      // The async clipboard needs a secure context; plain http falls back to the selection.
      input.select();
      document.execCommand('copy');
    }
    // Confirmed where the player looks, on the button; the live region tells screen readers.
    gameView.copied();
    announce('Link copied.');
  }

  return { arriveByLink, copyLink };
}
