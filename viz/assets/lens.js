// The logit lens page (viz/lens_page.py writes it): hovering a cell lists the likeliest
// tokens after that state of the residual stream, at that position.
"use strict";

const data = JSON.parse(document.getElementById("page-data").textContent);
const table = document.getElementById("lens");
const tooltip = document.getElementById("tooltip");
const started = performance.now();

// List the likeliest tokens of `cell` in the tooltip, placed beside `where` (the mouse, or
// the cell's corner for the keyboard); the text it shows.
function showCell(cell, where) {
  const t = Number(cell.dataset.t), s = Number(cell.dataset.s);
  const lines = data.cells[t][s].map(([token, p]) => `${(100 * p).toFixed(1).padStart(5)}%  ${token}`);
  tooltip.textContent = `position ${t} (${data.tokens[t]}), after ${data.states[s]}:\n` +
    lines.join("\n");
  placeTooltip(where);
  return tooltip.textContent;
}

table.addEventListener("mousemove", (event) => {
  const cell = event.target.closest("td[data-t]");
  if (!cell) {
    tooltip.hidden = true;
    return;
  }
  showCell(cell, event);
});
table.addEventListener("mouseleave", () => { tooltip.hidden = true; });

// The keyboard's cell: once Tab is on the table, the arrow keys move it (Home and End to a
// row's ends), outlined, kept in sight, its tokens in the tooltip and said by the line under
// the table (role=status, read out).
const scroller = document.querySelector(".scroller");
const reading = document.getElementById("reading");
let cursor = null;
scroller.addEventListener("keydown", (event) => {
  const moves = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
                 Home: [0, -Infinity], End: [0, Infinity]};
  if (!(event.key in moves)) return;
  event.preventDefault();          // the box would scroll: the cell keeps itself in sight
  const [dt, ds] = moves[event.key];
  const clamp = (v, n) => Math.min(Math.max(v, 0), n - 1);
  cursor = cursor ? {t: clamp(cursor.t + dt, data.tokens.length),
                     s: clamp(cursor.s + ds, data.states.length)} : {t: 0, s: 0};
  table.querySelector("td.cursor")?.classList.remove("cursor");
  const cell = table.querySelector(`td[data-t="${cursor.t}"][data-s="${cursor.s}"]`);
  cell.classList.add("cursor");
  cell.scrollIntoView({block: "nearest", inline: "nearest"});
  const box = cell.getBoundingClientRect();
  reading.textContent = showCell(cell, {clientX: box.right, clientY: box.bottom})
    .replaceAll("\n", "; ");
});
scroller.addEventListener("blur", () => {
  tooltip.hidden = true;
  table.querySelector("td.cursor")?.classList.remove("cursor");
  cursor = null;
});

document.body.dataset.ready = (performance.now() - started).toFixed(0);
