// The ARIA live region: moves, results, chat lines and connection changes are read out to
// screen-reader users. Each message is its own element so repeated texts are announced again.

const KEEP = 5;

export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region || !text) return;
  const line = document.createElement('p');
  line.textContent = text;
  region.append(line);
  while (region.childElementCount > KEEP) region.firstElementChild.remove();
}
