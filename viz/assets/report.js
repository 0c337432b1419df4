// The run report (viz/report_page.py writes it): the training curves as SVG charts that share
// the step axis; hovering any of them (or the arrow keys, once Tab is on one) shows every
// value at that step. A page of a run still going reloads itself from disk every few seconds
// (`tinyformer plot --follow` rewrites it).
"use strict";

const data = JSON.parse(document.getElementById("page-data").textContent);
const main = document.getElementById("charts");
const tooltip = document.getElementById("tooltip");
const SVG_NS = "http://www.w3.org/2000/svg";
const MARGIN = {left: 70, right: 20, top: 26, bottom: 30};
// The steps whose loss, or another curve's value (the gradient norm), is NaN or infinite (a
// run that diverged): no point can be drawn for them, so a red tick at the top of its chart
// marks each, as the PNG's loss panel does; so is the step where the run stopped as it
// diverged (report_page.py's `diverged`), which its metrics, all finite, do not reach.
const MARKED = [data.nonfinite, data.diverged,
  ...Object.values(data.curves).map((curve) => curve.nonfinite)];
// The steps a reader can stop at: every step with a train loss, and those marked.
const STEPS = [...new Set(data.train.map((p) => p[0]).concat(MARKED.flatMap((m) => m.steps)))]
  .sort((a, b) => a - b).map((step) => [step]);

// The red ticks of a chart for the steps `marked` (report_page.py's nonfinite or diverged)
// names, in a list: none, or one, whose legend is marked.label and whose steps, read, `say`.
function marksOf(marked, says) {
  return marked.steps.length ? [{name: marked.label, says, steps: marked.steps,
                                 at: new Set(marked.steps), colour: "#e31a1c"}] : [];
}

// What to draw: one chart per kind of figure, each a list of series of [step, value] points.
function chartList() {
  const list = [{title: "loss (cross-entropy, nats)", height: 300, series: [
    {name: "train loss (each step)", points: data.train, colour: "#1f77b4", width: 1, faint: true},
    {name: "train loss (smoothed)", points: data.smoothed, colour: "#1f77b4", width: 2.2},
    {name: "validation loss", points: data.val, colour: "#ff7f0e", width: 1.5, dots: true},
  ], marks: [...marksOf(data.nonfinite, "loss NaN or inf at this step"),
             ...marksOf(data.diverged, "diverged at this step: NaN or inf, the run stopped")]}];
  for (const [key, curve] of Object.entries(data.curves)) {
    const fraction = key !== "grad_norm";           // recall and accuracy go from 0 to 1
    // The gradient norm in purple: red is the line that marks the step being read (the
    // page's accent) and the ticks of a NaN value.
    list.push({title: curve.title, height: 150, fraction, series: [{name: curve.title,
      points: curve.points, colour: fraction ? "#2ca02c" : "#9467bd", width: 1.5, dots: fraction}],
      marks: marksOf(curve.nonfinite, `${curve.title} NaN or inf at this step`)});
  }
  if (data.lr.length) {
    list.push({title: "learning rate", height: 130, series: [{name: "learning rate",
      points: data.lr, colour: "#7f7f7f", width: 1.5}], marks: []});
  }
  return list.map((chart) => ({...chart, series: chart.series.filter((s) => s.points.length)}));
}

// Round tick values: steps of 1, 2 or 5 times a power of ten, as near `count` of them as such
// steps give (the fewer on a tie), and at least two where the range has room for them: a
// chart with one number on its axis (a gradient norm of 0.4 to 7 had only "5") does not say
// how far apart its values are, and a loss of 2.1 to 3.3 numbered at 2.5 and 3 alone (the
// first step at least a sixth of the range) left its last values unnumbered.
function ticks(low, high, count) {
  const raw = (high - low) / count, power = 10 ** Math.floor(Math.log10(raw || 1));
  const at = (step) => {
    const out = [];
    for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) out.push(v);
    return out;
  };
  const options = [10, 5, 2, 1, 0.5].map((m) => at(m * power));        // the fewest first
  const two = options.filter((out) => out.length >= 2);
  if (!two.length) return options[options.length - 1];
  const off = (out) => Math.abs(out.length - count);
  return two.reduce((best, out) => (off(out) < off(best) ? out : best));
}

function tickText(v) {
  const size = Math.abs(v);
  return v === 0 ? "0" : size >= 1e5 || size < 1e-3 ? v.toExponential(1) : String(+v.toPrecision(4));
}

function el(name, attributes, parent) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

// The least and the greatest of `values`, [low, high]. Not Math.min(...values): that passes
// each value as an argument, and a long run's (100,000 steps) are more arguments than the
// browser's stack holds, so the page drew nothing (RangeError).
function extent(values) {
  let low = Infinity, high = -Infinity;
  for (const v of values) {
    if (v < low) low = v;
    if (v > high) high = v;
  }
  return [low, high];
}

let drawn = [];          // the charts as drawn: {svg, chart, x, y, cross}

function draw() {
  main.replaceChildren();
  drawn = [];
  const charts = chartList();
  const all = charts.flatMap((c) => c.series.flatMap((s) => s.points.map((p) => p[0]))
    .concat(c.marks.flatMap((m) => m.steps)));
  const [first, last] = extent(all);
  const style = getComputedStyle(main);      // the charts fill main's width inside its padding
  // At least 280 px (a phone held upright has room for that); narrower, the page scrolls.
  const width = Math.max(280, main.clientWidth - parseFloat(style.paddingLeft) -
                         parseFloat(style.paddingRight));
  for (const chart of charts) {
    const figure = document.createElement("figure");
    const svg = el("svg", {width, "data-chart": chart.title, class: "arrow-keys", role: "img",
                           tabindex: 0,
                           "aria-label": `${chart.title}: the arrow keys move from step to ` +
                             "step and read every value there"});
    figure.appendChild(svg);
    main.appendChild(figure);
    const title = el("text", {x: MARGIN.left, y: 16, class: "chart-title"}, svg);
    title.textContent = chart.title;
    const rows = placeLegend(svg, chart.series.concat(chart.marks),
                             MARGIN.left + title.getComputedTextLength(), width);
    const below = rows - 1;          // the legend's rows under the title
    const top = MARGIN.top + below * 16, height = chart.height + below * 16;
    svg.setAttribute("height", height);
    const values = chart.series.flatMap((s) => s.points.map((p) => p[1]));
    let [low, high] = extent(values);
    if (chart.fraction) [low, high] = [0, 1.05];
    const pad = (high - low) * 0.06 || Math.abs(high) * 0.1 || 1;
    if (!chart.fraction) [low, high] = [low - pad, high + pad];
    const x = (step) => MARGIN.left + (width - MARGIN.left - MARGIN.right) *
      (last > first ? (step - first) / (last - first) : 0.5);
    const y = (v) => height - MARGIN.bottom - (height - top - MARGIN.bottom) *
      (v - low) / (high - low);
    // A chart with no value to draw (every loss NaN) has no scale to number.
    for (const v of values.length ? ticks(low, high, chart.height > 200 ? 6 : 3) : []) {
      el("line", {x1: MARGIN.left, x2: width - MARGIN.right, y1: y(v), y2: y(v), class: "grid"}, svg);
      el("text", {x: MARGIN.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end"}, svg)
        .textContent = tickText(v);
    }
    // Whole steps only: a short run's axis numbered step 1.5 and 2.5. (A tick is a sum of
    // steps of 0.2, say, which leaves 1.9999999999999998 where 2 is meant.)
    // About one number every 80 px, 8 at most: a narrow window's are not written over
    // each other ("15000" is 35 px wide).
    const across = Math.max(2, Math.min(8, Math.floor((width - MARGIN.left - MARGIN.right) / 80)));
    const whole = ticks(first, last, across).filter((v) => Math.abs(v - Math.round(v)) < 1e-6);
    for (const step of whole.map(Math.round)) {
      el("line", {x1: x(step), x2: x(step), y1: top, y2: height - MARGIN.bottom,
                  class: "grid"}, svg);
      el("text", {x: x(step), y: height - MARGIN.bottom + 16, class: "tick",
                  "text-anchor": "middle"}, svg).textContent = tickText(step);
    }
    for (const s of chart.series) {
      const path = s.points.map(([step, v], i) => `${i ? "L" : "M"}${x(step).toFixed(1)},${y(v).toFixed(1)}`);
      el("path", {d: path.join(""), fill: "none", stroke: s.colour, "stroke-width": s.width,
                  opacity: s.faint ? 0.4 : 1}, svg);
      // A path through one point draws nothing: a run of one step marks its point (once).
      if (s.dots || (s.points.length === 1 && !s.faint)) {
        for (const [step, v] of s.points) el("circle", {cx: x(step), cy: y(v), r: 3.5, fill: s.colour}, svg);
      }
    }
    for (const marks of chart.marks) {
      for (const step of marks.steps) {
        el("line", {x1: x(step), x2: x(step), y1: top, y2: top + 12, stroke: marks.colour,
                    "stroke-width": 1.5, class: "unfinished"}, svg);
      }
    }
    const cross = el("line", {y1: top, y2: height - MARGIN.bottom, class: "cross",
                              visibility: "hidden"}, svg);
    drawn.push({svg, chart, x, cross, invert: (px) => first + (last - first) *
      (px - MARGIN.left) / (width - MARGIN.left - MARGIN.right)});
  }
  if (drawn.length) el("text", {x: width - MARGIN.right, y: drawn[drawn.length - 1].svg.height.baseVal.value - 2,
    class: "tick", "text-anchor": "end"}, drawn[drawn.length - 1].svg).textContent = "step";
}

// The names of a chart's series: right of its title (which ends at `titleEnd`) if they fit on
// its line, or else in rows of their own under it, as many to a row as fit in the chart's
// width. Each name follows a short piece of its line, drawn as the line is (a faint thin
// line is told from a strong one by that alone); the name itself is in the page's ink, as
// a line's colour (orange, green) on white is too pale to read as text. Returns how many
// rows the title and the legend take.
const SAMPLE = 22;       // the piece of line, and the room between it and the name
function placeLegend(svg, series, titleEnd, width) {
  const gap = 18, items = series.map((s) => {
    const sample = el("line", {class: "legend-sample", stroke: s.colour,
                               "stroke-width": s.width || 1.5, opacity: s.faint ? 0.4 : 1}, svg);
    sample.tick = Boolean(s.steps);          // the marks of NaN values: drawn upright
    const label = el("text", {class: "legend"}, svg);
    label.textContent = s.name;
    return {sample, label, width: SAMPLE + label.getComputedTextLength()};
  });
  const total = items.reduce((sum, item) => sum + item.width + gap, 0);
  if (titleEnd + total <= width - MARGIN.right) {     // one line with the title, at its right
    let x = width - MARGIN.right - total + gap;
    for (const item of items) {
      place(item, x, 16);
      x += item.width + gap;
    }
    return 1;
  }
  let rows = 1, x = Infinity;
  for (const item of items) {
    if (x + item.width > width - MARGIN.right) {
      rows += 1;
      x = Math.min(MARGIN.left, width - MARGIN.right - item.width);
      x = Math.max(4, x);
    }
    place(item, x, 16 * rows);
    x += item.width + gap;
  }
  return rows;
}

function place(item, x, y) {
  const at = item.sample.tick ? {x1: x + 8, x2: x + 8, y1: y - 10, y2: y + 1}
    : {x1: x, x2: x + SAMPLE - 5, y1: y - 4, y2: y - 4};
  for (const [key, value] of Object.entries(at)) {
    item.sample.setAttribute(key, value);
  }
  item.label.setAttribute("x", x + SAMPLE);
  item.label.setAttribute("y", y);
}

// The point of `points` nearest to `step` (they are in step order).
function nearest(points, step) {
  let low = 0, high = points.length - 1;
  while (high - low > 1) {
    const middle = (low + high) >> 1;
    if (points[middle][0] < step) low = middle;
    else high = middle;
  }
  return Math.abs(points[low][0] - step) <= Math.abs(points[high][0] - step) ? points[low] : points[high];
}

let hovering = false;     // a value is being read (by the mouse or the keyboard)
let keyStep = null;       // the keyboard's step, while Tab is on a chart

// Mark step `at` (one of STEPS) on every chart and list every value
// there in the tooltip, placed beside `place` (the mouse, or the step's top for the
// keyboard); the text it shows.
function showStep(at, place) {
  hovering = true;
  const lines = [`step ${at}`];
  for (const d of drawn) {
    d.cross.setAttribute("x1", d.x(at));
    d.cross.setAttribute("x2", d.x(at));
    d.cross.setAttribute("visibility", "visible");
    for (const marks of d.chart.marks) if (marks.at.has(at)) lines.push(marks.says);
    for (const s of d.chart.series) {
      const [where, value] = nearest(s.points, at);
      // A sparse series (validation) is read at its nearest evaluated step, which is said.
      // The value as report_page.py wrote it (html.number: six digits), not rounded again:
      // rounding that to five digits made 1.2345649's 1.23456 read 1.2346, where it is 1.2345.
      lines.push(`${s.name}: ${value === null ? "\u2014" : value}` +
                 (where === at ? "" : `  (step ${where})`));
    }
  }
  tooltip.textContent = lines.join("\n");
  placeTooltip(place);
  return tooltip.textContent;
}

main.addEventListener("mousemove", (event) => {
  const here = drawn.find((d) => d.svg.contains(event.target) || d.svg === event.target);
  if (!here) return hide();
  const box = here.svg.getBoundingClientRect();
  const step = Math.round(here.invert(event.clientX - box.left));
  showStep(nearest(STEPS, step)[0], event);
});
main.addEventListener("mouseleave", hide);

// The keyboard: once Tab is on a chart, the arrow keys move from step to step (Home and End
// to the first and the last; keyMove in page.js), and the line under the charts says every
// value there, as the tooltip does. Leaving the chart forgets the step.
main.addEventListener("keydown", (event) => {
  const here = drawn.find((d) => d.svg === event.target);
  const next = here && keyMove(event.key, keyStep === null ? null : [keyStep],
                               [STEPS.length]);
  if (!next) return;
  event.preventDefault();          // the page would scroll
  [keyStep] = next;
  const step = STEPS[keyStep][0];
  const box = here.svg.getBoundingClientRect();
  sayReading(showStep(step, {clientX: box.left + here.x(step), clientY: box.top + MARGIN.top}));
});
main.addEventListener("focusout", () => {
  keyStep = null;
  hide();
});

function hide() {
  hovering = false;
  tooltip.hidden = true;
  for (const d of drawn) d.cross.setAttribute("visibility", "hidden");
}

let resizing = null;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(draw, 150);
});

// A run still going: read the page again from disk, but not while someone reads a value,
// nor while Tab is on a chart: a reload puts the focus back at the top of the page, and a
// keyboard or screen reader user, who had not yet pressed an arrow key, lost their place.
function reloadSoon() {
  const reading = () => hovering || main.contains(document.activeElement);
  setTimeout(() => (reading() ? reloadSoon() : location.reload()), data.refresh * 1000);
}

const started = performance.now();
draw();
if (data.refresh) reloadSoon();
document.body.dataset.ready = (performance.now() - started).toFixed(0);
