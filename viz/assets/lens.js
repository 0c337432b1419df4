// The logit lens page (viz/lens_page.py writes it): hovering a cell lists the likeliest
// tokens after that state of the residual stream, at that position.
"use strict";

const data = JSON.parse(document.getElementById("page-data").textContent);
const table = document.getElementById("lens");
const tooltip = document.getElementById("tooltip");
const started = performance.now();

table.addEventListener("mousemove", (event) => {
  const cell = event.target.closest("td[data-t]");
  if (!cell) {
    tooltip.hidden = true;
    return;
  }
  const t = Number(cell.dataset.t), s = Number(cell.dataset.s);
  const lines = data.cells[t][s].map(([token, p]) => `${(100 * p).toFixed(1).padStart(5)}%  ${token}`);
  tooltip.textContent = `position ${t} (${data.tokens[t]}), after ${data.states[s]}:\n` +
    lines.join("\n");
  placeTooltip(event);
});
table.addEventListener("mouseleave", () => { tooltip.hidden = true; });

document.body.dataset.ready = (performance.now() - started).toFixed(0);
