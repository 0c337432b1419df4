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
