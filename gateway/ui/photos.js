// The photographs of one eye in the page: a card per photograph (thumbnail, name, remove
// button, verdict after grading) and the eye's large viewer, which shows one photograph at a
// time with its Grad-CAM picture. A photograph is {id, file, bitmap (null: the browser cannot
// show it), box (its fundus disc), result (its images[] entry), card}.
"use strict";

(() => {
  const DRG = (window.DRG = window.DRG || {});
  const THUMB_SIDE = 96;
  const PREVIEW_SIDE = 512;

  const field = (section, name) => section.querySelector(`[data-field="${name}"]`);
  const part = (card, name) => card.querySelector(`[data-part="${name}"]`);
  const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
    return `${Math.max(1, Math.round(bytes / 1024))} kB`;
  }

  function make(tag, className, text, name) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    if (name) node.dataset.part = name;
    return node;
  }

  // A card for ``photo``; ``onView`` and ``onRemove`` are called with the photograph.
  function buildCard(photo, onView, onRemove) {
    const card = make("li", "photo-card");
    const thumb = make("button", "thumb", undefined, "view");
    thumb.type = "button";
    thumb.setAttribute("aria-pressed", "false");
    thumb.append(make("span", "no-thumb", "No preview", "no-thumb"));
    thumb.addEventListener("click", () => onView(photo));
    const body = make("div", "photo-body");
    const title = make("p", "photo-name");
    title.append(make("strong", "", "", "number"), " ");
    title.append(make("span", "", `${photo.file.name} (${formatSize(photo.file.size)})`, "name"));
    const verdict = make("div", "verdict", undefined, "verdict");
    verdict.hidden = true;
    const decides = "Decides this eye (its worst gradable photograph)";
    const mark = make("p", "deciding-mark", decides, "deciding");
    mark.hidden = true;
    const warnings = make("ul", "warnings", undefined, "warnings");
    warnings.hidden = true;
    const quality = make("p", "quality", "", "quality");
    verdict.append(quality, make("p", "grade", "", "grade"), mark, warnings);
    const error = make("p", "photo-error", "", "error");
    error.hidden = true;
    const remove = make("button", "secondary remove", "Remove", "remove");
    remove.type = "button";
    remove.addEventListener("click", () => onRemove(photo));
    body.append(title, verdict, error, remove);
    card.append(thumb, body);
    photo.card = card;
    return card;
  }

  // Number the card (position ``index`` in its eye) and name its buttons for screen readers.
  function labelCard(eye, photo, index) {
    const card = photo.card;
    card.dataset.photo = String(index);
    part(card, "number").textContent = `Photograph ${index + 1}`;
    const name = `${eye}-eye photograph ${index + 1} (${photo.file.name})`;
    part(card, "view").setAttribute("aria-label", `Show ${name} in the viewer`);
    part(card, "remove").setAttribute("aria-label", `Remove ${name}`);
  }

  function drawThumb(photo) {
    if (!photo.bitmap) return;
    const canvas = make("canvas", "thumb-canvas");
    canvas.width = THUMB_SIDE;
    canvas.height = THUMB_SIDE;
    canvas.setAttribute("aria-hidden", "true");
    DRG.preview.drawSquare(canvas, photo.bitmap, photo.box);
    part(photo.card, "no-thumb").replaceWith(canvas);
  }

  function clearVerdict(photo) {
    photo.result = null;
    const card = photo.card;
    card.classList.remove("deciding", "failed");
    delete card.dataset.gradable;
    part(card, "verdict").hidden = true;
    part(card, "error").hidden = true;
    part(card, "error").textContent = "";
  }

  function markFailed(photo, text) {
    photo.card.classList.add("failed");
    part(photo.card, "error").textContent = text;
    part(photo.card, "error").hidden = false;
  }

  const heatmapOf = (photo) => {
    const encoded = photo && photo.result ? photo.result.heatmap_png_base64 : null;
    return typeof encoded === "string" && /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) ? encoded : null;
  };

  // Show ``photo`` (position ``index``) in the eye's viewer, or hide the viewer (null).
  function showInViewer(section, eye, photo, index, photos) {
    for (const other of photos) {
      part(other.card, "view").setAttribute("aria-pressed", String(other === photo));
      other.card.classList.toggle("selected", other === photo);
    }
    const viewer = field(section, "viewer");
    const canvas = field(section, "photo");
    const overlay = field(section, "overlay");
    const controls = field(section, "heatmap-controls");
    const encoded = heatmapOf(photo);
    viewer.hidden = !photo || (!photo.bitmap && !encoded);
    controls.hidden = !encoded;
    if (encoded) overlay.src = `data:image/png;base64,${encoded}`;
    else overlay.removeAttribute("src");
    if (!photo) return;
    const which = `Photograph ${index + 1} (${photo.file.name})`;
    canvas.hidden = !photo.bitmap;
    const label = `${capital(eye)}-eye photograph ${index + 1}, cropped to the fundus disc`;
    canvas.setAttribute("aria-label", label);
    const caption = field(section, "caption");
    if (photo.bitmap) {
      canvas.width = PREVIEW_SIDE;
      canvas.height = PREVIEW_SIDE;
      DRG.preview.drawSquare(canvas, photo.bitmap, photo.box);
      caption.textContent = `${which}: preview, cropped to the fundus disc as the model sees it.`;
    } else {
      caption.textContent = encoded
        ? `${which}: the gateway's picture of it, the model input with its Grad-CAM heat map.`
        : `${which}: no preview (DICOM and TIFF are read by the gateway).`;
    }
    const toggle = field(section, "heatmap-toggle");
    const slider = field(section, "opacity");
    slider.disabled = !photo.bitmap;
    if (!photo.bitmap) toggle.checked = true; // nothing else to show for this file
    field(section, "opacity-note").textContent = photo.bitmap
      ? "Blends the gateway's Grad-CAM picture over the photograph; at 100 % you see exactly " +
        "what the gateway returned."
      : "No browser preview of this file: the gateway's Grad-CAM picture is shown as returned.";
    applyHeatmap(section, photo);
  }

  function applyHeatmap(section, photo) {
    const overlay = field(section, "overlay");
    const toggle = field(section, "heatmap-toggle");
    const value = Number(field(section, "opacity").value);
    const alone = !photo || !photo.bitmap;
    field(section, "opacity-value").textContent = `${value} %`;
    overlay.style.opacity = alone ? "1" : String(value / 100);
    overlay.hidden = !toggle.checked || !overlay.getAttribute("src");
    overlay.classList.toggle("alone", alone);
  }

  DRG.photos = {
    buildCard,
    labelCard,
    drawThumb,
    clearVerdict,
    markFailed,
    showInViewer,
    applyHeatmap,
    formatSize,
  };
})();
