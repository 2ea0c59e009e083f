// Clinician page of the DR grading gateway: plain browser JavaScript, no framework, no CDN.
// Classic scripts sharing window.DRG, loaded in order: messages.js (texts), shell.js (API key,
// alerts, service state), preview.js (disc crop), render.js (results), photos.js (cards and
// viewer), app.js (this file: the photographs of each eye, grading, errors, start).
//
// Each eye takes one to MAX_PER_EYE photographs (add, remove); Grade sends them all to
// POST /v1/exams?explain=true as repeated `right` / `left` fields (one eye may be absent: the
// patient result then names it). Each photograph's verdict appears on its card in its eye's
// panel, the deciding one marked; the large viewer shows one photograph at a time (its card's
// thumbnail chooses which) with its Grad-CAM picture stacked on the browser's preview, cropped
// by the same rule (preview.js); the opacity slider blends the two. When the browser cannot
// show the file (DICOM, TIFF) the gateway's picture is shown alone.
//
// Server text is only ever put into the page with textContent. The API key, when the gateway
// asks for one, lives in sessionStorage (this tab only).
"use strict";

(() => {
  const DRG = window.DRG;
  const EYES = ["right", "left"];
  const CLIENT_TIMEOUT_MS = 90000;
  // The gateway's default DRG_MAX_IMAGES_PER_EYE; no endpoint publishes the setting. A gateway
  // set lower answers 413 too_many_images naming its limit, which the page then adopts.
  const MAX_PER_EYE = 4;

  const state = {
    maxPerEye: MAX_PER_EYE,
    eyes: { right: { photos: [], selected: null }, left: { photos: [], selected: null } },
    nextId: 1,
    version: 0, // bumped by every change of the photographs: a late answer is then stale
    busy: false,
    scaleLoading: null,
  };

  const byId = (id) => document.getElementById(id);
  const eyeSection = (eye) => byId(`eye-${eye}`);
  const field = (eye, name) => eyeSection(eye).querySelector(`[data-field="${name}"]`);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  // ---------------------------------------------------------------- grading scale

  async function fetchScale() {
    try {
      const response = await fetch("/v1/grading-scale", {
        headers: { Accept: "application/json" },
      });
      const body = await response.json().catch(() => null);
      if (response.ok && body && Array.isArray(body.grades)) DRG.scale = body;
    } catch {
      // Unreachable gateway: grades show as numbers; the next grading asks again.
    }
  }

  function loadScale() {
    if (DRG.scale) return Promise.resolve();
    if (!state.scaleLoading) {
      state.scaleLoading = fetchScale().finally(() => {
        state.scaleLoading = null;
      });
    }
    return state.scaleLoading;
  }

  const { storedKey, storeKey, currentKey, showAuth, showAlert, hideAlert, setStatus } = DRG.shell;
  const { retryText, refreshService } = DRG.shell;

  function showEyeError(eye, text) {
    const box = field(eye, "error");
    box.textContent = text;
    box.hidden = false;
  }

  function hideEyeError(eye) {
    field(eye, "error").hidden = true;
    field(eye, "error").textContent = "";
  }

  // ---------------------------------------------------------------- photographs

  const photosOf = (eye) => state.eyes[eye].photos;

  function select(eye, photo) {
    state.eyes[eye].selected = photo;
    const index = photo ? photosOf(eye).indexOf(photo) : -1;
    DRG.photos.showInViewer(eyeSection(eye), eye, photo, index, photosOf(eye));
  }

  // Any change of the photographs: earlier results no longer describe them.
  function clearResults() {
    state.version += 1;
    for (const eye of EYES) {
      hideEyeError(eye);
      DRG.render.hideEye(eyeSection(eye));
      for (const photo of photosOf(eye)) DRG.photos.clearVerdict(photo);
      field(eye, "heatmap-toggle").checked = false;
      select(eye, state.eyes[eye].selected);
    }
    DRG.render.hidePatient();
    hideAlert();
  }

  function refreshList(eye) {
    const photos = photosOf(eye);
    photos.forEach((photo, index) => DRG.photos.labelCard(eye, photo, index));
    field(eye, "photos").hidden = photos.length === 0;
    const room = state.maxPerEye - photos.length;
    field(eye, "count").textContent =
      photos.length === 0
        ? `No photograph yet (up to ${state.maxPerEye}).`
        : `${plural(photos.length, "photograph")} of at most ${state.maxPerEye}` +
          (room > 0 ? "." : ": remove one to add another.");
  }

  async function addPhotos(eye, files) {
    if (state.busy) {
      setStatus("Wait for the grading to finish before changing the photographs.");
      return;
    }
    clearResults();
    const room = Math.max(0, state.maxPerEye - photosOf(eye).length);
    const taken = Array.from(files).slice(0, room);
    const refused = files.length - taken.length;
    const added = [];
    for (const file of taken) {
      const photo = { id: state.nextId, file, bitmap: null, box: null, result: null, card: null };
      state.nextId += 1;
      photosOf(eye).push(photo);
      const card = DRG.photos.buildCard(
        photo,
        (p) => select(eye, p),
        (p) => removePhoto(eye, p)
      );
      field(eye, "photos").append(card);
      added.push(photo);
    }
    refreshList(eye);
    let message = added.length
      ? `${plural(added.length, "photograph")} added to the ${eye} eye.`
      : "";
    if (refused > 0) {
      const text =
        `At most ${state.maxPerEye} photographs per eye: ${plural(refused, "file")} not added. ` +
        "Remove a photograph to add another.";
      showEyeError(eye, text);
      message = `${message} ${text}`.trim();
    }
    setStatus(message);
    if (added.length) select(eye, added[added.length - 1]);
    for (const photo of added) {
      photo.bitmap = await DRG.preview.decode(photo.file);
      if (!photosOf(eye).includes(photo)) {
        if (photo.bitmap) photo.bitmap.close();
        continue;
      }
      if (photo.bitmap) photo.box = DRG.preview.discBox(photo.bitmap);
      DRG.photos.drawThumb(photo);
      if (state.eyes[eye].selected === photo) select(eye, photo);
    }
  }

  function removePhoto(eye, photo) {
    if (state.busy) {
      setStatus("Wait for the grading to finish before changing the photographs.");
      return;
    }
    const photos = photosOf(eye);
    const index = photos.indexOf(photo);
    if (index < 0) return;
    photos.splice(index, 1);
    photo.card.remove();
    if (photo.bitmap) photo.bitmap.close();
    const next = photos[Math.min(index, photos.length - 1)] || null;
    if (state.eyes[eye].selected === photo) state.eyes[eye].selected = next;
    clearResults();
    refreshList(eye);
    setStatus(`Photograph ${index + 1} (${photo.file.name}) was removed from the ${eye} eye.`);
    if (next) next.card.querySelector("[data-part='remove']").focus();
    else byId(`file-${eye}`).focus();
  }

  function clearEye(eye) {
    for (const photo of photosOf(eye)) {
      photo.card.remove();
      if (photo.bitmap) photo.bitmap.close();
    }
    state.eyes[eye].photos = [];
    state.eyes[eye].selected = null;
    byId(`file-${eye}`).value = "";
    refreshList(eye);
  }

  function bindDropzone(eye) {
    const zone = eyeSection(eye).querySelector("[data-drop]");
    const input = byId(`file-${eye}`);
    input.addEventListener("change", () => {
      const files = Array.from(input.files || []);
      input.value = ""; // the same file may be chosen again later
      if (files.length) addPhotos(eye, files);
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = state.busy ? "none" : "copy";
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      const files = event.dataTransfer.files;
      if (files && files.length) addPhotos(eye, Array.from(files));
    });
  }

  // ---------------------------------------------------------------- errors

  // "right[1]: detail" (exams) or "image: detail" -> the photograph it is about, or null.
  function photoOfMessage(message) {
    const match = /^(left|right)(?:\[(\d+)\])?: ([\s\S]*)$/.exec(message);
    if (!match) return null;
    const eye = match[1];
    const index = match[2] === undefined ? 0 : Number(match[2]);
    const photo = photosOf(eye)[index];
    return photo ? { eye, index, photo, detail: match[3] } : null;
  }

  function tooMany(message) {
    const match = /at most (\d+) photographs/.exec(message);
    if (match) state.maxPerEye = Math.max(1, Number(match[1]));
    const over = EYES.filter((eye) => photosOf(eye).length > state.maxPerEye);
    for (const eye of EYES) {
      refreshList(eye);
      if (over.includes(eye)) {
        const extra = plural(photosOf(eye).length - state.maxPerEye, "photograph");
        showEyeError(
          eye,
          `This gateway takes at most ${state.maxPerEye} photographs per eye: remove ${extra}.`
        );
      }
    }
    showAlert(
      `This gateway accepts at most ${state.maxPerEye} photographs per eye. Remove photographs ` +
        `from the ${over.join(" and ") || "fuller"} eye, then press Grade again.`
    );
  }

  function handleError(response, body) {
    const error = body && body.error ? body.error : null;
    const code = error ? error.code : null;
    const message = error && typeof error.message === "string" ? error.message : "";
    const requestId = response.headers.get("X-Request-ID") || "";
    const reference = requestId ? ` (reference ${requestId})` : "";
    setStatus("Grading failed.");
    if (code === "unauthorized" || code === "forbidden") {
      const key = currentKey();
      if (code === "forbidden") {
        showAuth("This API key may not grade images. Enter a key with the grade scope.");
        showAlert(`Not allowed: ${DRG.REQUEST_ERRORS.forbidden}`);
      } else {
        showAuth(
          key
            ? "The API key was not accepted. Check it, then press Grade again."
            : "This grading service needs an API key. Enter it, then press Grade again."
        );
        showAlert(
          key
            ? "Authentication failed: the API key was not accepted."
            : "Authentication needed: enter your API key."
        );
      }
      byId("api-key").focus();
      return;
    }
    if (code === "too_many_images") {
      tooMany(message);
      return;
    }
    if (code && DRG.IMAGE_ERRORS[code]) {
      const named = photoOfMessage(message);
      const detail = named ? named.detail : message;
      const text = `${DRG.IMAGE_ERRORS[code]}${detail ? ` Details: ${detail}` : ""}`;
      if (named) {
        const which = `${named.eye}-eye photograph ${named.index + 1} (${named.photo.file.name})`;
        DRG.photos.markFailed(named.photo, text);
        const sentence = DRG.IMAGE_ERRORS[code];
        showEyeError(named.eye, `Photograph ${named.index + 1} cannot be graded: ${sentence}`);
        select(named.eye, named.photo);
        showAlert(
          `The ${which} cannot be graded: ${sentence} Replace or remove it, then press Grade again.`
        );
      } else {
        showAlert(`A file cannot be graded: ${text}`);
      }
      return;
    }
    let text = (code && DRG.REQUEST_ERRORS[code]) || null;
    if (!text) {
      if (response.status === 401) text = DRG.REQUEST_ERRORS.unauthorized;
      else if (response.status === 503 || response.status === 429) {
        text = DRG.REQUEST_ERRORS.overloaded;
      }
      else if (response.status === 504) text = DRG.REQUEST_ERRORS.request_timeout;
      else if (response.status === 413) text = DRG.REQUEST_ERRORS.payload_too_large;
      else text = `The gateway answered with an error (HTTP ${response.status}).`;
    }
    if (DRG.RETRY_LATER.has(code) || (!code && response.status >= 502)) text += retryText(response);
    if (DRG.SUPPORT.has(code) || !code) text += ` If this persists, contact support${reference}.`;
    showAlert(text);
    refreshService();
  }

  // ---------------------------------------------------------------- grading

  function setBusy(busy, message) {
    state.busy = busy;
    // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
    byId("grade-button").setAttribute("aria-disabled", String(busy));
    byId("progress").hidden = !busy;
    document.querySelector(".eyes").setAttribute("aria-busy", String(busy));
    for (const eye of EYES) byId(`file-${eye}`).disabled = busy;
    if (message) setStatus(message);
  }

  function showResults(body) {
    const summaries = [];
    for (const eye of EYES) {
      const result = body[eye];
      const photos = photosOf(eye);
      if (result && Array.isArray(result.images)) {
        photos.forEach((photo, index) => {
          photo.result = result.images[index];
          const decides = index === result.deciding_image;
          if (photo.result) DRG.render.renderPhoto(photo.card, photo.result, decides);
        });
        DRG.render.renderEye(eyeSection(eye), result, photos.map((photo) => photo.file.name));
        const deciding = photos[result.deciding_image];
        select(eye, deciding || photos[0] || null);
      }
      summaries.push(DRG.render.eyeSummary(eye, result));
    }
    DRG.render.renderPatient(body.patient);
    DRG.render.renderMeta(body);
    setStatus(`Graded. ${summaries.join(" ")} Patient: ${body.patient.summary}`);
    byId("patient-title").focus();
  }

  async function grade(event) {
    event.preventDefault();
    if (state.busy) return;
    const eyes = EYES.filter((eye) => photosOf(eye).length);
    clearResults();
    if (eyes.length === 0) {
      showAlert("Add at least one photograph (right or left eye) first.");
      setStatus("Nothing to grade yet.");
      byId("file-right").focus();
      return;
    }
    const form = new FormData();
    let bytes = 0;
    let count = 0;
    for (const eye of eyes) {
      for (const photo of photosOf(eye)) {
        form.append(eye, photo.file, photo.file.name);
        bytes += photo.file.size;
        count += 1;
      }
    }
    const version = state.version;
    const which = eyes.length === 2 ? "both eyes" : `the ${eyes[0]} eye`;
    const size = DRG.photos.formatSize(bytes);
    setBusy(true, `Grading ${which}: ${plural(count, "photograph")} (${size})…`);
    const headers = { Accept: "application/json" };
    const key = currentKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), CLIENT_TIMEOUT_MS);
    let response;
    let body = null;
    try {
      response = await fetch("/v1/exams?explain=true", {
        method: "POST",
        body: form,
        headers,
        signal: controller.signal,
        credentials: "same-origin",
        cache: "no-store",
      });
      body = await response.json().catch(() => null);
    } catch (error) {
      setBusy(false, "Grading failed.");
      showAlert(
        error && error.name === "AbortError"
          ? "No answer from the grading service within 90 s. Try again later."
          : "Cannot reach the grading gateway. Check the network connection and try again."
      );
      refreshService();
      return;
    } finally {
      clearTimeout(timeout);
    }
    await loadScale(); // the names for the results (normally loaded at start)
    setBusy(false);
    if (key && response.status !== 401 && response.status !== 403) storeKey(key); // accepted
    if (key && response.status === 401) storeKey(""); // a rejected key is not kept
    if (state.version !== version) {
      setStatus("The photographs changed while grading; press Grade again.");
      return;
    }
    if (!response.ok || body === null || !body.patient) {
      handleError(response, body);
      return;
    }
    showResults(body);
  }

  function clearAll() {
    if (state.busy) return;
    for (const eye of EYES) clearEye(eye);
    clearResults();
    setStatus("Cleared. Add photographs of one or both eyes, then press Grade.");
    byId("file-right").focus();
  }

  // ---------------------------------------------------------------- start

  function start() {
    for (const eye of EYES) {
      bindDropzone(eye);
      refreshList(eye);
      const redraw = () => DRG.photos.applyHeatmap(eyeSection(eye), state.eyes[eye].selected);
      field(eye, "heatmap-toggle").addEventListener("change", redraw);
      field(eye, "opacity").addEventListener("input", redraw);
    }
    // A file dropped beside the boxes must not replace the page.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
    byId("exam-form").addEventListener("submit", grade);
    byId("clear-button").addEventListener("click", clearAll);
    const keyInput = byId("api-key");
    const saved = storedKey();
    if (saved) {
      keyInput.value = saved;
      showAuth("Using the API key saved in this tab.");
    }
    byId("forget-key").addEventListener("click", () => {
      keyInput.value = "";
      storeKey("");
      setStatus("The API key was forgotten.");
      keyInput.focus();
    });
    document.body.dataset.ready = "true";
    loadScale();
    refreshService();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
