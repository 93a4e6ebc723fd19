// The pages' one DOM helper: elements built from a tag, attributes and children, never from HTML
// strings (text stays text, so nothing from the API can inject markup).

const SVG_NS = "http://www.w3.org/2000/svg";

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** An HTML element with attributes and children (strings become text; null children are left out). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

/** An SVG element with attributes (numbers are rounded to 0.1 to keep the markup small). */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, typeof v === "number" ? String(Math.round(v * 10) / 10) : v);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}
