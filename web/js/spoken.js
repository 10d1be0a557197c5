// What screen readers hear when something happens in the game on screen or a chat: an event,
// a player going or coming back, a chat line. Only words: events.js decides when to say them.

import { describe, goneText } from './game.js';
import { cellName, limits } from './protocol.js';

// `before`: the game's state before the event. An empty text says nothing.
export function eventText(g, msg, before) {
  const name = (m) => msg.state.players[m] ?? m;
  switch (msg.type) {
    case 'moved': {
      const played = `${msg.mark} played ${cellName(msg.cell)}.`;
      return msg.state.status === 'finished' ? `${played} ${describe(g)}` : played;
    }
    case 'seated':
      return `${name(msg.mark)} joined as ${msg.mark}.`;
    case 'rematch_requested':
      return msg.mark === g.role ? 'Rematch asked.' : `${name(msg.mark)} wants a rematch.`;
    case 'round_started':
      return `Round ${msg.round} started: ${msg.state.turn} moves first.`;
    case 'conceded':
    case 'aborted':
      return describe(g);
    case 'renamed': {
      const was = before?.players?.[msg.mark];
      return was && was !== msg.name ? `${was} is now called ${msg.name}.` : '';
    }
    default:
      return '';
  }
}

// `mark`'s player came back (`here`) or went. A player in the round hears what going costs
// the other side: the forfeit clock is running.
export function presenceText(g, mark, here) {
  const name = g.state.players[mark];
  if (here) return `${name} is back.`;
  const playing = g.state.status === 'playing' && (g.role === 'X' || g.role === 'O');
  const grace = Math.round(limits.forfeitGraceMs / 1000);
  return `${goneText(name, g.away[mark])}.${playing ? ` You win by forfeit unless they are back within ${grace} s.` : ''}`;
}

export function chatText(line) {
  return `${line.from} says: ${line.text}`;
}
