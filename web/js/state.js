// What the page knows: which view and game are on screen, what it last heard of each game
// (version, role, state, presence), and the session's name and match queue. Plain data: the
// modules that act on it change it, and none keeps a copy.

export function pageState(wanted) {
  return {
    view: 'lobby',
    // The game on screen, and the one being joined (from a link, a click or a match).
    current: null,
    wanted,
    // id -> { id, version, role, state, presence, away, fromMatch }
    games: new Map(),
    // The session's name as the server knows it (null before the first welcome).
    name: null,
    // A name chosen while offline: the next hello renames the session, and a `rename` then
    // carries it to the games.
    renameOnWelcome: false,
    queued: false,
    watchingLobby: false,
    // Until the first lobby reply after the first welcome: the session's games are being
    // restored, and a game the player is seated in may take the screen.
    restoring: false,
    welcomed: false,
    // Games that came from quick match: if aborted, the page queues again.
    matchGames: new Set(),
    // The player's profile as far as the page shows it outside its panel: { rating,
    // provisional }, or null without one (every welcome says).
    profile: null,
  };
}

// A snapshot replaces all the page knew of its game, except when absent players went.
export function adopt(page, msg) {
  const old = page.games.get(msg.game);
  const g = {
    id: msg.game,
    version: msg.version,
    role: msg.you,
    state: msg.state,
    presence: msg.presence,
    away: awayOf(msg.presence, old),
    fromMatch: page.matchGames.has(msg.game),
  };
  page.games.set(g.id, g);
  return g;
}

// When and why each absent seat's player went, on this page's clock. The server says how long
// ago (`away`), so the countdown is right whichever instance or clock reports it.
export function awayOf(presence, before) {
  const out = { X: null, O: null };
  for (const m of ['X', 'O']) {
    if (presence?.players?.[m] !== false) continue;
    const a = presence.away?.[m];
    if (a) out[m] = { reason: a.reason ?? null, since: Date.now() - (a.for_ms ?? 0) };
    else out[m] = before?.away?.[m] ?? { reason: null, since: null };
  }
  return out;
}
