// Constants and wording taken from docs/protocol.md, the contract with the server.

export const PROTOCOL_VERSION = 1;

// This deployment's limits, as the welcome announces them (the documented defaults until then).
export const limits = { chatMaxChars: 280, forfeitGraceMs: 30000 };
export const NAME_MAX_CHARS = 24;

export function applyLimits(welcome) {
  if (Number.isInteger(welcome.chat_max_chars)) limits.chatMaxChars = welcome.chat_max_chars;
  if (Number.isInteger(welcome.forfeit_grace_ms)) limits.forfeitGraceMs = welcome.forfeit_grace_ms;
}

export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
  IDLE: 4000,
  SLOW_CONSUMER: 4001,
});

// Versioned game events: each carries `game`, `version` and the whole `state`.
export const GAME_EVENTS = new Set([
  'created', 'seated', 'moved', 'rematch_requested', 'round_started', 'conceded', 'aborted',
  'renamed',
]);

// Replies echo the request's `req`.
export const REPLIES = new Set([
  'welcome', 'snapshot', 'ack', 'error', 'pong', 'game_info', 'profile', 'recovered', 'leaderboard',
]);

const CELL_NAMES = [
  'top left', 'top', 'top right',
  'left', 'center', 'right',
  'bottom left', 'bottom', 'bottom right',
];

export function cellName(i) {
  return CELL_NAMES[i] ?? `cell ${i}`;
}

export function other(mark) {
  return mark === 'X' ? 'O' : 'X';
}

// Short messages for people; the page switches on `code`, never on the server's `message`.
const ERROR_TEXT = {
  bad_json: 'The page sent something the server could not read.',
  bad_request: 'The server refused a malformed request.',
  unknown_type: 'The server does not know that request.',
  hello_required: 'Not signed in yet: reconnecting.',
  unknown_game: 'That game does not exist or has expired.',
  not_in_game: 'You are not in that game.',
  not_your_seat: 'Spectators cannot play.',
  not_your_turn: 'It is not your turn.',
  cell_occupied: 'That cell is taken.',
  cell_out_of_range: 'That cell does not exist.',
  not_started: 'Wait for an opponent to join.',
  game_over: 'This round is over.',
  stale_board: 'The board changed: look again.',
  round_in_progress: 'Finish this round first.',
  aborted: 'That game was aborted.',
  invalid_text: 'A message needs 1 to {max} characters.',
  invalid_name: 'A name needs 1 to 24 characters.',
  already_queued: 'Already looking for an opponent.',
  rate_limited: 'Slow down a little.',
  too_many_games: 'You are in too many games at once: leave one first.',
  too_many_waiting: 'You already have games waiting for an opponent: wait until one is joined.',
  profile_required: 'Rated games need a profile: create one under Profile in the lobby.',
  computer_not_rated: 'Games against the computer are never rated.',
  no_profile: 'You have no profile (any more).',
  bad_code: 'No profile has this recovery code: check it and try again.',
  unavailable: 'The server did not answer: retrying.',
  internal: 'Something went wrong on the server.',
};

export function errorText(err) {
  const base = (ERROR_TEXT[err.code] ?? 'Something went wrong.')
    .replace('{max}', String(limits.chatMaxChars));
  if (err.code === 'rate_limited' && err.retry_after_ms) {
    return `Slow down: try again in ${Math.ceil(err.retry_after_ms / 1000)} s.`;
  }
  return base;
}

// "Rename refused: slow down, try again in 8 s.": what was refused, then why.
export function refusedText(what, err) {
  let why = errorText(err);
  if (err.code === 'rate_limited' && err.retry_after_ms) {
    why = `Slow down, try again in ${Math.ceil(err.retry_after_ms / 1000)} s.`;
  }
  return `${what} refused: ${why.charAt(0).toLowerCase()}${why.slice(1)}`;
}
