// The logit lens page (viz/lens_page.py writes it): hovering a cell lists the likeliest
// tokens after that state of the residual stream, at that position.
"use strict";

const data = JSON.parse(document.getElementById("page-data").textContent);
const table = document.getElementById("lens");
const tooltip = document.getElementById("tooltip");
const started = performance.now();

// List the likeliest tokens of `cell` in the tooltip, placed beside `where` (the mouse, or
// the cell's corner for the keyboard); what it says, as one sentence for the line under the
// table to read out: the heading runs on into the tokens ("after layer 1: 61.0% a; 12.5% b"),
// not "after layer 1:; 61.0% a", which a screen reader says with a pause and a stumble.
function showCell(cell, where) {
  const t = Number(cell.dataset.t), s = Number(cell.dataset.s);
  // A cell whose probabilities are NaN holds no tokens (lens_page.py).
  // Each percentage as lens_page.py wrote it, from the exact probability (rounded once).
  const lines = data.cells[t][s].length === 0 ? ["NaN: no prediction"] : data.cells[t][s].map(
    ([token, , shown]) => `${shown.padStart(6)}  ${token}`);
  const heading = `position ${t} (${data.tokens[t]}), after ${data.states[s]}:`;
  tooltip.textContent = [heading, ...lines].join("\n");   // the percentages in a column
  placeTooltip(where);
  return `${heading} ${lines.map((line) => line.trim()).join("; ")}`;
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
// row's ends; keyMove in page.js), outlined, kept in sight, its tokens in the tooltip and said
// by the line under the table. Leaving the table forgets it.
const scroller = document.querySelector(".scroller");
let cursor = null;                 // [position, state], or null until the first arrow key
scroller.addEventListener("keydown", (event) => {
  const next = keyMove(event.key, cursor, [data.tokens.length, data.states.length]);
  if (!next) return;
  event.preventDefault();          // the box would scroll: the cell keeps itself in sight
  cursor = next;
  const [t, s] = cursor;
  table.querySelector("td.cursor")?.classList.remove("cursor");
  const cell = table.querySelector(`td[data-t="${t}"][data-s="${s}"]`);
  cell.classList.add("cursor");
  cell.scrollIntoView({block: "nearest", inline: "nearest"});
  const box = cell.getBoundingClientRect();
  sayReading(showCell(cell, {clientX: box.right, clientY: box.bottom}));
});
scroller.addEventListener("blur", () => {
  cursor = null;
  tooltip.hidden = true;
  table.querySelector("td.cursor")?.classList.remove("cursor");
});

document.body.dataset.ready = (performance.now() - started).toFixed(0);
