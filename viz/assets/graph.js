// The interactive computation graph (viz/graph_page.py writes the page).
//
// The page holds graphviz's SVG of the forward graph and of the backward graph, and a JSON
// object that says what each node is. graphviz names every node, edge and dashed box in a
// <title> (node "op3", edge "op3->op7", box "cluster_2"): those names are the keys of the
// JSON, so this script never parses a label. What it does:
//   pan (drag) and zoom (wheel, two fingers, the + and - buttons and keys) by moving the
//   SVG's viewBox;
//   fold a module box into one box drawn over it (a click), and open it again;
//   show a node's numbers in the side panel, and the nodes of the other view tied to it;
//   find nodes and modules by name;
//   walk the graph from the keyboard, along its arrows.
"use strict";

const data = JSON.parse(document.getElementById("page-data").textContent);
const canvas = document.getElementById("canvas");
const panel = document.getElementById("panel");
const statusLine = document.getElementById("status");
const SVG_NS = "http://www.w3.org/2000/svg";
const views = {};            // "forward" / "backward" -> the view's state, see makeView
let current = data.view;     // the view shown
let selected = null;         // {view, id} of the node whose numbers the panel shows

// ------------------------------------------------------------------------------ text

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) =>
    ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
}

// A shape as Python writes it: (), (10,), (2, 8, 8).
function shapeText(shape) {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
}

// ------------------------------------------------------------------------------ the views

function makeView(name) {
  const info = data.views[name];
  const picture = document.querySelector(`.picture[data-view="${name}"]`);
  const svg = picture.querySelector("svg");
  const view = {
    name, info, picture, svg,
    graph: svg.querySelector("g.graph"),
    nodes: {},          // node id -> its <g>
    nodeBox: {},        // node id -> its rectangle {x, y, width, height} as graphviz drew it
    clusters: {},       // cluster name -> its <g>
    boxes: {},          // cluster name -> its rectangle as graphviz drew it
    labels: {},         // cluster name -> the rectangle of its label's lines, or null
    edges: [],          // {el, from, to}
    drawn: [],          // every coordinate to move when folding: {el, attr, original}
    users: {},          // node id -> ids of the nodes that take it as an input
    repeatOf: {},       // cluster name -> the stack of repeated blocks it is an item of
    members: {},        // cluster name -> the ids of the nodes in it, at any depth
    collapsed: new Set(info.collapsed),   // cluster names folded one by one
    folded: new Set(info.folded),         // paths of stacks folded into "Block x N"
    depth: data.depth === null ? "" : String(data.depth),   // the fold menu's choice
    rep: {},            // node id -> the key of the folded box it is hidden in, or null
    folds: new Map(),   // the key of each folded box shown -> {box, room}, see applyFolding
    hidden: new Map(),  // the key of each folded box shown -> the ids of the nodes it hides
    // The keyboard (see "the keyboard" below): the part it is on, the one part Tab reaches,
    // and the last step of the arrow keys.
    cursor: null, stop: null, walk: null,
    // A coordinate of a point as drawn -> as shown now, one map for each axis (see compaction).
    move: {x: (v) => v, y: (v) => v},
    overlay: document.createElementNS(SVG_NS, "g"),
  };
  const keep = (el, attr) => view.drawn.push({el, attr, original: el.getAttribute(attr)});
  // The white background, then graphviz's parts. The native tooltip would show graphviz's
  // names ("op3"): read them, then drop them.
  const background = view.graph.querySelector(":scope > polygon");
  view.extent = polygonBox(background);       // the whole drawing, in the graph's coordinates
  keep(background, "points");
  for (const g of svg.querySelectorAll("g.node")) {
    const title = g.querySelector("title");
    view.nodes[title.textContent] = g;
    const {x, y, width, height} = g.getBBox();
    view.nodeBox[title.textContent] = {x, y, width, height};
    g.dataset.id = title.textContent;
    const about = info.nodes[title.textContent];
    if (about) focusable(g, about.title + (about.module ? ` in ${about.module}` : ""));
    title.remove();
  }
  for (const g of svg.querySelectorAll("g.cluster")) {
    const title = g.querySelector("title");
    view.clusters[title.textContent] = g;
    view.boxes[title.textContent] = polygonBox(g.querySelector("polygon"));
    const lines = [...g.querySelectorAll("text")].map((text) => text.getBBox());
    view.labels[title.textContent] = lines.length ? unionBox(lines) : null;
    g.dataset.cluster = title.textContent;
    focusable(g, `fold ${info.clusters[title.textContent].label}`);
    title.remove();
  }
  for (const g of svg.querySelectorAll("g.edge")) {
    const title = g.querySelector("title");
    const [from, to] = title.textContent.split("->");
    view.edges.push({el: g, from, to});
    title.remove();
  }
  for (const g of svg.querySelectorAll("g.cluster, g.edge")) {
    for (const el of g.querySelectorAll("polygon, polyline")) keep(el, "points");
    for (const el of g.querySelectorAll("path")) keep(el, "d");
    for (const el of g.querySelectorAll("text")) {
      keep(el, "x");
      keep(el, "y");
    }
  }
  for (const [id, node] of Object.entries(info.nodes)) {
    for (const input of node.inputs) (view.users[input] ||= []).push(id);
  }
  for (const name of Object.keys(info.clusters)) view.members[name] = [];
  for (const [id, node] of Object.entries(info.nodes)) {
    for (const name of node.boxes) view.members[name].push(id);
  }
  for (const repeat of info.repeats) {
    for (const item of repeat.items) view.repeatOf[item] = repeat;
  }
  view.overlay.setAttribute("class", "overlay");
  view.graph.appendChild(view.overlay);
  const [x, y, width, height] = svg.getAttribute("viewBox").split(/\s+/).map(Number);
  view.drawnSize = {x, y, width, height};
  view.viewBox = {...view.drawnSize};
  return view;
}

// A part of the picture that the keyboard reaches and Enter or Space clicks (see the canvas's
// keydown). Tab reaches one part of the picture, the cursor (see syncStop); the arrow keys the
// others.
function focusable(g, label) {
  g.setAttribute("tabindex", "-1");
  g.setAttribute("role", "button");
  g.setAttribute("aria-label", label);
}

function polygonBox(polygon) {
  const xs = [], ys = [];
  for (const point of polygon.getAttribute("points").trim().split(/\s+/)) {
    const [x, y] = point.split(",").map(Number);
    xs.push(x);
    ys.push(y);
  }
  const x = Math.min(...xs), y = Math.min(...ys);
  return {x, y, width: Math.max(...xs) - x, height: Math.max(...ys) - y};
}

// ------------------------------------------------------------------------------ pan and zoom

function setViewBox(view, box) {
  view.viewBox = box;
  view.svg.setAttribute("viewBox", `${box.x} ${box.y} ${box.width} ${box.height}`);
}

function svgPoint(view, clientX, clientY) {
  const point = new DOMPoint(clientX, clientY).matrixTransform(view.svg.getScreenCTM().inverse());
  return {x: point.x, y: point.y};
}

function zoom(view, factor, clientX, clientY) {
  const p = svgPoint(view, clientX, clientY), b = view.viewBox;
  // Not closer than a few nodes, nor farther than twice the whole graph.
  const width = Math.min(Math.max(b.width * factor, 60), view.drawnSize.width * 2 + 400);
  const f = width / b.width;
  setViewBox(view, {x: p.x - (p.x - b.x) * f, y: p.y - (p.y - b.y) * f,
                    width: b.width * f, height: b.height * f});
}

// Show the rectangle `box` (in the graph's coordinates), with a margin, not zoomed in closer
// than `minWidth`.
function showBox(view, box, minWidth = 800) {
  const t = graphTransform(view);
  const width = Math.max(box.width + 80, minWidth), height = Math.max(box.height + 80, minWidth * 0.6);
  const cx = t.a * (box.x + box.width / 2) + t.e, cy = t.d * (box.y + box.height / 2) + t.f;
  setViewBox(view, {x: cx - width / 2, y: cy - height / 2, width, height});
}

// graphviz's translation from the graph's coordinates to the SVG's.
function graphTransform(view) {
  const transform = view.graph.transform.baseVal.consolidate();
  return transform ? transform.matrix : new DOMMatrix();
}

function unionBox(boxes) {
  const x = Math.min(...boxes.map((b) => b.x)), y = Math.min(...boxes.map((b) => b.y));
  return {x, y, width: Math.max(...boxes.map((b) => b.x + b.width)) - x,
          height: Math.max(...boxes.map((b) => b.y + b.height)) - y};
}

// A rectangle as graphviz drew it -> where it is now, the folds having moved (and shrunk) it.
function moved(view, box) {
  const x = view.move.x(box.x), y = view.move.y(box.y);
  return {x, y, width: view.move.x(box.x + box.width) - x,
          height: view.move.y(box.y + box.height) - y};
}

// The rectangle that stands for node `id` now: its own, or its folded box's.
function boxOf(view, id) {
  const rep = view.rep[id];
  if (rep) return view.folds.get(rep).box;
  if (!view.nodeBox[id]) return null;
  // A node moves as a whole, keeping its size: where its middle goes.
  const box = view.nodeBox[id], x = box.x + box.width / 2, y = box.y + box.height / 2;
  return {...box, x: box.x + view.move.x(x) - x, y: box.y + view.move.y(y) - y};
}

function focus(view, ids) {
  const boxes = ids.map((id) => boxOf(view, id)).filter((b) => b);
  if (boxes.length) showBox(view, unionBox(boxes));
}

function fit(view) {
  setViewBox(view, contentBox(view));
}

// Dragging pans; a press and release without moving is a click. Two fingers on a touch
// screen zoom (by how much farther apart or closer they move) and pan (by how far the point
// between them moves); the browser's own pinch is off on the canvas (touch-action: none).
const pointers = new Map();  // pointer id -> {x, y}, where each finger or mouse now is
let drag = null;

function pinchOf() {
  const [a, b] = [...pointers.values()];
  return {distance: Math.hypot(a.x - b.x, a.y - b.y), x: (a.x + b.x) / 2, y: (a.y + b.y) / 2};
}

function pan(view, dx, dy) {
  const scale = view.svg.getScreenCTM().a, b = view.viewBox;
  setViewBox(view, {...b, x: b.x - dx / scale, y: b.y - dy / scale});
}

canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  pointers.set(event.pointerId, {x: event.clientX, y: event.clientY});
  canvas.setPointerCapture(event.pointerId);
  if (pointers.size === 1) {
    drag = {x: event.clientX, y: event.clientY, moved: false, target: event.target};
  } else if (drag) {
    drag.moved = true;             // a second finger: a pinch, never a click
  }
});
canvas.addEventListener("pointermove", (event) => {
  if (!pointers.has(event.pointerId)) return hover(event);
  const view = views[current];
  if (pointers.size >= 2) {
    const before = pinchOf();
    pointers.set(event.pointerId, {x: event.clientX, y: event.clientY});
    const after = pinchOf();
    if (before.distance > 0 && after.distance > 0) {
      zoom(view, before.distance / after.distance, before.x, before.y);
    }
    pan(view, after.x - before.x, after.y - before.y);
    return;
  }
  pointers.set(event.pointerId, {x: event.clientX, y: event.clientY});
  const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
  if (!drag.moved && Math.hypot(dx, dy) < 4) return;
  drag.moved = true;
  canvas.classList.add("dragging");
  pan(view, dx, dy);
  drag.x = event.clientX;
  drag.y = event.clientY;
});
function release(event) {
  if (!pointers.delete(event.pointerId)) return;
  if (pointers.size === 1) {       // one finger of a pinch left: it drags on from where it is
    const [rest] = pointers.values();
    drag.x = rest.x;
    drag.y = rest.y;
    return;
  }
  if (pointers.size) return;
  if (event.type === "pointerup" && drag && !drag.moved) {
    click(drag.target);
    // A click that folds or opens a box changes what is under the mouse: the status line
    // says what is there now, not "click to open" the box it just opened.
    const under = document.elementFromPoint(event.clientX, event.clientY);
    if (under && canvas.contains(under)) hover({target: under});
  }
  drag = null;
  canvas.classList.remove("dragging");
}
canvas.addEventListener("pointerup", release);
canvas.addEventListener("pointercancel", release);
// A part the keyboard reaches is the cursor, where Tab comes back to.
canvas.addEventListener("focusin", (event) => {
  const part = event.target.closest("g.node, g.cluster, g.folded");
  if (!part) return;
  setCursor(views[current], partName(part));
  bringIntoSight(part);
});

// A part the keyboard is on, outside the picture shown (zoomed in, or panned away), would
// have its outline where no one sees it: the picture pans to put it in the middle, at the
// same zoom; a module box bigger than the picture, its label, where its name is. Only for
// the keyboard (:focus-visible): a click is on a part already in sight, and a drag that
// starts on one must not make the picture jump.
function bringIntoSight(part) {
  if (!part.matches(":focus-visible")) return;
  const label = part.matches("g.cluster") && part.querySelector("text");
  const shown = canvas.getBoundingClientRect();
  let at = part.getBoundingClientRect();
  if (label && (at.width > shown.width || at.height > shown.height)) {
    at = label.getBoundingClientRect();
  }
  const inside = at.left >= shown.left && at.right <= shown.right &&
    at.top >= shown.top && at.bottom <= shown.bottom;
  if (inside) return;
  pan(views[current], shown.x + shown.width / 2 - (at.x + at.width / 2),
      shown.y + shown.height / 2 - (at.y + at.height / 2));
}
canvas.addEventListener("wheel", (event) => {
  event.preventDefault();
  zoom(views[current], Math.exp(event.deltaY * 0.0015), event.clientX, event.clientY);
}, {passive: false});

// The zoom buttons and keys zoom about the middle of the picture.
function zoomCentre(factor) {
  const box = canvas.getBoundingClientRect();
  zoom(views[current], factor, box.x + box.width / 2, box.y + box.height / 2);
}

// ------------------------------------------------------------------------------ clicks

function click(target) {
  const view = views[current];
  const folded = target.closest("g.folded");
  if (folded) return unfold(view, folded.dataset.key);
  const node = target.closest("g.node");
  if (node && view.info.nodes[node.dataset.id]) {
    select(current, node.dataset.id);
    // The status line is read out (aria-live) and the panel is not: to a screen reader,
    // Enter on a node did nothing that it heard.
    statusLine.textContent = `${nodeName(view.info.nodes[node.dataset.id])}: its values are ` +
      "in the panel";
    return;
  }
  const cluster = target.closest("g.cluster");
  if (cluster) return fold(view, cluster.dataset.cluster);
  clearSelection();
}

// A node as the status line names it: its title, and the module it ran in.
function nodeName(info) {
  return `${info.title}${info.module ? " in " + info.module : ""}`;
}

function hover(event) {
  const view = views[current];
  const folded = event.target.closest("g.folded");
  const node = event.target.closest("g.node");
  const cluster = event.target.closest("g.cluster");
  if (folded) {
    statusLine.textContent = `click to open ${describeFold(view, folded.dataset.key).title}`;
  } else if (node && view.info.nodes[node.dataset.id]) {
    statusLine.textContent = `${nodeName(view.info.nodes[node.dataset.id])}: click for its values`;
  } else if (cluster) {
    const info = view.info.clusters[cluster.dataset.cluster];
    statusLine.textContent = `click to fold ${info.label} into one box`;
  } else {
    statusLine.textContent = "";
  }
}

// ------------------------------------------------------------------------------ the keyboard

// The picture is one stop of Tab, as a tree or a grid is in WAI-ARIA's practices (a "roving
// tabindex"): the part the keyboard is on, the cursor, has tabindex 0 and every other part -1,
// so that Tab goes from the toolbar to the picture and on to the panel, instead of through
// every box and node. Inside, the arrow keys walk the graph along its arrows (walkKey). A part
// is named by a string, which outlives the folding that draws it anew: "node:" + a node's id,
// "box:" + a module box's (cluster's) name, "fold:" + a folded box's key.

function partName(g) {
  if (g.matches("g.folded")) return "fold:" + g.dataset.key;
  return g.matches("g.node") ? "node:" + g.dataset.id : "box:" + g.dataset.cluster;
}

function splitName(name) {
  const colon = name.indexOf(":");
  return [name.slice(0, colon), name.slice(colon + 1)];
}

// The part shown now that stands for part `name`: itself, or the folded box that hides it; a
// folded box opened, the box of its module (of a stack of blocks, the first block's).
function shownPart(view, name) {
  const [kind, key] = splitName(name);
  if (kind === "node") return view.rep[key] ? "fold:" + view.rep[key] : name;
  if (kind === "box") {
    const fold = foldedKeyOf(view, view.info.clusters[key].boxes.concat([key]));
    if (fold) return "fold:" + fold;
    // A box between the blocks of a folded stack: hidden in the stack's box, as its nodes are.
    const members = view.members[key];
    return clusterHidden(view, key) ? shownPart(view, "node:" + members[0]) : name;
  }
  if (view.folds.has(key)) return name;
  return shownPart(view, "box:" + (key.startsWith("c:") ? key.slice(2)
    : view.info.repeats.find((r) => r.path === key.slice(2)).items[0]));
}

function partElement(view, name) {
  const [kind, key] = splitName(name);
  if (kind === "node") return view.nodes[key];
  if (kind === "box") return view.clusters[key];
  return view.overlay.querySelector(`g.folded[data-key="${CSS.escape(key)}"]`);
}

function setCursor(view, name) {
  view.cursor = name;
  syncStop(view);
}

// Give the cursor's part, as shown now, the picture's one tabindex="0"; before any key the
// cursor is where the graph starts (Home).
function syncStop(view) {
  view.cursor ||= graphEnd(view, "start");
  const stop = partElement(view, shownPart(view, view.cursor));
  if (stop === view.stop) return;
  view.stop?.setAttribute("tabindex", "-1");
  stop?.setAttribute("tabindex", "0");
  view.stop = stop;
}

function partTitle(view, name) {
  const [kind, key] = splitName(name);
  if (kind === "node") return view.info.nodes[key].title;
  if (kind === "box") return view.info.clusters[key].label;
  return describeFold(view, key).title;
}

// Where a part is now: the middle of its node or box.
function placeOf(view, name) {
  const [kind, key] = splitName(name);
  if (kind === "node") return middle(boxOf(view, key));
  if (kind === "box") return middle(moved(view, view.boxes[key]));
  return middle(view.folds.get(key).box);
}

// The parts shown that part `name` takes as inputs (way "inputs") or that take it (way
// "users"): along the arrows of the nodes it stands for, out of it.
function neighbours(view, name, way) {
  const [kind, key] = splitName(name), found = new Set();
  const ids = kind === "node" ? [key] : kind === "fold" ? view.hidden.get(key) : [];
  for (const id of ids) {
    const others = way === "inputs" ? view.info.nodes[id].inputs : view.users[id] || [];
    for (const other of others) {
      if (!view.nodes[other] || !view.info.nodes[other]) continue;
      const part = shownPart(view, "node:" + other);
      if (part !== name) found.add(part);
    }
  }
  return [...found];
}

// The directions of the picture: the axis its arrows go along (graphviz's rankdir), +1 where
// they go the axis's way (down, right), and the arrow keys: back up an arrow, along it, and
// across it, to the parts before and after.
const ACROSS_X = {before: "ArrowLeft", after: "ArrowRight"};
const ACROSS_Y = {before: "ArrowUp", after: "ArrowDown"};
const FLOW = {
  TB: {axis: "y", sign: 1, back: "ArrowUp", along: "ArrowDown", ...ACROSS_X},
  BT: {axis: "y", sign: -1, back: "ArrowDown", along: "ArrowUp", ...ACROSS_X},
  LR: {axis: "x", sign: 1, back: "ArrowLeft", along: "ArrowRight", ...ACROSS_Y},
  RL: {axis: "x", sign: -1, back: "ArrowRight", along: "ArrowLeft", ...ACROSS_Y},
}[data.rankdir];
const ACROSS = FLOW.axis === "y" ? "x" : "y";
const KEY_SIGNS = {ArrowUp: "\u2191", ArrowDown: "\u2193", ArrowLeft: "\u2190",
                   ArrowRight: "\u2192"};

// Parts side by side, as the keys across the arrows go through them; and in reading order,
// from where the graph starts to where it ends.
function acrossOrder(view, names) {
  const at = new Map(names.map((name) => [name, placeOf(view, name)]));
  return names.slice().sort((a, b) => at.get(a)[ACROSS] - at.get(b)[ACROSS] ||
    FLOW.sign * (at.get(a)[FLOW.axis] - at.get(b)[FLOW.axis]));
}

function readingOrder(view, names) {
  const at = new Map(names.map((name) => [name, placeOf(view, name)]));
  return names.slice().sort((a, b) => FLOW.sign * (at.get(a)[FLOW.axis] - at.get(b)[FLOW.axis]) ||
    at.get(a)[ACROSS] - at.get(b)[ACROSS]);
}

// The parts where the graph starts (nothing goes into them) or ends (they go nowhere), in
// the order the keys across go through them.
function graphEnds(view, which) {
  const parts = new Set();
  for (const id of Object.keys(view.info.nodes)) {
    if (view.nodes[id]) parts.add(shownPart(view, "node:" + id));
  }
  const way = which === "start" ? "inputs" : "users";
  return acrossOrder(view, [...parts].filter((name) => !neighbours(view, name, way).length));
}

// Home's part and End's: the graph's inputs (the backward graph's seed) and its result (the
// loss), the nodes that no fold hides; else the first start or the last end in reading order.
function graphEnd(view, which) {
  const ends = graphEnds(view, which);
  const kept = ends.filter((name) => name.startsWith("node:") &&
                                     view.info.nodes[name.slice(5)].keep);
  const order = readingOrder(view, kept.length ? kept : ends);
  return which === "start" ? order[0] : order[order.length - 1];
}

// Of `names`, the one nearest straight ahead of part `from` (across the arrows).
function nearest(view, names, from) {
  const at = placeOf(view, from)[ACROSS];
  let best = names[0];
  for (const name of names) {
    if (Math.abs(placeOf(view, name)[ACROSS] - at) < Math.abs(placeOf(view, best)[ACROSS] - at)) {
      best = name;
    }
  }
  return best;
}

// Where a key takes the cursor from part `at`: {to, walk, say}, `walk` the step the keys across
// go on with ({from, way, list}: the parts `list` are the inputs or the users of part `from`,
// or the graph's starts or ends) and `say` what the status line tells; {say} alone where it
// goes nowhere; null for a key that is not the picture's.
//   back up an arrow: to an input (the one the cursor came down from, else the one straight
//     above), along one: to a user (likewise); across: to the next of the parts the last step
//     chose from, round and round;
//   Home, End: to where the graph starts (its inputs) and where it ends (the loss);
//   Page Up: out to the module box around the part, Page Down: back in.
function walkKey(view, at, key) {
  const title = (name) => partTitle(view, name);
  const walk = view.walk && view.walk.at === at ? view.walk : null;
  const [kind, id] = splitName(at);
  if (kind === "box" && key !== "PageUp" && (key === "PageDown" || key in KEY_SIGNS)) {
    const inside = [...new Set(view.members[id].filter((member) => view.nodes[member])
      .map((member) => shownPart(view, "node:" + member)))];
    if (!inside.length) return {say: `${title(at)} holds no node`};
    const back = walk && walk.way === "box" && inside.includes(walk.from);
    return {to: back ? walk.from : readingOrder(view, inside)[0], say: `in ${title(at)}`};
  }
  if (key === FLOW.back || key === FLOW.along) {
    const way = key === FLOW.back ? "inputs" : "users";
    const list = acrossOrder(view, neighbours(view, at, way));
    if (!list.length) {
      return {say: way === "inputs" ? `${title(at)} has no inputs: the graph starts there`
        : `nothing uses ${title(at)}: the graph ends there`};
    }
    const undo = walk && walk.way !== way && list.includes(walk.from);
    const to = undo ? walk.from : nearest(view, list, at);
    return {to, walk: {from: at, way, list}, say: position(view, to, {from: at, way, list})};
  }
  if (key === FLOW.before || key === FLOW.after) {
    const along = walk || sideBySide(view, at);
    if (!along || along.list.length < 2) return {say: `nothing beside ${title(at)}`};
    const i = along.list.indexOf(at), n = along.list.length;
    const to = along.list[(i + (key === FLOW.after ? 1 : n - 1)) % n];
    return {to, walk: along, say: position(view, to, along)};
  }
  if (key === "Home" || key === "End") {
    const which = key === "Home" ? "start" : "end";
    const list = graphEnds(view, which), to = graphEnd(view, which);
    return {to, walk: {from: null, way: which, list}, say: position(view, to, {way: which, list})};
  }
  if (key === "PageUp") {
    const outer = boxAround(view, at);
    if (!outer) return {say: `${title(at)} is in no module box`};
    return {to: "box:" + outer, walk: {from: at, way: "box", list: []}, say: title("box:" + outer)};
  }
  if (key === "PageDown") return {say: `${title(at)} is no module box: Page Up goes out to one`};
  return null;
}

// The parts beside part `at` before the keys have gone anywhere: the other inputs of the
// node it feeds (the one straight ahead), else the other users of its input.
function sideBySide(view, at) {
  const users = neighbours(view, at, "users");
  if (users.length) {
    const from = nearest(view, users, at);
    return {from, way: "inputs", list: acrossOrder(view, neighbours(view, from, "inputs"))};
  }
  const inputs = neighbours(view, at, "inputs");
  if (!inputs.length) return null;
  const from = nearest(view, inputs, at);
  return {from, way: "users", list: acrossOrder(view, neighbours(view, from, "users"))};
}

// The innermost module box, open, around part `at`.
function boxAround(view, at) {
  const [kind, key] = splitName(at);
  let boxes;
  if (kind === "node") boxes = view.info.nodes[key].boxes;
  else if (kind === "box") boxes = view.info.clusters[key].boxes;
  else if (key.startsWith("c:")) boxes = view.info.clusters[key.slice(2)].boxes;
  else {
    const repeat = view.info.repeats.find((r) => r.path === key.slice(2));
    boxes = view.info.clusters[repeat.items[0]].boxes;
  }
  return boxes.length ? boxes[boxes.length - 1] : null;
}

// What the status line says of a step: "add: input 2 of 3 of matmul (← → for the others)".
function position(view, to, walk) {
  const i = walk.list.indexOf(to) + 1, n = walk.list.length;
  const what = {inputs: `input ${i} of ${n} of ${walk.from && partTitle(view, walk.from)}`,
                users: `${i} of ${n} that use ${walk.from && partTitle(view, walk.from)}`,
                start: `${i} of ${n} where the graph starts`,
                end: `${i} of ${n} where the graph ends`}[walk.way];
  const others = n > 1 ? ` (${KEY_SIGNS[FLOW.before]} ${KEY_SIGNS[FLOW.after]} for the others)`
    : "";
  return `${partTitle(view, to)}: ${what}${others}`;
}

// The keys on a part of the picture: Enter and Space click it; the others walk (walkKey). The
// part the cursor moves to gets the focus, which pans the picture to it (see focusin).
canvas.addEventListener("keydown", (event) => {
  const part = event.target.closest("g.node, g.cluster, g.folded");
  if (!part || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();        // Space would scroll
    click(part);                   // a fold or an opening moves the focus, see keepInPlace
    return;
  }
  const view = views[current], step = walkKey(view, partName(part), event.key);
  if (!step) return;
  event.preventDefault();          // the arrows and Page Up and Down would scroll
  statusLine.textContent = step.say;
  if (!step.to) return;
  view.walk = step.walk ? {...step.walk, at: step.to} : null;
  setCursor(view, step.to);
  view.stop.focus({preventScroll: true});
});

// ------------------------------------------------------------------------------ folding

// A folded box's key: "c:" + a cluster name, or "r:" + the path of a stack of repeated blocks.
function foldedKeyOf(view, boxes) {
  for (const name of boxes) {
    const repeat = view.repeatOf[name];
    if (repeat && view.folded.has(repeat.path)) return "r:" + repeat.path;
    if (view.collapsed.has(name)) return "c:" + name;
  }
  return null;
}

function foldedBox(view, key) {
  if (key.startsWith("c:")) return view.boxes[key.slice(2)];
  const repeat = view.info.repeats.find((r) => r.path === key.slice(2));
  return unionBox(repeat.items.map((name) => view.boxes[name]));
}

function describeFold(view, key) {
  const count = (n, what) => `${n.toLocaleString("en")} ${what}${n === 1 ? "" : "s"}`;
  const about = key.startsWith("r:") ? view.info.repeats.find((r) => r.path === key.slice(2))
    : view.info.clusters[key.slice(2)];
  const lines = about.params === null || about.params === undefined ? []
    : [count(about.params, "param")];
  lines.push(count(about.ops, "op"));
  if (key.startsWith("r:")) {             // the ops between the blocks, hidden with them
    const between = Object.entries(view.rep).filter(([id, rep]) => rep === key &&
      "op" in view.info.nodes[id] &&
      !view.info.nodes[id].boxes.some((name) => about.items.includes(name))).length;
    if (between) lines.push(`and ${count(between, "op")} between them`);
  }
  const gradients = Object.entries(view.rep).filter(([id, rep]) =>
    rep === key && view.info.nodes[id].kind === "gradient").length;
  if (gradients) lines.push(`computes ${count(gradients, "gradient")}`);
  const flow = flowOf(view, key);
  if (flow) lines.push(flow.norm === null ? "no gradient" : `largest grad norm ${expo(flow.norm)}`);
  // A NaN or an infinity hidden in the box: the panel would show it of each node, but the
  // nodes are out of reach until the box is opened. A NaN is always a fault, and so is an
  // infinite gradient: those are the alarms (red). An infinite value is not by itself (a
  // causal mask blocks a key with -inf): a plain line. The pictures' folded modules say the
  // same in the same words (_nonfinite_lines in graph.py).
  const broken = nonfinite(view, key), alarms = [];
  if (broken.infValues) {
    lines.push(`${count(broken.infValues, "value")} with ±inf (masks use -inf)`);
  }
  if (broken.nanValues) alarms.push(`${count(broken.nanValues, "value")} with NaN`);
  if (broken.badGrads) alarms.push(`${count(broken.badGrads, "gradient")} with NaN or inf`);
  return {title: about.label, lines: lines.concat(alarms), alarms: alarms.length, flow};
}

// How many of the nodes hidden in folded box `key` have a value holding a NaN, a value
// holding an infinity and no NaN, and a gradient holding either: the forward graph's
// dL/d(node), or in the backward graph a node's value where it is a gradient it computes
// (judged as a gradient, not as a value). A dL/dparameter box shows the value of the node
// that computes it, counted there: as the picture counts it, once.
function nonfinite(view, key) {
  const found = {nanValues: 0, infValues: 0, badGrads: 0};
  for (const [id, rep] of Object.entries(view.rep)) {
    const node = view.info.nodes[id];
    if (rep !== key || node.kind === "gradient") continue;
    const value = node.is_gradient ? null : node.value;
    const grad = node.is_gradient ? node.value : node.grad;
    if (value && value.nan) found.nanValues += 1;
    else if (value && value.nonfinite) found.infValues += 1;
    if (grad && grad.nonfinite) found.badGrads += 1;
  }
  return found;
}

// With gradient flow (draw_graph's color_by_grad, --flow), a folded box is coloured as the
// picture colours a folded module: by the largest gradient norm inside it, in the colour of
// the node inside that has it (in the forward graph a node's gradient dL/d(node), in the
// backward graph the gradient a node computes; a node drawn white has none), a NaN norm
// before any (the picture fills its node red: a NaN inside always shows). Without gradient
// flow, null.
function flowOf(view, key) {
  if (!data.flow) return null;
  let best = {norm: null};
  for (const [id, rep] of Object.entries(view.rep)) {
    const g = view.nodes[id];
    if (rep !== key || !g) continue;
    const node = view.info.nodes[id], shape = g.querySelector("polygon, ellipse, path");
    const summary = view.name === "forward" ? node.grad : node.value;
    const fill = shape && shape.getAttribute("fill");
    if (!summary || !fill || fill === "#ffffff") continue;
    const norm = flowNorm(summary, fill);
    if (norm === null || Number.isNaN(best.norm)) continue;
    if (best.norm === null || Number.isNaN(norm) || norm > best.norm) {
      best = {norm, fill, ink: g.querySelector("text")?.getAttribute("fill") || "#000000"};
    }
  }
  return best;
}

// The norm a node's fill stands for: the summary's norm is that of the finite values alone,
// where the picture took the whole array's, NaN (its node red) with a NaN in it, else
// infinite with an infinity.
function flowNorm(summary, fill) {
  if (!summary.nonfinite) return typeof summary.norm === "number" ? summary.norm : null;
  return fill.toLowerCase() === data.nan_colour ? NaN : Infinity;
}

// A norm as the pictures write it, Python's "{:.2e}": 3.89e+00, and nan or inf.
function expo(x) {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "nan" : "inf";
  return x.toExponential(2).replace(/e([+-])(\d)$/, "e$10$2");
}

function fold(view, name) {
  keepInPlace(view, view.boxes[name], () => view.collapsed.add(name));
}

function unfold(view, key) {
  keepInPlace(view, foldedBox(view, key), () => {
    if (key.startsWith("r:")) view.folded.delete(key.slice(2));
    else view.collapsed.delete(key.slice(2));
  });
}

// Fold or open (`change`) and pan so that `box` stays where it was on the screen: the middle
// of its top, where the label clicked is, open or folded.
function keepInPlace(view, box, change) {
  const labelAt = () => {
    const now = moved(view, box);
    return {x: now.x + now.width / 2, y: now.y};
  };
  const hadFocus = view.svg.contains(document.activeElement);
  const before = labelAt();
  change();
  applyFolding(view);
  const after = labelAt();
  setViewBox(view, {...view.viewBox, x: view.viewBox.x + after.x - before.x,
                    y: view.viewBox.y + after.y - before.y});
  // The fold or the opening hid the part the focus was on, or drew it anew: the focus goes
  // to what stands in its place, the folded box of a module folded, the box of a module
  // opened (of a stack of blocks, its first block's), so that Enter opens again what it
  // folded and the arrow keys go on from there.
  if (hadFocus && document.activeElement !== view.stop) view.stop?.focus({preventScroll: true});
}

// Open every fold that hides node `id`, so that it can be shown: the one it is hidden in,
// then any that still hides it (a fold inside the one opened).
function reveal(view, id) {
  while (view.rep[id]) {
    const key = view.rep[id];
    if (key.startsWith("r:")) view.folded.delete(key.slice(2));
    else view.collapsed.delete(key.slice(2));
    applyFolding(view);
  }
}

// Hide what the folded boxes hold and draw the boxes over them. A node is hidden in the
// outermost folded box around it; a leaf outside every box (a parameter, a constant) goes
// with the box that every one of its users is in. A stack of blocks is drawn as one box from
// its first block to its last, so what lies between the blocks (the ops of the module around
// the stack that run between them) is hidden in it too, rather than left under it. An arrow
// between two nodes of one folded box disappears; an arrow into or out of a folded box
// meets it at its border (see reroute). Then the space the folded boxes no longer need is
// taken out (compaction), and each folded box is drawn as big as its label, at the top of
// the room its module took: the room is often still taller or wider than the label, held
// open by what is shown beside it, and holds nothing shown but the box.
function applyFolding(view) {
  const info = view.info;
  for (const [id, node] of Object.entries(info.nodes)) {
    view.rep[id] = foldedKeyOf(view, node.boxes);
  }
  withUsers(view);
  for (const key of new Set(Object.values(view.rep))) {
    if (!key || !key.startsWith("r:")) continue;
    const box = foldedBox(view, key);
    for (const [id, node] of Object.entries(info.nodes)) {
      if (!view.rep[id] && !node.keep && view.nodeBox[id] && overlap(view.nodeBox[id], box)) {
        view.rep[id] = key;
      }
    }
  }
  withUsers(view);
  for (const [id, g] of Object.entries(view.nodes)) {
    g.classList.toggle("gone", Boolean(view.rep[id]));
  }
  for (const [name, g] of Object.entries(view.clusters)) {
    g.classList.toggle("gone", clusterHidden(view, name));
  }
  for (const edge of view.edges) {
    const from = view.rep[edge.from], to = view.rep[edge.to];
    edge.el.classList.toggle("gone", Boolean(from) && from === to);
    // graphviz's head is on the node hidden in the box: reroute draws one on the box's border.
    edge.el.querySelector("polygon")?.classList.toggle("gone", Boolean(to));
  }
  const shown = new Set(Object.values(view.rep).filter((key) => key));
  view.move = {x: compaction(view, shown, "x"), y: compaction(view, shown, "y")};
  // The compaction keeps a label's box whole, so it moves without changing its size; a label
  // taller than its module was drawn reaches out of the room, which grows to hold it.
  view.folds = new Map([...shown].map((key) => {
    const box = moved(view, labelBox(view, key));
    return [key, {box, room: unionBox([moved(view, foldedBox(view, key)), box])}];
  }));
  redraw(view);
  view.overlay.replaceChildren();
  for (const key of shown) drawFolded(view, key);
  for (const edge of view.edges) {
    const from = view.rep[edge.from], to = view.rep[edge.to];
    if ((from || to) && from !== to) reroute(view, edge, from, to);
  }
  view.hidden = new Map([...shown].map((key) => [key, []]));
  for (const [id, key] of Object.entries(view.rep)) if (key) view.hidden.get(key).push(id);
  syncStop(view);
  markLinks();
  updateFoldButtons();
}

// A leaf outside every box goes with the nodes it feeds, when they are all in one folded box;
// a gradient dL/d(leaf) with the op that made it.
function withUsers(view) {
  for (const [id, node] of Object.entries(view.info.nodes)) {
    if (node.boxes.length || node.keep || view.rep[id]) continue;
    const reps = new Set((view.users[id] || node.inputs).map((other) => view.rep[other]));
    if (reps.size === 1) view.rep[id] = [...reps][0];
  }
}

function overlap(a, b) {
  return Math.min(a.x + a.width, b.x + b.width) > Math.max(a.x, b.x) &&
    Math.min(a.y + a.height, b.y + b.height) > Math.max(a.y, b.y);
}

// A box is hidden when a fold holds it, or when every node in it is hidden (between the
// blocks of a folded stack).
function clusterHidden(view, name) {
  if (foldedKeyOf(view, view.info.clusters[name].boxes.concat([name])) !== null) return true;
  const members = view.members[name];
  return members.length > 0 && members.every((id) => view.rep[id]);
}

// Folding leaves a box much emptier than graphviz drew it, along the direction the graph
// flows and across it: a folded module is one label where graphviz made room for all its
// nodes side by side. This finds, along one axis ("x" or "y"), the stretches inside folded
// boxes where nothing visible is (no node, no border or label of a box still open, not the
// folded box's own label) anywhere in the picture, and shrinks each to GAP. Both axes taken
// in, a folded box is about as big as its label, and the rest of the graph closes up around
// it. It returns the map from a coordinate as drawn to the coordinate shown: piecewise
// linear, increasing (so nothing comes to overlap what it did not overlap as drawn), the
// identity when nothing is folded (the open picture stays graphviz's own).
const GAP = 24, PAD = 6;

function compaction(view, shown, axis) {
  const size = axis === "x" ? "width" : "height";
  const span = (box, pad = 0) => [box[axis] - pad, box[axis] + box[size] + pad];
  const bands = [...shown].map((key) => span(foldedBox(view, key)));
  if (!bands.length) return (v) => v;
  const busy = [];
  for (const [id, box] of Object.entries(view.nodeBox)) {
    if (!view.rep[id]) busy.push(span(box, PAD));
  }
  for (const [name, box] of Object.entries(view.boxes)) {
    if (clusterHidden(view, name)) continue;
    const [from, to] = span(box);
    busy.push([from, from + PAD], [to - PAD, to]);           // its borders
    if (view.labels[name]) busy.push(span(view.labels[name], PAD));
  }
  for (const key of shown) busy.push(span(labelBox(view, key)));
  // Beyond everything shown, up to the drawing's edge, only arrows are left, between folded
  // boxes, going round what was there: that room goes too.
  const [from, to] = span(view.extent);
  bands.push([from, Math.min(...busy.map(([a]) => a))], [Math.max(...busy.map(([, b]) => b)), to]);
  const cuts = subtract(merge(bands), merge(busy)).filter(([a, b]) => b - a > GAP);
  return (v) => {
    let shift = 0;
    for (const [a, b] of cuts) {
      if (v >= b) shift += b - a - GAP;
      else if (v > a) return a - shift + (v - a) * GAP / (b - a);
      else break;
    }
    return v - shift;
  };
}

// Intervals [a, b]: merged into disjoint sorted ones; and the parts of one set not in another.
function merge(intervals) {
  const sorted = intervals.slice().sort((p, q) => p[0] - q[0]), out = [];
  for (const [a, b] of sorted) {
    if (out.length && a <= out[out.length - 1][1]) {
      out[out.length - 1][1] = Math.max(out[out.length - 1][1], b);
    } else {
      out.push([a, b]);
    }
  }
  return out;
}

function subtract(intervals, holes) {
  const out = [];
  for (let [a, b] of intervals) {
    for (const [c, d] of holes) {
      if (d <= a || c >= b) continue;
      if (c > a) out.push([a, c]);
      a = Math.max(a, d);
    }
    if (b > a) out.push([a, b]);
  }
  return out;
}

const PAIRS = /(-?[\d.]+(?:e[-+]?\d+)?),(-?[\d.]+(?:e[-+]?\d+)?)/g;   // "x,y" in a drawing

// Move every drawn coordinate by view.move: whole nodes, and the points of boxes and arrows,
// and the boxes' labels.
function redraw(view) {
  for (const {el, attr, original} of view.drawn) {
    if (attr === "points" || attr === "d") {
      el.setAttribute(attr, original.replace(PAIRS, (_, x, y) =>
        `${view.move.x(Number(x))},${view.move.y(Number(y))}`));
    } else {
      el.setAttribute(attr, view.move[attr](Number(original)));
    }
  }
  for (const [id, g] of Object.entries(view.nodes)) {
    const box = view.nodeBox[id], now = boxOf(view, id);
    const dx = now.x - box.x, dy = now.y - box.y;
    if (dx || dy) g.setAttribute("transform", `translate(${dx} ${dy})`);
    else g.removeAttribute("transform");
  }
}

// What is shown now, in the SVG's coordinates: the box that "fit" shows.
function contentBox(view) {
  const boxes = [];
  for (const id of Object.keys(view.nodes)) if (!view.rep[id]) boxes.push(boxOf(view, id));
  for (const [name, box] of Object.entries(view.boxes)) {
    if (!clusterHidden(view, name)) boxes.push(moved(view, box));
  }
  for (const {box} of view.folds.values()) boxes.push(box);
  // Arrows too: one rerouted to a folded box keeps graphviz's detour, which may pass outside
  // every box.
  for (const edge of view.edges) {
    const path = edge.el.querySelector("path");
    if (path && !edge.el.classList.contains("gone")) boxes.push(path.getBBox());
  }
  if (!boxes.length) return {...view.drawnSize};
  const box = unionBox(boxes), t = graphTransform(view), margin = 12;
  return {x: box.x + t.e - margin, y: box.y + t.f - margin, width: box.width + 2 * margin,
          height: box.height + 2 * margin};
}

// The lines of a folded box's label, their font size (the title's; the other lines are 0.85
// of it) and the room they take.
function foldedLabel(view, key) {
  const about = describeFold(view, key);
  const lines = [about.title].concat(about.lines, ["click to open"]);
  const box = foldedBox(view, key), longest = Math.max(...lines.map((line) => line.length));
  const size = Math.max(7, Math.min(14, (box.width - 8) / (0.6 * longest)));
  // The lines that count NaN and infinities are bold (red), as the title is.
  const bold = (i) => i === 0 || (i >= lines.length - 1 - about.alarms && i < lines.length - 1);
  const width = Math.max(...lines.map((line, i) =>
    textWidth(view, line, i === 0 ? size : size * 0.85, bold(i))));
  return {lines, size, width: width + 2 * PAD, height: 10 + lines.length * size * 1.3,
          flow: about.flow, alarms: about.alarms, bold};
}

// Where a folded box's label is, as drawn: at the middle of the box's top.
function labelBox(view, key) {
  const box = foldedBox(view, key), label = foldedLabel(view, key);
  return {x: box.x + (box.width - label.width) / 2, y: box.y, width: label.width,
          height: label.height};
}

// How wide a line of a folded box's label is drawn, measured by the browser (a bold title is
// wider than its letters counted); remembered, as the same lines are measured at every fold.
const widths = new Map();

function textWidth(view, line, size, bold) {
  const key = `${size} ${bold} ${line}`;
  if (!widths.has(key)) {
    const g = document.createElementNS(SVG_NS, "g"), text = document.createElementNS(SVG_NS, "text");
    g.setAttribute("class", "folded");
    text.setAttribute("font-size", size);
    if (bold) text.setAttribute("class", "title");
    text.textContent = line;
    g.appendChild(text);
    view.overlay.appendChild(g);
    widths.set(key, text.getComputedTextLength());
    g.remove();
  }
  return widths.get(key);
}

function drawFolded(view, key) {
  const box = view.folds.get(key).box, label = foldedLabel(view, key);
  const g = document.createElementNS(SVG_NS, "g");
  g.setAttribute("class", "folded");
  g.dataset.key = key;
  focusable(g, `open ${label.lines[0]}`);
  const rect = document.createElementNS(SVG_NS, "rect");
  for (const [name, value] of Object.entries(box)) rect.setAttribute(name, value);
  rect.setAttribute("rx", 6);
  if (label.flow && label.flow.fill) rect.style.fill = label.flow.fill;
  if (label.alarms) g.classList.add("nonfinite");
  g.appendChild(rect);
  label.lines.forEach((line, i) => {
    const text = document.createElementNS(SVG_NS, "text");
    if (i > 0 && label.bold(i)) text.classList.add("alarm");
    if (label.flow && label.flow.fill) text.style.fill = label.flow.ink;
    text.setAttribute("x", box.x + box.width / 2);
    text.setAttribute("y", box.y + 6 + (i + 0.9) * label.size * 1.3);
    text.setAttribute("font-size", i === 0 ? label.size : label.size * 0.85);
    if (i === 0) text.setAttribute("class", "title");
    text.textContent = line;
    g.appendChild(text);
  });
  view.overlay.appendChild(g);
}

// An arrow into or out of a folded box (or between two). graphviz drew it to a node now
// hidden somewhere in the room the box's module took, while the box is only as big as its
// label, at the top of that room. So the arrow keeps the stretch of graphviz's curve that is
// clear of the rooms of its folded ends, and straight lines aimed at a box's middle join that
// stretch to the box's border: a room holds nothing shown but its box, so such a line crosses
// no node, and the arrow neither stops short of the box nor runs into it. Clear means PAD
// away: the compaction can close a room up against an arrow that graphviz drew past it, and
// such an arrow would run along the box's border. An arrow into a box gets a small head.
function reroute(view, edge, from, to) {
  const path = edge.el.querySelector("path");
  if (!path) return;
  const curve = cubics(path.getAttribute("d")), steps = 32 * curve.length;
  const rooms = [from, to].filter((key) => key).map((key) => view.folds.get(key).room);
  const clear = (s) => {
    const p = pointAt(curve, s);
    return rooms.every((r) => p.x < r.x - PAD || p.x > r.x + r.width + PAD ||
      p.y < r.y - PAD || p.y > r.y + r.height + PAD);
  };
  // Steps of 1/32 of a piece find where the curve is clear; halving a step finds the border.
  const clearSteps = [];
  for (let k = 0; k <= steps; k++) if (clear(k / 32)) clearSteps.push(k);
  const first = clearSteps[0], last = clearSteps[clearSteps.length - 1];
  const fromBox = from && view.folds.get(from).box, toBox = to && view.folds.get(to).box;
  const point = (p) => `${p.x},${p.y}`;
  if (from && to && first === undefined) {   // two boxes side by side: a line between them
    path.setAttribute("d", `M${point(border(fromBox, middle(toBox)))}` +
                           `L${point(border(toBox, middle(fromBox)))}`);
  } else {
    let start = 0, end = curve.length;       // a shown node's end of the arrow stays
    if (from) {
      start = first === undefined ? end
        : edgeOf(clear, Math.max(0, first - 1) / 32, first / 32);
    }
    if (to) end = last === undefined ? 0 : edgeOf(clear, Math.min(steps, last + 1) / 32, last / 32);
    const kept = part(curve, start, end), a = kept[0][0], b = kept[kept.length - 1][3];
    path.setAttribute("d", (from ? `M${point(border(fromBox, a))}L` : "M") + point(a) +
      "C" + kept.flatMap((piece) => piece.slice(1)).map(point).join(" ") +
      (to ? `L${point(border(toBox, b))}` : ""));
  }
  if (to) drawHead(view, path);
}

// The pieces of an arrow as graphviz draws it ("Mp Cp p p p p p ..."): cubic Bézier curves,
// each its four points [{x, y}, ...], the last of one the first of the next. A place on the
// curve is a number s: piece floor(s), at s - floor(s) of the way along it (0 to 1).
function cubics(d) {
  const points = [...d.matchAll(PAIRS)].map(([, x, y]) => ({x: Number(x), y: Number(y)}));
  const pieces = [];
  for (let i = 0; i + 3 < points.length; i += 3) pieces.push(points.slice(i, i + 4));
  return pieces;
}

// A piece up to t, itself a cubic piece (de Casteljau): its last point is the piece's at t.
function firstPart([a, b, c, d], t) {
  const mix = (p, q) => ({x: p.x + (q.x - p.x) * t, y: p.y + (q.y - p.y) * t});
  const ab = mix(a, b), bc = mix(b, c), abc = mix(ab, bc);
  return [a, ab, abc, mix(abc, mix(bc, mix(c, d)))];
}

// A piece from t on: the first part of the piece run backwards.
function lastPart(piece, t) {
  return firstPart(piece.slice().reverse(), 1 - t).reverse();
}

function pointAt(curve, s) {
  const i = Math.min(Math.floor(s), curve.length - 1);
  return firstPart(curve[i], s - i)[3];
}

// The curve between the places a and b (a <= b): at least one piece, a point if a is b.
function part(curve, a, b) {
  const pieces = [];
  for (let i = Math.min(Math.floor(a), curve.length - 1); i < b || !pieces.length; i++) {
    const t0 = Math.max(0, a - i), t1 = Math.min(1, b - i);
    pieces.push(lastPart(firstPart(curve[i], t1), t1 > 0 ? t0 / t1 : 0));
  }
  return pieces;
}

// Where `test` turns true between the places `out` (false there) and `at` (true there).
function edgeOf(test, out, at) {
  for (let i = 0; i < 20; i++) {
    const s = (out + at) / 2;
    if (test(s)) at = s;
    else out = s;
  }
  return at;
}

function middle(box) {
  return {x: box.x + box.width / 2, y: box.y + box.height / 2};
}

// Where the line from the middle of `box` to the point `p` outside it crosses its border.
function border(box, p) {
  const m = middle(box), dx = p.x - m.x, dy = p.y - m.y;
  const f = Math.min(1, box.width / 2 / Math.abs(dx), box.height / 2 / Math.abs(dy));
  return {x: m.x + dx * f, y: m.y + dy * f};
}

// A small arrowhead at the end of `path`, pointing along its last few units.
function drawHead(view, path) {
  const length = path.getTotalLength();
  const tip = path.getPointAtLength(length), back = path.getPointAtLength(Math.max(0, length - 9));
  const angle = Math.atan2(tip.y - back.y, tip.x - back.x), w = 4;
  const left = [back.x + w * Math.sin(angle), back.y - w * Math.cos(angle)];
  const right = [back.x - w * Math.sin(angle), back.y + w * Math.cos(angle)];
  const head = document.createElementNS(SVG_NS, "path");
  head.setAttribute("class", "entry");
  head.setAttribute("d", `M${tip.x},${tip.y}L${left}L${right}Z`);
  view.overlay.appendChild(head);
}

// ------------------------------------------------------------------------------ the toolbar

const depthSelect = document.getElementById("depth");
const repeatsButton = document.getElementById("fold-repeats");

// The toolbar folds or opens the whole graph at once, which changes its size many times over:
// the view follows it (a click on one box folds it in place, where the reader is looking).
function refold(view) {
  applyFolding(view);
  fit(view);
}

function setUpToolbar() {
  const levels = new Set();
  for (const view of Object.values(views)) {
    for (const cluster of Object.values(view.info.clusters)) {
      if (cluster.kind === "module") levels.add(cluster.level);
    }
  }
  depthSelect.add(new Option("no modules", ""));
  for (const level of [...levels].sort((a, b) => a - b)) {
    depthSelect.add(new Option(`modules ${level} level${level === 1 ? "" : "s"} down`, level));
  }
  depthSelect.addEventListener("change", () => {
    const view = views[current], level = depthSelect.value;
    view.depth = level;
    view.collapsed = new Set(Object.entries(view.info.clusters)
      .filter(([, c]) => c.kind === "module" && String(c.level) === level).map(([name]) => name));
    refold(view);
  });
  repeatsButton.disabled = !Object.values(views).some((v) => v.info.repeats.length);
  repeatsButton.addEventListener("click", () => {
    const view = views[current];
    const allFolded = view.info.repeats.every((r) => view.folded.has(r.path));
    view.folded = new Set(allFolded ? [] : view.info.repeats.map((r) => r.path));
    refold(view);
  });
  document.getElementById("unfold").addEventListener("click", () => {
    const view = views[current];
    view.collapsed.clear();
    view.folded.clear();
    view.depth = depthSelect.value = "";
    refold(view);
  });
  document.getElementById("fit").addEventListener("click", () => fit(views[current]));
  document.getElementById("zoom-in").addEventListener("click", () => zoomCentre(1 / 1.25));
  document.getElementById("zoom-out").addEventListener("click", () => zoomCentre(1.25));
  for (const button of document.querySelectorAll(".views button")) {
    button.disabled = !views[button.dataset.view];
    if (button.disabled) button.title = data.missing;
    button.addEventListener("click", () => show(button.dataset.view));
  }
}

function updateFoldButtons() {
  const view = views[current];
  const all = view.info.repeats.length && view.info.repeats.every((r) => view.folded.has(r.path));
  repeatsButton.setAttribute("aria-pressed", all ? "true" : "false");
}

function show(name, focusIds) {
  if (!views[name]) return;
  current = name;
  for (const view of Object.values(views)) {
    view.picture.classList.toggle("inactive", view.name !== name);
  }
  for (const button of document.querySelectorAll(".views button")) {
    button.setAttribute("aria-pressed", button.dataset.view === name ? "true" : "false");
  }
  document.body.dataset.view = name;
  depthSelect.value = views[name].depth;
  updateFoldButtons();
  if (focusIds && focusIds.length) focus(views[name], focusIds);
  refreshMatches(!matchList.hidden);
}

// ------------------------------------------------------------------------------ selection

function clearSelection() {
  selected = null;
  for (const el of document.querySelectorAll(".selected, .linked")) {
    el.classList.remove("selected", "linked");
  }
  drawPanel('<p class="hint">Click a node to see its values and gradient.</p>');
}

function select(viewName, id) {
  selected = {view: viewName, id};
  setCursor(views[viewName], "node:" + id);
  markLinks();
  drawPanel(describe(viewName, id));
}

// Draw the panel anew. A button of the old panel that had the focus (an input's link, Enter
// on it) goes with it, and the focus would fall back to the page's body, from where Tab starts
// the page over. As WAI-ARIA's practices ask when the focused element goes, the focus goes
// where the reader went instead: to the part of the picture the panel is now about (the
// cursor, which select moved there), from where Tab comes back to the panel's links, so that
// Tab and Enter follow the inputs on.
function drawPanel(html) {
  const hadFocus = panel.contains(document.activeElement);
  panel.innerHTML = html;
  panel.scrollTop = 0;
  if (hadFocus) views[current].stop?.focus({preventScroll: true});
}

// The nodes of the other view tied to the selected one: a forward op's backward ops, a
// backward op's forward op, the forward tensor a saved value or a gradient belongs to.
function linksOf(viewName, id) {
  const node = data.views[viewName].nodes[id];
  if (viewName === "forward") return {view: "backward", ids: node.backward || []};
  const of = node.of || node.forward;
  return {view: "forward", ids: of ? [of] : []};
}

function markLinks() {
  for (const el of document.querySelectorAll(".selected, .linked")) {
    el.classList.remove("selected", "linked");
  }
  if (!selected) return;
  const view = views[selected.view];
  view.nodes[selected.id]?.classList.add("selected");
  const links = linksOf(selected.view, selected.id), other = views[links.view];
  if (!other) return;
  for (const id of links.ids) {
    other.nodes[id]?.classList.add("linked");
    if (other.rep[id]) {
      other.overlay.querySelector(`g.folded[data-key="${CSS.escape(other.rep[id])}"]`)
        ?.classList.add("linked");
    }
  }
  const node = view.info.nodes[selected.id];
  if (node.backward_box && other.clusters[node.backward_box]) {
    other.clusters[node.backward_box].classList.add("linked");
  }
}

// The numbers come written (summary.text), as the picture's label writes them: Python's
// "{:.4g}" of every value, nan or inf where there is one; the histogram is of the finite ones.
function stats(field, summary) {
  if (!summary) return '<p class="muted">none</p>';
  if (!summary.size) return '<p class="muted">empty</p>';
  const rows = ["norm", "min", "max", "mean"].map((key) =>
    `<tr><th>${key}</th><td data-field="${field}.${key}">${summary.text[key]}</td></tr>`);
  if (summary.nonfinite) {
    rows.push(`<tr><th>NaN or inf</th><td data-field="${field}.nonfinite">` +
              `${summary.nonfinite}</td></tr>`);
  }
  const chart = summary.hist ? histogram(field, summary.hist, summary.text) : "";
  return `<table class="stats">${rows.join("")}</table>` + chart;
}

// A small bar chart of how the finite values spread between their min and max.
function histogram(field, hist, text) {
  const width = 320, height = 54, most = Math.max(...hist.counts, 1);
  const bar = width / hist.counts.length;
  const bars = hist.counts.map((count, i) => {
    const h = count ? Math.max(1, (count / most) * (height - 14)) : 0;
    return `<rect x="${i * bar + 0.5}" y="${height - 12 - h}" width="${bar - 1}" height="${h}">` +
           `<title>${count} values</title></rect>`;
  }).join("");
  return `<svg class="histogram ${field === "grad" ? "gradient" : ""}" width="${width}" ` +
    `height="${height}" viewBox="0 0 ${width} ${height}" aria-label="histogram of the ${field}">` +
    `${bars}<text x="0" y="${height - 1}">${text.lo}</text>` +
    `<text x="${width}" y="${height - 1}" text-anchor="end">${text.hi}</text></svg>`;
}

const KINDS = {op: "op", param: "parameter", input: "input", constant: "constant",
               seed: "seed", saved: "saved forward value", gradient: "gradient"};

function describe(viewName, id) {
  const node = data.views[viewName].nodes[id], parts = [];
  parts.push(`<h2><span data-field="title">${esc(node.title)}</span>` +
             `<span class="kind">${KINDS[node.kind] || node.kind}</span></h2>`);
  if (node.module !== null && node.module !== undefined) {
    parts.push(`<p class="muted">made in <b>${esc(node.module || "(the root module)")}</b></p>`);
  }
  if (node.op) parts.push(`<pre class="doc" data-field="doc">${esc(data.docs[node.op])}</pre>`);
  if (node.note) parts.push(`<p class="note">${esc(node.note)}</p>`);
  if (node.value) {
    parts.push('<table class="stats">' +
      `<tr><th>${node.op ? "output shape" : "shape"}</th>` +
      `<td data-field="shape">${shapeText(node.value.shape)}</td></tr>` +
      `<tr><th>dtype</th><td data-field="dtype">${esc(node.value.dtype)}</td></tr></table>`);
    parts.push("<h3>value</h3>" + stats("value", node.value));
  }
  if (viewName === "forward" && "grad" in node) {
    parts.push("<h3>gradient dL/d(this)</h3>" + stats("grad", node.grad));
    parts.push(`<table class="stats"><tr><th>|grad| / |value|</th>` +
               `<td data-field="ratio">${node.ratio ?? "\u2014"}</td></tr></table>`);
  } else if (viewName === "forward" && data.missing) {
    parts.push(`<h3>gradient</h3><p class="muted">${esc(data.missing)}</p>`);
  }
  if (node.inputs.length) {
    parts.push("<h3>inputs</h3><ul>" + node.inputs.map((input) => {
      const other = data.views[viewName].nodes[input];
      return `<li><button type="button" class="link" data-goto="${esc(input)}">` +
        `${esc(other.title)}</button> ` +
        `<span class="muted">${other.value ? shapeText(other.value.shape) : ""}</span></li>`;
    }).join("") + "</ul>");
  }
  if (node.saved && node.saved.length) {
    parts.push("<h3>kept for backward (besides its inputs and output)</h3><ul>" +
      node.saved.map((s) => `<li>${esc(s.name)}: ${s.shape ? shapeText(s.shape) + " " +
        esc(s.dtype) : esc(s.value)}</li>`).join("") + "</ul>");
  }
  const links = linksOf(viewName, id);
  if (links.ids.length && views[links.view]) {
    const what = viewName === "forward"
      ? (links.ids.length === 1 ? "1 backward op computes its gradients"
                                : `${links.ids.length} backward ops compute its gradients`)
      : node.of ? "the backward of a forward op" : "a tensor of the forward graph";
    parts.push(`<h3>${links.view} graph</h3><p>${what} ` +
               `<button type="button" data-jump="${links.view}">show in the ${links.view} ` +
               "graph</button></p>");
  }
  return parts.join("\n");
}

panel.addEventListener("click", (event) => {
  const goto = event.target.closest("[data-goto]");
  if (goto) goTo(current, goto.dataset.goto);
  const jump = event.target.closest("[data-jump]");
  if (jump && selected) show(jump.dataset.jump, linksOf(selected.view, selected.id).ids);
});

function goTo(viewName, id) {
  if (viewName !== current) show(viewName);
  const view = views[viewName];
  if (view.rep[id]) reveal(view, id);
  select(viewName, id);
  focus(view, [id]);
}

// ------------------------------------------------------------------------------ search

const search = document.getElementById("search");
const matchList = document.getElementById("matches");

function findMatches(query) {
  const view = views[current], found = [];
  if (!query) return found;
  for (const [id, node] of Object.entries(view.info.nodes)) {
    const text = `${node.title} ${node.op || ""} ${node.module || ""}`.toLowerCase();
    if (text.includes(query)) found.push(id);
  }
  return found;
}

search.addEventListener("input", () => refreshMatches(true));

// Mark what the search box finds in the view shown, list it, and open the list if `open`
// (typing opens it; switching views keeps it as it was, so that a jump to the other graph
// does not drop the list over the nodes it went to).
function refreshMatches(open) {
  const view = views[current], query = search.value.trim().toLowerCase();
  const found = findMatches(query);
  for (const v of Object.values(views)) {
    for (const g of Object.values(v.nodes)) g.classList.remove("match");
  }
  for (const id of found) view.nodes[id]?.classList.add("match");
  matchList.replaceChildren();
  found.slice(0, 40).forEach((id, i) => {
    const node = view.info.nodes[id], item = document.createElement("div");
    item.textContent = node.title + (node.module ? `  \u2014 ${node.module}` : "");
    item.dataset.id = id;
    item.id = `match-${i}`;
    item.setAttribute("role", "option");
    matchList.appendChild(item);
  });
  showMatches(open && query && found.length);
  statusLine.textContent = query ? `${found.length} match${found.length === 1 ? "" : "es"}` : "";
}

// The list of matches, shown or not, with none of its items active.
function showMatches(shown) {
  matchList.hidden = !shown;
  // Under the search box, moved left as far as it must be to end inside the window.
  matchList.style.left = "0px";
  const right = document.documentElement.clientWidth - 8;
  const overflow = matchList.getBoundingClientRect().right - right;
  if (shown && overflow > 0) matchList.style.left = `${-overflow}px`;
  search.setAttribute("aria-expanded", shown ? "true" : "false");
  setActive(null);
}

// Mark the match the arrow keys are on (Enter opens it); the search box keeps the focus and
// tells a screen reader which item it is (aria-activedescendant).
function setActive(item) {
  matchList.querySelector(".active")?.classList.remove("active");
  for (const option of matchList.children) option.setAttribute("aria-selected", "false");
  if (!item) return search.removeAttribute("aria-activedescendant");
  item.classList.add("active");
  item.setAttribute("aria-selected", "true");
  search.setAttribute("aria-activedescendant", item.id);
  item.scrollIntoView({block: "nearest"});
}

search.addEventListener("keydown", (event) => {
  if ((event.key === "ArrowDown" || event.key === "ArrowUp") && !matchList.hidden) {
    event.preventDefault();        // the caret stays where it is
    const items = [...matchList.children], now = items.indexOf(matchList.querySelector(".active"));
    const step = event.key === "ArrowDown" ? 1 : -1;
    const next = now < 0 ? (step > 0 ? 0 : items.length - 1)
      : (now + step + items.length) % items.length;
    setActive(items[next]);
  } else if (event.key === "Enter") {
    const chosen = matchList.hidden ? null
      : matchList.querySelector(".active") || matchList.querySelector("div");
    if (chosen) goTo(current, chosen.dataset.id);
    showMatches(false);
  } else if (event.key === "Escape") {
    search.value = "";
    search.dispatchEvent(new Event("input"));
  }
});
matchList.addEventListener("click", (event) => {
  const item = event.target.closest("div[data-id]");
  if (item) goTo(current, item.dataset.id);
  showMatches(false);
});
document.addEventListener("keydown", (event) => {
  if (event.target === search) return;
  if (event.key === "/") {
    event.preventDefault();
    search.focus();
  } else if (event.key === "Escape") {
    clearSelection();
  } else if ((event.key === "+" || event.key === "=") && !event.target.closest("input, select")) {
    zoomCentre(1 / 1.25);
  } else if (event.key === "-" && !event.target.closest("input, select")) {
    zoomCentre(1.25);
  }
});

// ------------------------------------------------------------------------------ start

const started = performance.now();
for (const name of Object.keys(data.views)) views[name] = makeView(name);
setUpToolbar();
for (const view of Object.values(views)) {
  applyFolding(view);
  fit(view);
}
show(current);
if (data.missing) statusLine.textContent = `no backward graph: ${data.missing}`;
// For whoever measures the page (the tests): how long the script took to set it up.
document.body.dataset.ready = (performance.now() - started).toFixed(0);
