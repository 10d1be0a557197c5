// Reconnect delays: 0.5 s doubling to 15 s, with jitter so that the players of a crashed
// instance do not all come back in the same instant.

export const BASE_MS = 500;
export const MAX_MS = 15000;

// "Equal jitter": between half and all of the exponential delay, so a retry is never
// immediate but never synchronised either.
export function reconnectDelay(attempt, random = Math.random) {
  const ceiling = Math.min(MAX_MS, BASE_MS * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
