// Results of an exam in the page: each photograph's verdict in its eye's panel (the deciding
// one marked), the eye result and the patient-level decision. Server text only ever goes in
// with textContent. Grade names come from GET /v1/grading-scale (DRG.scale), never a copy here.
"use strict";

(() => {
  const DRG = (window.DRG = window.DRG || {});
  const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);
  const percent = (p) => `${(p * 100).toFixed(1)} %`;
  const graded = (result) => result.grade !== null && result.grade !== undefined;
  const yesNo = (value) => (value ? "Yes" : "No");

  const scaleGrade = (grade) => (DRG.scale && DRG.scale.grades[grade]) || null;

  function gradeName(grade) {
    const entry = scaleGrade(grade);
    return entry ? String(entry.name) : "";
  }

  function reasonsText(reasons) {
    return reasons.map((r) => DRG.REASON_TEXT[r] || r).join("; ") || "poor quality";
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function field(section, name) {
    return section.querySelector(`[data-field="${name}"]`);
  }

  // ------------------------------------------------------------ one photograph's verdict

  function photoQuality(quality) {
    const score = `score ${quality.score.toFixed(2)}`;
    if (quality.gradable) return `Gradable (${score}).`;
    return `NOT gradable – ${reasonsText(quality.reasons)} (${score}).`;
  }

  // Fill the verdict part of a photograph's card (built by app.js) from its images[] entry.
  function renderPhoto(card, result, deciding) {
    const verdict = card.querySelector("[data-part='verdict']");
    verdict.hidden = false;
    card.dataset.gradable = String(result.quality.gradable);
    card.classList.toggle("deciding", deciding);
    const quality = verdict.querySelector("[data-part='quality']");
    quality.textContent = photoQuality(result.quality);
    quality.classList.toggle("bad", !result.quality.gradable);
    const gradeLine = verdict.querySelector("[data-part='grade']");
    gradeLine.hidden = !graded(result);
    if (graded(result)) {
      const chance =
        typeof result.referable_probability === "number"
          ? ` (P(referable) ${percent(result.referable_probability)})`
          : "";
      gradeLine.dataset.grade = String(result.grade);
      gradeLine.textContent =
        `Grade ${result.grade}: ${result.grade_label || gradeName(result.grade)} – ` +
        `${result.referable ? "referable" : "not referable"}${chance}.`;
    }
    const mark = card.querySelector("[data-part='deciding']");
    mark.hidden = !deciding;
    const warnings = card.querySelector("[data-part='warnings']");
    warnings.replaceChildren(...(result.warnings || []).map((text) => element("li", "", text)));
    warnings.hidden = warnings.childElementCount === 0;
  }

  // ------------------------------------------------------------ the eye

  function renderProbabilities(list, result) {
    list.replaceChildren();
    const count = DRG.scale ? DRG.scale.grades.length : Object.keys(result.probabilities).length;
    for (let grade = 0; grade < count; grade += 1) {
      const p = Number(result.probabilities[String(grade)] || 0);
      const item = element("li");
      item.dataset.grade = String(grade);
      if (grade === result.grade) item.classList.add("predicted");
      const entry = scaleGrade(grade);
      const name = element("span", "prob-name", entry ? `${grade} · ` : String(grade));
      if (entry) {
        const short = element("abbr", "", String(entry.short_name));
        short.title = String(entry.name);
        name.append(short);
      }
      const bar = element("span", "bar");
      bar.setAttribute("aria-hidden", "true");
      const fill = element("span", "fill");
      fill.style.width = `${Math.min(100, Math.max(0, p * 100)).toFixed(1)}%`;
      bar.append(fill);
      const value = element("span", "prob-value", percent(p));
      value.dataset.field = `prob-${grade}`;
      item.append(name, bar, value);
      list.append(item);
    }
  }

  function eyeQuality(result) {
    const total = result.images.length;
    const good = result.images.filter((image) => image.quality.gradable).length;
    const of = `${good} of ${total} photograph${total === 1 ? "" : "s"} gradable`;
    if (result.quality.gradable) return `Gradable: ${of}.`;
    return `Insufficient quality: ${of} – ${reasonsText(result.quality.reasons)}.`;
  }

  // The eye-level result box of ``section`` from the exam's eye object.
  function renderEye(section, result, names) {
    const box = field(section, "result");
    box.hidden = false;
    const ok = result.quality.gradable;
    box.classList.toggle("ungradable", !ok);
    box.dataset.insufficient = String(!ok);
    const quality = field(section, "quality");
    quality.textContent = eyeQuality(result);
    quality.classList.toggle("bad", !ok);
    const deciding = field(section, "deciding");
    const index = result.deciding_image;
    deciding.hidden = index === null || index === undefined;
    if (!deciding.hidden) {
      deciding.textContent =
        `Decided by photograph ${index + 1} (${names[index]}): the eye takes its worst ` +
        "gradable photograph.";
    }
    const shown = graded(result);
    field(section, "grade-line").hidden = !shown;
    field(section, "referable").hidden = !shown;
    field(section, "probs").hidden = !shown || !result.probabilities;
    field(section, "probs-title").hidden = !shown || !result.probabilities;
    if (shown) {
      field(section, "grade").textContent = String(result.grade);
      field(section, "grade-label").textContent = result.grade_label || gradeName(result.grade);
      const referable = field(section, "referable");
      const chance =
        typeof result.referable_probability === "number"
          ? ` (probability of referable DR ${percent(result.referable_probability)})`
          : "";
      const verdict = result.referable ? "Referable diabetic retinopathy" : "Not referable";
      referable.textContent = `${verdict}${chance}`;
      referable.dataset.referable = String(Boolean(result.referable));
      if (result.probabilities) renderProbabilities(field(section, "probs"), result);
    }
    const vision = field(section, "vision");
    const threat = result.vision_threatening;
    vision.dataset.visionThreatening = String(threat);
    vision.textContent =
      threat === null || threat === undefined
        ? "Vision-threatening DR: unknown (no gradable photograph)."
        : threat
          ? "Vision-threatening DR (grade 3 or 4): YES."
          : "Vision-threatening DR (grade 3 or 4): no.";
    vision.classList.toggle("bad", threat === true);
    const action = field(section, "action");
    action.textContent = DRG.ACTION_TEXT[result.action] || result.action;
    action.dataset.action = result.action;
    field(section, "recommendation").textContent = result.recommendation;
  }

  function hideEye(section) {
    field(section, "result").hidden = true;
  }

  function eyeSummary(eye, result) {
    if (!result) return `${capital(eye)} eye: not examined.`;
    if (!result.quality.gradable) return `${capital(eye)} eye: insufficient quality.`;
    return `${capital(eye)} eye: grade ${result.grade}, ${result.grade_label}, ${
      result.referable ? "referable" : "not referable"
    }.`;
  }

  // ------------------------------------------------------------ the patient

  const byId = (id) => document.getElementById(id);

  function renderPatient(patient) {
    byId("patient").hidden = false;
    const missing = patient.missing_eyes || [];
    byId("patient-title").textContent = missing.length
      ? `Patient-level referral: ${missing.join(" and ")} eye not examined`
      : "Patient-level referral";
    const action = byId("patient-action");
    action.textContent = DRG.ACTION_TEXT[patient.action] || patient.action;
    action.dataset.action = patient.action;
    byId("patient-summary").textContent = patient.summary;
    byId("patient-referable").textContent = yesNo(patient.referable);
    const vision = byId("patient-vision");
    vision.textContent = yesNo(patient.vision_threatening);
    vision.classList.toggle("bad", Boolean(patient.vision_threatening));
    const quality = byId("patient-quality");
    quality.textContent = patient.insufficient_quality
      ? "Yes: an eye has no gradable photograph"
      : "No";
    quality.classList.toggle("bad", Boolean(patient.insufficient_quality));
    const deciding = patient.deciding_eye;
    byId("patient-deciding").textContent = deciding ? capital(deciding) : "–";
    const worst = patient.worst_grade;
    byId("patient-worst").textContent =
      worst === null || worst === undefined
        ? "–"
        : gradeName(worst)
          ? `${worst} (${gradeName(worst)})`
          : String(worst);
    byId("patient-missing").textContent = missing.length
      ? missing.map((eye) => `${capital(eye)} (status unknown)`).join(", ")
      : "None";
    byId("patient-caveat").textContent = patient.caveat || "";
    byId("patient-caveat").hidden = !patient.caveat;
  }

  function hidePatient() {
    byId("patient").hidden = true;
    byId("model-warning").hidden = true;
    byId("meta").textContent = "";
  }

  function renderMeta(body) {
    const warning = byId("model-warning");
    warning.hidden = !body.model_warning;
    warning.textContent = body.model_warning || "";
    if (body.disclaimer) byId("disclaimer").textContent = body.disclaimer;
    const model = body.model ? `Model ${body.model.name} version ${body.model.version}` : "";
    const total = body.timings ? ` · ${Math.round(body.timings.total_ms)} ms` : "";
    byId("meta").textContent = `${model} · request ${body.request_id}${total}`;
  }

  DRG.render = {
    renderPhoto,
    renderEye,
    hideEye,
    eyeSummary,
    renderPatient,
    hidePatient,
    renderMeta,
  };
})();
