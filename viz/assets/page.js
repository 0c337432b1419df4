// What every page's script shares; it comes first, before the page kind's own script.
// Show the tooltip beside the mouse, on the side where it fits in the window.
function placeTooltip(event) {
  const tooltip = document.getElementById("tooltip");
  tooltip.hidden = false;
  const width = tooltip.offsetWidth, height = tooltip.offsetHeight, gap = 14;
  const left = event.clientX + gap + width < window.innerWidth ? event.clientX + gap
    : Math.max(0, event.clientX - gap - width);
  const top = event.clientY + gap + height < window.innerHeight ? event.clientY + gap
    : Math.max(0, event.clientY - gap - height);
  tooltip.style.left = `${left}px`;
  tooltip.style.top = `${top}px`;
}

// The keyboard's cursor over a map, a table or a chart, once Tab is on it. The pages walk it
// the same way, so that a reader who learnt one page knows them all.
//
// Where `key` takes a cursor standing at `at` (one index per axis, or null before the first
// key) over a grid whose axes have `sizes` (e.g. [rows, columns], or [steps] for a chart);
// null for a key that does not move it, which the page then leaves to the browser.
// Left and Right, Home and End (to the ends) move along the last axis; Up and Down along the
// one before it, where there is one. The cursor stays on the grid: it stops at the edges.
function keyMove(key, at, sizes) {
  const last = sizes.length - 1;
  const moves = {ArrowLeft: [last, -1], ArrowRight: [last, 1],
                 Home: [last, -Infinity], End: [last, Infinity],
                 ArrowUp: [last - 1, -1], ArrowDown: [last - 1, 1]};
  if (!(key in moves) || moves[key][0] < 0) return null;
  const [axis, step] = moves[key];
  // Before the first key the cursor stands just outside the grid, on the side the key moves
  // away from: a first Right or Down lands on the first, a first Left or Up on the last.
  const from = at ?? sizes.map((n, k) => (k !== axis ? 0 : step < 0 ? n : -1));
  return from.map((v, k) => Math.min(Math.max(k === axis ? v + step : v, 0), sizes[k] - 1));
}

// Say the cursor's text in the line under the grid (role=status, so a screen reader reads it
// out), its lines joined by "; " as one sentence to listen to.
function sayReading(text) {
  document.getElementById("reading").textContent = text.replaceAll("\n", "; ");
}
