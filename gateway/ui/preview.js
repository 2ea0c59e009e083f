// Browser previews of the photographs, cropped as the gateway crops them: the fundus disc
// (rows/columns whose brightest channel exceeds the black-border threshold), centred in a
// square. The Grad-CAM PNG the gateway returns is the model input cropped by the same rule, so
// it lies exactly over this preview.
"use strict";

(() => {
  const DRG = (window.DRG = window.DRG || {});
  const CROP_THRESHOLD = 10; // fundus PreprocessConfig.crop_threshold default

  // The decoded photograph, or null when the browser cannot show it (DICOM, most TIFF).
  async function decode(file) {
    try {
      return await createImageBitmap(file, { imageOrientation: "none" });
    } catch (error) {
      if (!(error instanceof TypeError)) return null;
      try {
        return await createImageBitmap(file);
      } catch {
        return null;
      }
    }
  }

  // Bounding box of the fundus disc, found on a copy at most 256 px wide (as fundus/ does).
  function discBox(bitmap) {
    const width = bitmap.width;
    const height = bitmap.height;
    const scale = Math.min(1, 256 / Math.max(width, height));
    const w = Math.max(1, Math.round(width * scale));
    const h = Math.max(1, Math.round(height * scale));
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0, w, h);
    const pixels = context.getImageData(0, 0, w, h).data;
    const rows = new Uint32Array(h);
    const cols = new Uint32Array(w);
    for (let y = 0; y < h; y += 1) {
      for (let x = 0; x < w; x += 1) {
        const i = (y * w + x) * 4;
        if (Math.max(pixels[i], pixels[i + 1], pixels[i + 2]) > CROP_THRESHOLD) {
          rows[y] += 1;
          cols[x] += 1;
        }
      }
    }
    const first = (counts, min) => counts.findIndex((c) => c >= min);
    const last = (counts, min) => {
      for (let i = counts.length - 1; i >= 0; i -= 1) if (counts[i] >= min) return i;
      return -1;
    };
    const minRow = Math.max(2, 0.02 * w);
    const minCol = Math.max(2, 0.02 * h);
    const y0 = first(rows, minRow);
    const x0 = first(cols, minCol);
    if (y0 < 0 || x0 < 0) return { x: 0, y: 0, w: width, h: height };
    const y1 = last(rows, minRow) + 1;
    const x1 = last(cols, minCol) + 1;
    const left = Math.max(0, Math.floor(x0 / scale));
    const top = Math.max(0, Math.floor(y0 / scale));
    const right = Math.min(width, Math.ceil(x1 / scale));
    const bottom = Math.min(height, Math.ceil(y1 / scale));
    return { x: left, y: top, w: right - left, h: bottom - top };
  }

  // Draw the disc box of ``bitmap`` centred in the square ``canvas`` on black.
  function drawSquare(canvas, bitmap, box) {
    const context = canvas.getContext("2d");
    context.fillStyle = "#000";
    context.fillRect(0, 0, canvas.width, canvas.height);
    const side = Math.max(box.w, box.h);
    const scale = canvas.width / side;
    const dx = ((side - box.w) / 2) * scale;
    const dy = ((side - box.h) / 2) * scale;
    context.imageSmoothingQuality = "high";
    context.drawImage(bitmap, box.x, box.y, box.w, box.h, dx, dy, box.w * scale, box.h * scale);
  }

  DRG.preview = { decode, discBox, drawSquare };
})();
