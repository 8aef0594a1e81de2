// Pixel analysis of a report screenshot: where the charts' plot areas are, and which series
// colours are drawn inside them. Plot areas are found from the image alone, the way a reader sees
// them: a frame (the plot-area border) drawn inside another frame (the chart's card).
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';

/** { width, height, data: RGBA bytes } */
export function readPng(path) {
  return PNG.sync.read(readFileSync(path));
}

export function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

const at = (img, x, y) => {
  const i = (y * img.width + x) * 4;
  return [img.data[i], img.data[i + 1], img.data[i + 2]];
};

/** Light blue-grey, as the report's borders are (#cbd5e1, #e2e8f0, and their anti-aliased blends with white). */
function isFramePixel([r, g, b]) {
  return r >= 190 && r <= 236 && b - r >= 8 && b - r <= 30 && g >= r && g <= b;
}

/** Page background (#f1f5f9) or card white: what lies between borders, never on one. */
function isBlank([r, g, b]) {
  return (r >= 250 && g >= 250 && b >= 250) || (Math.abs(r - 241) <= 3 && Math.abs(g - 245) <= 3 && Math.abs(b - 249) <= 3);
}

/**
 * Vertical frame lines at least `minLength` px long: [{ x, y0, y1 }]. A curve that starts or ends
 * on a plot's border covers parts of it, so a line is a run of non-blank pixels of which at least
 * half are frame pixels.
 */
function verticalLines(img, minLength) {
  const lines = [];
  for (let x = 0; x < img.width; x++) {
    let start = -1;
    let frame = 0;
    for (let y = 0; y <= img.height; y++) {
      const px = y < img.height ? at(img, x, y) : [255, 255, 255];
      if (!isBlank(px)) {
        if (start < 0) {
          start = y;
          frame = 0;
        }
        if (isFramePixel(px)) frame++;
        continue;
      }
      if (start >= 0 && y - start >= minLength && frame >= 0.5 * (y - start)) lines.push({ x, y0: start, y1: y - 1 });
      start = -1;
    }
  }
  // An anti-aliased 1-px line can cover two columns: keep one.
  return lines.filter((l) => !lines.some((o) => o.x === l.x - 1 && Math.abs(o.y0 - l.y0) <= 2 && Math.abs(o.y1 - l.y1) <= 2));
}

/** Boxes framed by a left and a right line of the same vertical extent. */
function frames(img, minLength) {
  const lines = verticalLines(img, minLength);
  const boxes = [];
  for (const left of lines) {
    // The nearest matching line to the right closes the box.
    const right = lines
      .filter((r) => r.x > left.x + minLength && Math.abs(r.y0 - left.y0) <= 3 && Math.abs(r.y1 - left.y1) <= 3)
      .sort((a, b) => a.x - b.x)[0];
    if (right) boxes.push({ x0: left.x, x1: right.x, y0: Math.max(left.y0, right.y0), y1: Math.min(left.y1, right.y1) });
  }
  return boxes;
}

const inside = (inner, outer) => inner !== outer && inner.x0 > outer.x0 && inner.x1 < outer.x1 && inner.y0 > outer.y0 && inner.y1 < outer.y1;

/** Plot areas: frames inside another frame, in reading order (top to bottom, left to right). */
export function plotAreas(img, minLength = 100) {
  const boxes = frames(img, minLength);
  return boxes
    .filter((b) => boxes.some((outer) => inside(b, outer)))
    .sort((a, b) => (Math.abs(a.y0 - b.y0) > 10 ? a.y0 - b.y0 : a.x0 - b.x0));
}

/**
 * Pixels of a colour strictly inside a box (2 px inset, so the frame never counts), and how many
 * of the box's columns have one: a curve across the plot covers most columns; a legend swatch or
 * a stray dot does not.
 */
export function colourIn(img, box, rgb, tolerance = 40) {
  let pixels = 0;
  const columns = new Set();
  for (let y = box.y0 + 2; y <= box.y1 - 2; y++) {
    for (let x = box.x0 + 2; x <= box.x1 - 2; x++) {
      const [r, g, b] = at(img, x, y);
      if (Math.abs(r - rgb[0]) + Math.abs(g - rgb[1]) + Math.abs(b - rgb[2]) <= tolerance) {
        pixels++;
        columns.add(x);
      }
    }
  }
  return { pixels, columnShare: columns.size / (box.x1 - box.x0 - 3) };
}
