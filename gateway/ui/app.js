// Clinician page of the DR grading gateway: plain browser JavaScript, no framework, no CDN.
//
// Two eyes chosen -> POST /v1/exams?explain=true (per-eye results + patient-level referral);
// one eye -> POST /v1/grade?explain=true&laterality=R|L. Server text is only ever put into the
// page with textContent (never parsed as HTML). The API key, when the gateway asks for one, lives in
// sessionStorage (this tab only).
//
// Heat map: the gateway returns a PNG of the model input (the photograph cropped to the fundus
// disc and padded square) with its Grad-CAM already blended in. The page draws the uploaded
// photograph cropped the same way (same rule: brightest channel above the black-border
// threshold, centred square) into a canvas and stacks that PNG on top; the opacity slider sets
// the PNG's opacity (0 % = the photograph alone, 100 % = exactly the gateway's picture). When
// the browser cannot show the file (DICOM, TIFF) the PNG is shown alone and the slider is off.
//
// Grade names come from the gateway (GET /v1/grading-scale, contract/grades.py), never from a
// copy here; should that answer be missing, grades show as numbers only.
"use strict";

(() => {
  const EYES = ["right", "left"];
  const KEY_STORAGE = "drg.apiKey";
  const CLIENT_TIMEOUT_MS = 90000;
  const PREVIEW_SIDE = 512;
  const CROP_THRESHOLD = 10; // fundus PreprocessConfig.crop_threshold default
  const ACTION_TEXT = {
    rescreen_12_months: "Rescreen in 12 months",
    refer_routine: "Refer to an ophthalmologist (routine)",
    refer_soon: "Refer to an ophthalmologist soon (within weeks)",
    refer_urgent: "Urgent referral (within days)",
    retake_or_refer_in_person: "Retake the photograph, or refer for an in-person examination",
  };
  const REASON_TEXT = {
    no_fundus_disc: "does not look like a fundus photograph",
    too_dark: "too dark",
    overexposed: "over-exposed",
    blurred: "out of focus",
    low_resolution: "resolution too low",
  };
  // Errors about one uploaded file: shown on that eye. Every code of gateway/errors.py that the
  // grading routes can answer has a sentence here (a unit test keeps the two in step).
  const IMAGE_ERRORS = {
    empty_input: "The file is empty.",
    invalid_image: "The image cannot be used.",
    unsupported_format: "This file is not a JPEG, PNG, TIFF or DICOM image.",
    corrupt_image: "The file is damaged or incomplete (truncated). Export or copy it again.",
    image_too_large: "The image is too large (too many bytes or pixels).",
    image_too_small: "The image is too small to grade: send the original full-resolution photograph.",
    dicom_no_pixel_data: "The DICOM file holds no image.",
    dicom_unsupported_transfer_syntax:
      "This DICOM compression is not supported: export it uncompressed or as baseline JPEG.",
    dicom_unsupported_sop_class: "This DICOM object is not a photograph.",
    dicom_unsupported_image: "This DICOM image layout is not supported (for example multi-frame).",
  };
  const REQUEST_ERRORS = {
    malformed_request: "The gateway could not read the upload. Reload the page and try again.",
    missing_field: "The upload was incomplete. Reload the page and try again.",
    unsupported_media_type: "The gateway could not read the upload. Reload the page and try again.",
    payload_too_large: "The files are larger than this gateway accepts.",
    invalid_parameter: "The gateway refused a setting of this page. Reload the page and try again.",
    not_found: "This gateway does not offer grading at this address.",
    method_not_allowed: "This gateway does not offer grading at this address.",
    unauthorized: "This grading service needs a valid API key.",
    forbidden: "This API key is not allowed to grade images: use a key with the grade scope.",
    overloaded: "The grading service is busy.",
    backend_overloaded: "The grading service is busy.",
    not_ready: "The grading service is starting up or not ready.",
    backend_unavailable: "The model server cannot be reached right now.",
    model_unavailable: "The model is not available right now (it may be loading or updating).",
    model_mismatch: "The grading service is misconfigured (model mismatch).",
    request_timeout: "Grading took too long and was stopped.",
    backend_timeout: "The model server did not answer in time.",
    backend_rejected_input: "The model server rejected the image.",
    backend_error: "The model server failed.",
    internal_error: "The gateway failed unexpectedly.",
  };
  const RETRY_LATER = new Set([
    "overloaded",
    "backend_overloaded",
    "not_ready",
    "backend_unavailable",
    "model_unavailable",
    "request_timeout",
    "backend_timeout",
  ]);
  const SUPPORT = new Set(["model_mismatch", "backend_rejected_input", "backend_error", "internal_error"]);

  const state = {
    scale: null, // the gateway's GET /v1/grading-scale answer
    scaleLoading: null,
    files: { right: null, left: null },
    generation: { right: 0, left: 0 },
    preview: { right: false, left: false },
    busy: false,
    timer: null,
  };

  const byId = (id) => document.getElementById(id);
  const eyeSection = (eye) => byId(`eye-${eye}`);
  const field = (eye, name) => eyeSection(eye).querySelector(`[data-field="${name}"]`);
  const eyeName = (eye) => (eye === "right" ? "right" : "left");
  const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);
  const percent = (p) => `${(p * 100).toFixed(1)} %`;

  function setText(element, text) {
    element.textContent = text;
  }

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
    return `${Math.max(1, Math.round(bytes / 1024))} kB`;
  }

  // ---------------------------------------------------------------- grading scale

  async function fetchScale() {
    try {
      const response = await fetch("/v1/grading-scale", {
        headers: { Accept: "application/json" },
      });
      const body = await response.json().catch(() => null);
      if (response.ok && body && Array.isArray(body.grades)) state.scale = body;
    } catch {
      // Unreachable gateway: grades show as numbers; the next grading asks again.
    }
  }

  function loadScale() {
    if (state.scale) return Promise.resolve();
    if (!state.scaleLoading) {
      state.scaleLoading = fetchScale().finally(() => {
        state.scaleLoading = null;
      });
    }
    return state.scaleLoading;
  }

  const scaleGrade = (grade) => (state.scale && state.scale.grades[grade]) || null;

  function gradeName(grade) {
    const entry = scaleGrade(grade);
    return entry ? String(entry.name) : "";
  }

  // ---------------------------------------------------------------- API key (session only)

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  function storeKey(value) {
    try {
      if (value) sessionStorage.setItem(KEY_STORAGE, value);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // Storage refused (private mode): the key then lives in the field only.
    }
  }

  function currentKey() {
    return byId("api-key").value.trim() || storedKey();
  }

  function showAuth(hint) {
    byId("auth").hidden = false;
    if (hint) setText(byId("auth-hint"), hint);
  }

  // ---------------------------------------------------------------- messages

  function showAlert(text) {
    const alert = byId("alert");
    setText(alert, text);
    alert.hidden = false;
  }

  function hideAlert() {
    const alert = byId("alert");
    alert.hidden = true;
    setText(alert, "");
  }

  function setStatus(text) {
    setText(byId("status"), text);
  }

  function showEyeError(eye, text) {
    const box = field(eye, "error");
    setText(box, text);
    box.hidden = false;
  }

  function hideEyeError(eye) {
    const box = field(eye, "error");
    box.hidden = true;
    setText(box, "");
  }

  // ---------------------------------------------------------------- preview (disc crop)

  async function decodeBitmap(file) {
    try {
      return await createImageBitmap(file, { imageOrientation: "none" });
    } catch (error) {
      if (error instanceof TypeError) return createImageBitmap(file);
      throw error;
    }
  }

  // Bounding box of the fundus disc: rows/columns with enough pixels whose brightest channel
  // exceeds the black-border threshold, found on a copy at most 256 px wide (as fundus/ does).
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

  async function showPreview(eye, file, generation) {
    const viewer = field(eye, "viewer");
    const canvas = field(eye, "photo");
    canvas.width = PREVIEW_SIDE;
    canvas.height = PREVIEW_SIDE;
    let bitmap = null;
    try {
      bitmap = await decodeBitmap(file);
    } catch {
      bitmap = null;
    }
    if (generation !== state.generation[eye]) return;
    viewer.hidden = false;
    if (bitmap === null) {
      state.preview[eye] = false;
      canvas.hidden = true;
      setText(
        field(eye, "caption"),
        "No preview: this browser cannot display this file (DICOM and TIFF are read by the " +
          "gateway). The gateway's picture of the eye appears here after grading."
      );
      return;
    }
    state.preview[eye] = true;
    canvas.hidden = false;
    drawSquare(canvas, bitmap, discBox(bitmap));
    bitmap.close();
    setText(field(eye, "caption"), "Preview, cropped to the fundus disc as the model sees it.");
  }

  // ---------------------------------------------------------------- files

  function clearEyeResult(eye) {
    field(eye, "result").hidden = true;
    field(eye, "heatmap-controls").hidden = true;
    const overlay = field(eye, "overlay");
    overlay.hidden = true;
    overlay.removeAttribute("src");
    field(eye, "heatmap-toggle").checked = false;
    hideEyeError(eye);
    if (!state.preview[eye]) field(eye, "viewer").hidden = true;
  }

  function hidePatient() {
    byId("patient").hidden = true;
    byId("model-warning").hidden = true;
    setText(byId("meta"), "");
  }

  function setFile(eye, file) {
    state.files[eye] = file;
    state.generation[eye] += 1;
    state.preview[eye] = false;
    clearEyeResult(eye);
    hidePatient();
    hideAlert();
    const name = field(eye, "file-name");
    setText(name, file ? `${file.name} (${formatSize(file.size)})` : "");
    name.hidden = !file;
    eyeSection(eye).querySelector("[data-remove]").hidden = !file;
    field(eye, "viewer").hidden = true;
    if (!file) {
      byId(`file-${eye}`).value = "";
      return;
    }
    showPreview(eye, file, state.generation[eye]);
  }

  function bindDropzone(eye) {
    const zone = eyeSection(eye).querySelector("[data-drop]");
    const input = byId(`file-${eye}`);
    input.addEventListener("change", () => setFile(eye, input.files[0] || null));
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = state.busy ? "none" : "copy";
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      if (state.busy) return;
      const files = event.dataTransfer.files;
      if (!files || files.length === 0) return;
      try {
        const one = new DataTransfer();
        one.items.add(files[0]);
        input.files = one.files;
      } catch {
        // Older browsers cannot set input.files; the page keeps the file itself.
      }
      setFile(eye, files[0]);
      if (files.length > 1) {
        setStatus(`Only the first dropped file was used for the ${eyeName(eye)} eye.`);
      }
    });
    eyeSection(eye)
      .querySelector("[data-remove]")
      .addEventListener("click", () => {
        setFile(eye, null);
        input.focus();
        setStatus(`The ${eyeName(eye)}-eye image was removed.`);
      });
  }

  // ---------------------------------------------------------------- results

  function qualityText(quality) {
    const score = `score ${quality.score.toFixed(2)}`;
    if (quality.gradable) return `Image quality: gradable (${score}).`;
    const reasons = quality.reasons.map((r) => REASON_TEXT[r] || r).join("; ") || "poor quality";
    return `Image quality: NOT gradable – ${reasons} (${score}).`;
  }

  function renderProbabilities(eye, result) {
    const list = field(eye, "probs");
    list.replaceChildren();
    const count = state.scale
      ? state.scale.grades.length
      : Object.keys(result.probabilities).length;
    for (let grade = 0; grade < count; grade += 1) {
      const p = Number(result.probabilities[String(grade)] || 0);
      const item = document.createElement("li");
      item.dataset.grade = String(grade);
      if (grade === result.grade) item.classList.add("predicted");
      const name = document.createElement("span");
      name.className = "prob-name";
      const entry = scaleGrade(grade);
      name.textContent = entry ? `${grade} · ` : String(grade);
      if (entry) {
        const short = document.createElement("abbr");
        short.title = String(entry.name);
        short.textContent = String(entry.short_name);
        name.append(short);
      }
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${Math.min(100, Math.max(0, p * 100)).toFixed(1)}%`;
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "prob-value";
      value.dataset.field = `prob-${grade}`;
      value.textContent = percent(p);
      item.append(name, bar, value);
      list.append(item);
    }
  }

  function renderHeatmap(eye, result) {
    const controls = field(eye, "heatmap-controls");
    const overlay = field(eye, "overlay");
    const encoded = result.heatmap_png_base64;
    if (typeof encoded !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) {
      controls.hidden = true;
      overlay.hidden = true;
      return;
    }
    overlay.src = `data:image/png;base64,${encoded}`;
    const toggle = field(eye, "heatmap-toggle");
    const slider = field(eye, "opacity");
    controls.hidden = false;
    field(eye, "viewer").hidden = false;
    if (state.preview[eye]) {
      toggle.checked = false;
      slider.disabled = false;
      setText(
        field(eye, "opacity-note"),
        "Blends the gateway's Grad-CAM picture over the photograph; at 100 % you see exactly " +
          "what the gateway returned."
      );
    } else {
      toggle.checked = true; // nothing else to show for this file
      setText(
        field(eye, "caption"),
        "The gateway's picture of this eye: the model input with its Grad-CAM heat map."
      );
      slider.disabled = true;
      setText(
        field(eye, "opacity-note"),
        "No browser preview of this file: the gateway's Grad-CAM picture is shown as returned."
      );
    }
    applyHeatmap(eye);
  }

  function applyHeatmap(eye) {
    const overlay = field(eye, "overlay");
    const toggle = field(eye, "heatmap-toggle");
    const slider = field(eye, "opacity");
    const value = Number(slider.value);
    setText(field(eye, "opacity-value"), `${value} %`);
    overlay.style.opacity = state.preview[eye] ? String(value / 100) : "1";
    overlay.hidden = !toggle.checked || !overlay.getAttribute("src");
    overlay.classList.toggle("alone", !state.preview[eye]);
  }

  function renderEye(eye, result) {
    const box = field(eye, "result");
    box.hidden = false;
    box.classList.toggle("ungradable", !result.quality.gradable);
    const quality = field(eye, "quality");
    setText(quality, qualityText(result.quality));
    quality.classList.toggle("bad", !result.quality.gradable);
    const graded = result.grade !== null && result.grade !== undefined;
    field(eye, "grade-line").hidden = !graded;
    field(eye, "referable").hidden = !graded;
    field(eye, "probs").hidden = !graded || !result.probabilities;
    field(eye, "probs-title").hidden = !graded || !result.probabilities;
    if (graded) {
      setText(field(eye, "grade"), String(result.grade));
      setText(field(eye, "grade-label"), result.grade_label || gradeName(result.grade));
      const referable = field(eye, "referable");
      const chance =
        typeof result.referable_probability === "number"
          ? ` (probability of referable DR ${percent(result.referable_probability)})`
          : "";
      setText(
        referable,
        `${result.referable ? "Referable diabetic retinopathy" : "Not referable"}${chance}`
      );
      referable.dataset.referable = String(Boolean(result.referable));
      if (result.probabilities) renderProbabilities(eye, result);
    }
    const action = field(eye, "action");
    setText(action, ACTION_TEXT[result.action] || result.action);
    action.dataset.action = result.action;
    setText(field(eye, "recommendation"), result.recommendation);
    const warnings = field(eye, "warnings");
    warnings.replaceChildren(
      ...(result.warnings || []).map((text) => {
        const item = document.createElement("li");
        item.textContent = text;
        return item;
      })
    );
    warnings.hidden = warnings.childElementCount === 0;
    renderHeatmap(eye, result);
  }

  function eyeSummary(eye, result) {
    if (!result.quality.gradable) return `${capital(eye)} eye: not gradable.`;
    return `${capital(eye)} eye: grade ${result.grade}, ${result.grade_label}, ${
      result.referable ? "referable" : "not referable"
    }.`;
  }

  function renderPatient(patient) {
    byId("patient").hidden = false;
    setText(byId("patient-title"), "Patient-level referral");
    const action = byId("patient-action");
    setText(action, ACTION_TEXT[patient.action] || patient.action);
    action.dataset.action = patient.action;
    setText(byId("patient-summary"), patient.summary);
    byId("patient").querySelector(".facts").hidden = false;
    setText(byId("patient-referable"), patient.referable ? "Yes" : "No");
    setText(byId("patient-deciding"), patient.deciding_eye ? capital(patient.deciding_eye) : "–");
    setText(
      byId("patient-worst"),
      patient.worst_grade === null || patient.worst_grade === undefined
        ? "–"
        : gradeName(patient.worst_grade)
          ? `${patient.worst_grade} (${gradeName(patient.worst_grade)})`
          : String(patient.worst_grade)
    );
  }

  function renderSingle(eye) {
    const other = eye === "right" ? "left" : "right";
    byId("patient").hidden = false;
    setText(byId("patient-title"), "Patient-level referral: incomplete");
    const action = byId("patient-action");
    setText(action, "One eye only");
    action.dataset.action = "incomplete";
    setText(
      byId("patient-summary"),
      `Only the ${eye} eye was graded (its result is below). Add the ${other}-eye photograph ` +
        "and grade again for the patient-level referral."
    );
    byId("patient").querySelector(".facts").hidden = true;
  }

  function renderMeta(body) {
    const warning = byId("model-warning");
    if (body.model_warning) {
      setText(warning, body.model_warning);
      warning.hidden = false;
    } else {
      warning.hidden = true;
    }
    if (body.disclaimer) setText(byId("disclaimer"), body.disclaimer);
    const model = body.model ? `Model ${body.model.name} version ${body.model.version}` : "";
    const total = body.timings ? ` · ${Math.round(body.timings.total_ms)} ms` : "";
    setText(byId("meta"), `${model} · request ${body.request_id}${total}`);
  }

  // ---------------------------------------------------------------- errors

  function retryText(response) {
    const seconds = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    return Number.isFinite(seconds) && seconds > 0
      ? ` Try again in ${seconds} s.`
      : " Try again in a moment.";
  }

  function handleError(response, body, eyes) {
    const error = body && body.error ? body.error : null;
    const code = error ? error.code : null;
    const message = error && typeof error.message === "string" ? error.message : "";
    const requestId = response.headers.get("X-Request-ID") || "";
    const reference = requestId ? ` (reference ${requestId})` : "";
    setStatus("Grading failed.");
    if (code === "unauthorized") {
      const key = currentKey();
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
      byId("api-key").focus();
      return;
    }
    if (code === "forbidden") {
      showAuth("This API key may not grade images. Enter a key with the grade scope.");
      showAlert(`Not allowed: ${REQUEST_ERRORS.forbidden}`);
      byId("api-key").focus();
      return;
    }
    if (code && IMAGE_ERRORS[code]) {
      const match = /^(left|right|image): ([\s\S]*)$/.exec(message);
      const named = match ? match[1] : null;
      const detail = match ? match[2] : message;
      const eye = named === "left" || named === "right" ? named : eyes.length === 1 ? eyes[0] : null;
      const text = `${IMAGE_ERRORS[code]}${detail ? ` Details: ${detail}` : ""}`;
      if (eye) {
        showEyeError(eye, text);
        const other = eye === "right" ? "left" : "right";
        const fix =
          eyes.length === 2
            ? ` Replace it, or remove it to grade the ${other} eye alone.`
            : " Choose another file.";
        showAlert(`The ${eye}-eye file cannot be graded: ${IMAGE_ERRORS[code]}${fix}`);
      } else {
        showAlert(`A file cannot be graded: ${text}`);
      }
      return;
    }
    let text = (code && REQUEST_ERRORS[code]) || null;
    if (!text) {
      if (response.status === 401) text = REQUEST_ERRORS.unauthorized;
      else if (response.status === 503 || response.status === 429) text = REQUEST_ERRORS.overloaded;
      else if (response.status === 504) text = REQUEST_ERRORS.request_timeout;
      else if (response.status === 413) text = REQUEST_ERRORS.payload_too_large;
      else text = `The gateway answered with an error (HTTP ${response.status}).`;
    }
    if (RETRY_LATER.has(code) || (!code && response.status >= 502)) text += retryText(response);
    if (SUPPORT.has(code) || !code) text += ` If this persists, contact support${reference}.`;
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

  async function grade(event) {
    event.preventDefault();
    if (state.busy) return;
    const eyes = EYES.filter((eye) => state.files[eye]);
    hideAlert();
    for (const eye of EYES) clearEyeResult(eye);
    hidePatient();
    if (eyes.length === 0) {
      showAlert("Choose at least one photograph (right or left eye) first.");
      setStatus("Nothing to grade yet.");
      byId("file-right").focus();
      return;
    }
    const form = new FormData();
    let url;
    if (eyes.length === 2) {
      form.append("left", state.files.left, state.files.left.name);
      form.append("right", state.files.right, state.files.right.name);
      url = "/v1/exams?explain=true";
    } else {
      const eye = eyes[0];
      form.append("image", state.files[eye], state.files[eye].name);
      url = `/v1/grade?explain=true&laterality=${eye === "right" ? "R" : "L"}`;
    }
    const generations = { ...state.generation };
    const bytes = eyes.reduce((sum, eye) => sum + state.files[eye].size, 0);
    const which = eyes.length === 2 ? "both eyes" : `the ${eyes[0]} eye`;
    setBusy(true, `Grading ${which} (${formatSize(bytes)})…`);
    const headers = { Accept: "application/json" };
    const key = currentKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), CLIENT_TIMEOUT_MS);
    let response;
    let body = null;
    try {
      response = await fetch(url, {
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
    if (EYES.some((eye) => state.generation[eye] !== generations[eye])) {
      setStatus("The images changed while grading; press Grade again.");
      return;
    }
    if (!response.ok || body === null) {
      handleError(response, body, eyes);
      return;
    }
    let summary;
    if (eyes.length === 2) {
      renderEye("right", body.right);
      renderEye("left", body.left);
      renderPatient(body.patient);
      summary = `${eyeSummary("right", body.right)} ${eyeSummary("left", body.left)} Patient: ${
        body.patient.summary
      }`;
    } else {
      renderEye(eyes[0], body);
      renderSingle(eyes[0]);
      summary = eyeSummary(eyes[0], body);
    }
    renderMeta(body);
    setStatus(`Graded. ${summary}`);
    byId("patient-title").focus();
  }

  function clearAll() {
    for (const eye of EYES) setFile(eye, null);
    hideAlert();
    setStatus("Cleared. Choose one or both eyes, then press Grade.");
    byId("file-right").focus();
  }

  // ---------------------------------------------------------------- service status

  async function refreshService() {
    const element = byId("service");
    try {
      const response = await fetch("/readyz", { cache: "no-store" });
      const body = await response.json().catch(() => null);
      if (response.ok && body && body.model) {
        element.dataset.state = "ready";
        element.title = "";
        setText(element, `Ready · model ${body.model.name} v${body.model.version}`);
      } else {
        element.dataset.state = "down";
        // /readyz says "<code>: <technical detail>": a sentence for the clinician, the detail
        // for IT in the tooltip.
        const reason = body && body.error ? String(body.error.message) : `HTTP ${response.status}`;
        const friendly = REQUEST_ERRORS[reason.split(":", 1)[0]];
        setText(element, `Grading service not ready${friendly ? `: ${friendly}` : ""}`);
        element.title = reason;
      }
    } catch {
      element.dataset.state = "down";
      element.title = "";
      setText(element, "Grading gateway unreachable");
    }
  }

  // ---------------------------------------------------------------- start

  function start() {
    for (const eye of EYES) {
      bindDropzone(eye);
      const toggle = field(eye, "heatmap-toggle");
      const slider = field(eye, "opacity");
      toggle.addEventListener("change", () => applyHeatmap(eye));
      slider.addEventListener("input", () => applyHeatmap(eye));
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
