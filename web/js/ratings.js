// How ratings and a game's terms read, wherever they show (board, lobby, profile, leaderboard):
// a rating is a whole number, with a `?` while it is provisional (docs/protocol.md, Profiles:
// too few rated rounds to trust it, lichess's rule).

export const LEVELS = ['easy', 'medium', 'perfect'];

export function ratingText(rating, provisional = false) {
  if (rating == null) return '';
  return `${Math.round(rating)}${provisional ? '?' : ''}`;
}

// "Rating 1523, provisional": for screen readers, where a bare `?` says nothing.
export function ratingSpoken(rating, provisional = false) {
  if (rating == null) return 'no rating';
  return `rating ${Math.round(rating)}${provisional ? ', provisional' : ''}`;
}

// A game's terms as a badge says them: "Rated", "Casual", or "Computer · perfect" (never
// rated).
// `terms`: a game's state, or a lobby entry (where `computer` is the level itself).
export function termsText(terms) {
  const level = typeof terms.computer === 'string' ? terms.computer : terms.computer?.level;
  if (level) return `Computer · ${level}`;
  return terms.rated ? 'Rated' : 'Casual';
}
