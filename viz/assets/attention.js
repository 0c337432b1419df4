// The attention page (viz/attention_page.py writes it): one head drawn large, with its tokens
// on both axes and its weights read by hovering, and a thumbnail of every head beside it.
"use strict";

const data = JSON.parse(document.getElementById("page-data").textContent);
const mapSelect = document.getElementById("map");
const layerSelect = document.getElementById("layer");
const headSelect = document.getElementById("head");
const heatmap = document.getElementById("heatmap");
const tooltip = document.getElementById("tooltip");
const grid = document.getElementById("grid");
const state = {map: data.which, layer: 0, head: 0};

// viridis, at eleven even steps; weights are placed on it by their square root, so that an
// even spread over T keys (1/T each) stays visible next to a weight near 1.
const VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884",
                 "#44bf70", "#7ad151", "#bddf26", "#fde725"].map((hex) =>
  [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));

function rgb(weight) {
  const t = Math.sqrt(Math.min(Math.max(weight, 0), 1)) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(t), VIRIDIS.length - 2), f = t - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * f));
}

// What the tooltip says of a coded weight (encode_weights in viz/attention_page.py). An exact
// 0 is a blocked key, so a 0 is a weight above it too small to show, and near_one a weight
// below 1 that rounds to it: as the lens's <1% and >99%, neither reads as ruled out or sure.
function weightText(coded) {
  if (coded === data.blocked) return "blocked by the mask";
  if (coded === data.nan) return "weight NaN";
  if (coded === data.near_one) return "weight >0.9999";
  if (coded === 0) return "weight <0.0001";
  return `weight ${(coded / data.scale).toFixed(4)}`;
}

// The colour of every weight the page can hold (they come as whole numbers of 1/scale),
// worked out once: a head's picture looks its cells' colours up.
const COLOURS = Array.from({length: data.scale + 1}, (_, coded) => rgb(coded / data.scale));
const WHITE = [255, 255, 255];                 // a key the mask blocked
const RED = [1, 3, 5].map((i) => parseInt(data.nan_colour.slice(i, i + 2), 16));  // a NaN

// One head as a picture of one pixel a cell (keys across, queries down), on a canvas kept off
// the page. Drawn scaled up (the large map) or down (a thumbnail) with drawImage, it takes one
// call where a rectangle a cell took T x T: a thumbnail of 256 tokens is 65,536 cells.
function headPicture(map, layer, head) {
  const rows = data.maps[map].weights[layer][head];
  const image = new ImageData(rows[0].length, rows.length);
  const pixels = image.data;                   // r, g, b, alpha for each cell, row by row
  let p = 0;
  for (const row of rows) {
    for (const coded of row) {
      const [r, g, b] = coded === data.blocked ? WHITE : coded === data.nan ? RED
        : COLOURS[coded === data.near_one ? data.scale : coded];
      pixels[p] = r;
      pixels[p + 1] = g;
      pixels[p + 2] = b;
      pixels[p + 3] = 255;
      p += 4;
    }
  }
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

// Draw a head's picture into a box of `context`: its cells sharp-edged, not blurred together.
function drawPicture(context, picture, x, y, width, height) {
  context.imageSmoothingEnabled = false;
  context.drawImage(picture, x, y, width, height);
}

// ------------------------------------------------------------------------------ the large map

const FONT_FAMILY = "system-ui, sans-serif";
const FONT = `12px ${FONT_FAMILY}`;     // the labels' room is measured at the largest size
let layout = null;       // where the cells are: {left, top, cell, rows, cols}
let picture = null;      // the drawn map, to restore after a hover outline

function drawHeatmap() {
  const info = data.maps[state.map], queries = info.queries, keys = info.keys;
  // The words above the map first: the room left for it is measured below them.
  document.getElementById("focus-title").textContent =
    `layer ${state.layer + 1}, head ${state.head + 1}`;
  document.getElementById("description").textContent = info.description;
  const context = heatmap.getContext("2d");
  context.font = FONT;
  const measure = (labels) => Math.max(...labels.map((l) => context.measureText(l).width), 10);
  // Single characters read upright. A character, as Python counts it (the PNG does the same):
  // an emoji is two UTF-16 units of `length`, but one code point.
  const upright = keys.every((k) => [...k].length <= 1);
  const left = Math.ceil(measure(queries)) + 10;
  const top = upright ? 20 : Math.ceil(measure(keys)) + 10;
  // The cells fill 640 px at most, less in a narrow window (the labels and margins aside) or
  // a low one: the whole map, and the line that reads a cell under it, fit in the window
  // below what stands above it on the page.
  const above = heatmap.getBoundingClientRect().top + window.scrollY;
  const room = Math.min(640, document.documentElement.clientWidth - 100,
                        window.innerHeight - above - top - 44);
  const cell = Math.max(6, Math.min(28, Math.floor(room / Math.max(queries.length, keys.length))));
  const width = left + cell * keys.length + 10, height = top + cell * queries.length + 10;
  const ratio = window.devicePixelRatio || 1;
  heatmap.width = width * ratio;
  heatmap.height = height * ratio;
  heatmap.style.width = `${width}px`;
  heatmap.style.height = `${height}px`;
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  // Labels a cell wide: 12 px where the cells have room, smaller (9 px at least) where they
  // are smaller, and only then every n-th, as the PNG does: every second character of a
  // character-level prompt reads as nonsense ("e e h s a r"), and a laptop's window gives a
  // prompt of 48 characters cells of 11 px.
  const size = Math.min(12, Math.max(9, cell));
  context.font = `${size}px ${FONT_FAMILY}`;
  context.fillStyle = "white";
  context.fillRect(0, 0, width, height);
  drawPicture(context, headPicture(state.map, state.layer, state.head), left, top,
              cell * keys.length, cell * queries.length);
  context.strokeStyle = "#bbb";
  context.strokeRect(left - 0.5, top - 0.5, cell * keys.length + 1, cell * queries.length + 1);
  // Every label where a cell is as tall as a character (0.9 of the font's size), else
  // every n-th.
  const every = Math.ceil(0.9 * size / cell);
  context.fillStyle = "#222";
  context.textBaseline = "middle";
  context.textAlign = "right";
  queries.forEach((q, i) => {
    if (i % every === 0) context.fillText(q, left - 5, top + (i + 0.5) * cell);
  });
  keys.forEach((k, j) => {
    if (j % every) return;
    const x = left + (j + 0.5) * cell;
    if (upright) {
      context.textAlign = "center";
      context.fillText(k, x, top - 10);
    } else {
      context.save();
      context.translate(x, top - 5);
      context.rotate(-Math.PI / 2);
      context.textAlign = "left";
      context.fillText(k, 0, 0);
      context.restore();
    }
  });
  layout = {left, top, cell, rows: queries.length, cols: keys.length};
  // For whoever reads the map from outside (the tests): where its cells are.
  Object.assign(heatmap.dataset, {left, top, cell});
  picture = context.getImageData(0, 0, heatmap.width, heatmap.height);
  // What a screen reader says of the map; the arrow keys read its cells (see keydown).
  heatmap.setAttribute("aria-label", `attention weights of layer ${state.layer + 1}, head ` +
    `${state.head + 1}: ${queries.length} queries by ${keys.length} keys; ` +
    "the arrow keys move from cell to cell and read each weight");
  cursor = null;
  sayReading("");
}

function cellAt(event) {
  const box = heatmap.getBoundingClientRect();
  const j = Math.floor((event.clientX - box.left - layout.left) / layout.cell);
  const i = Math.floor((event.clientY - box.top - layout.top) / layout.cell);
  return i >= 0 && j >= 0 && i < layout.rows && j < layout.cols ? {i, j} : null;
}

// Outline cell `at` and say its weight in the tooltip, placed beside `where` (the mouse, or
// the cell's middle for the keyboard); the text it shows.
function showCell(at, where) {
  const context = heatmap.getContext("2d");
  context.putImageData(picture, 0, 0);
  const info = data.maps[state.map];
  const coded = info.weights[state.layer][state.head][at.i][at.j];
  // A black line between two white ones: on every cell's colour one of them stands out, at
  // 3:1 at least, as WCAG asks of what shows where the keyboard is. A red line alone was
  // lost on viridis's middle (1.3:1 on its teal), and on its greens to a red-green eye.
  const x = layout.left + at.j * layout.cell, y = layout.top + at.i * layout.cell;
  for (const [colour, width] of [["white", 4], ["black", 2]]) {
    context.strokeStyle = colour;
    context.lineWidth = width;
    context.strokeRect(x, y, layout.cell, layout.cell);
  }
  tooltip.textContent = `query ${at.i} ${info.queries[at.i]}\nkey ${at.j} ${info.keys[at.j]}\n` +
    weightText(coded);
  placeTooltip(where);
  return tooltip.textContent;
}

heatmap.addEventListener("mousemove", (event) => {
  const at = cellAt(event);
  if (!at) {
    heatmap.getContext("2d").putImageData(picture, 0, 0);
    tooltip.hidden = true;
    return;
  }
  showCell(at, event);
});

// The keyboard's cell: the arrow keys move it (Home and End to a row's ends; keyMove in
// page.js), and the line under the map says its weight. Leaving the map forgets it.
let cursor = null;                 // [query, key], or null until the first arrow key
heatmap.addEventListener("keydown", (event) => {
  const next = keyMove(event.key, cursor, [layout.rows, layout.cols]);
  if (!next) return;
  event.preventDefault();          // the page would scroll
  cursor = next;
  const [i, j] = cursor;
  const box = heatmap.getBoundingClientRect();
  sayReading(showCell({i, j}, {clientX: box.left + layout.left + (j + 0.5) * layout.cell,
                               clientY: box.top + layout.top + (i + 0.5) * layout.cell}));
});
heatmap.addEventListener("blur", () => {
  cursor = null;
  tooltip.hidden = true;
  heatmap.getContext("2d").putImageData(picture, 0, 0);
});
heatmap.addEventListener("mouseleave", () => {
  tooltip.hidden = true;
  heatmap.getContext("2d").putImageData(picture, 0, 0);
});

// ------------------------------------------------------------------------------ the model view

function drawGrid() {
  const info = data.maps[state.map];
  grid.replaceChildren();
  grid.style.gridTemplateColumns = `repeat(${info.heads}, auto)`;
  // As large as 2 pixels a token, up to 120, while a row of heads fits beside the large map.
  const room = Math.floor(grid.parentElement.clientWidth / info.heads) - 14;
  const size = Math.max(40, Math.min(120, room,
                                     2 * Math.max(info.queries.length, info.keys.length)));
  for (let layer = 0; layer < info.layers; layer++) {
    for (let head = 0; head < info.heads; head++) {
      const figure = document.createElement("figure");
      figure.dataset.layer = layer;
      figure.dataset.head = head;
      figure.title = `layer ${layer + 1}, head ${head + 1}`;
      figure.tabIndex = 0;           // Tab reaches it, Enter or Space chooses it
      figure.setAttribute("role", "button");
      figure.setAttribute("aria-label", `show layer ${layer + 1}, head ${head + 1}`);
      const canvas = document.createElement("canvas");
      canvas.setAttribute("aria-hidden", "true");
      canvas.width = canvas.height = size;
      drawPicture(canvas.getContext("2d"), headPicture(state.map, layer, head), 0, 0, size, size);
      const caption = document.createElement("figcaption");
      caption.textContent = `L${layer + 1} H${head + 1}`;
      figure.append(canvas, caption);
      grid.appendChild(figure);
    }
  }
  markChosen();
}

// The chosen head's thumbnail: a red border to see, and pressed to hear (a screen reader
// says "pressed" of the one shown, as of the graph page's view buttons).
function markChosen() {
  for (const figure of grid.children) {
    const chosen = Number(figure.dataset.layer) === state.layer &&
      Number(figure.dataset.head) === state.head;
    figure.classList.toggle("chosen", chosen);
    figure.setAttribute("aria-pressed", String(chosen));
  }
}

grid.addEventListener("click", (event) => {
  const figure = event.target.closest("figure");
  if (!figure) return;
  choose({layer: Number(figure.dataset.layer), head: Number(figure.dataset.head)});
});
grid.addEventListener("keydown", (event) => {
  const figure = event.target.closest("figure");
  if (!figure || (event.key !== "Enter" && event.key !== " ")) return;
  event.preventDefault();            // Space would scroll
  choose({layer: Number(figure.dataset.layer), head: Number(figure.dataset.head)});
});

// ------------------------------------------------------------------------------ the menus

function fillMenu(select, count, word) {
  select.replaceChildren(...Array.from({length: count}, (_, i) => new Option(`${word} ${i + 1}`, i)));
}

function choose(change) {
  const mapChanged = change.map !== undefined && change.map !== state.map;
  Object.assign(state, change);
  const info = data.maps[state.map];
  if (mapChanged) {
    fillMenu(layerSelect, info.layers, "layer");
    fillMenu(headSelect, info.heads, "head");
    state.layer = Math.min(state.layer, info.layers - 1);
    state.head = Math.min(state.head, info.heads - 1);
  }
  mapSelect.value = state.map;
  layerSelect.value = state.layer;
  headSelect.value = state.head;
  drawHeatmap();
  // The thumbnails after the map: they take the room beside it (a long prompt's map is wide).
  if (mapChanged) drawGrid();
  markChosen();
}

for (const [name, info] of Object.entries(data.maps)) mapSelect.add(new Option(info.description, name));
mapSelect.disabled = Object.keys(data.maps).length < 2;
mapSelect.addEventListener("change", () => choose({map: mapSelect.value}));
layerSelect.addEventListener("change", () => choose({layer: Number(layerSelect.value)}));
headSelect.addEventListener("change", () => choose({head: Number(headSelect.value)}));

// A window made narrower or wider: the map and the thumbnails, both sized to it, follow.
let resizing = null;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => {
    drawHeatmap();
    drawGrid();
  }, 150);
});

const started = performance.now();
const first = data.maps[state.map];
fillMenu(layerSelect, first.layers, "layer");
fillMenu(headSelect, first.heads, "head");
choose({});
drawGrid();
document.body.dataset.ready = (performance.now() - started).toFixed(0);
