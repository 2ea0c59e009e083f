// Texts of the clinician page: next steps, quality reasons and every error code the exam route
// can answer (tests/unit/test_ui_page.py keeps IMAGE_ERRORS in step with gateway/errors.py).
// Loaded before app.js; everything lives on window.DRG (classic scripts, no build step).
"use strict";

(() => {
  const DRG = (window.DRG = window.DRG || {});

  DRG.ACTION_TEXT = {
    rescreen_12_months: "Rescreen in 12 months",
    refer_routine: "Refer to an ophthalmologist (routine)",
    refer_soon: "Refer to an ophthalmologist soon (within weeks)",
    refer_urgent: "Urgent referral (within days)",
    retake_or_refer_in_person: "Retake the photograph, or refer for an in-person examination",
  };
  DRG.REASON_TEXT = {
    no_fundus_disc: "does not look like a fundus photograph",
    too_dark: "too dark",
    overexposed: "over-exposed",
    blurred: "out of focus",
    low_resolution: "resolution too low",
  };
  // Errors about one uploaded file: shown on that photograph, in its eye's panel.
  DRG.IMAGE_ERRORS = {
    empty_input: "The file is empty.",
    invalid_image: "The image cannot be used.",
    unsupported_format: "This file is not a JPEG, PNG, TIFF or DICOM image.",
    corrupt_image: "The file is damaged or incomplete (truncated). Export or copy it again.",
    image_too_large: "The image is too large (too many bytes or pixels).",
    image_too_small:
      "The image is too small to grade: send the original full-resolution photograph.",
    dicom_no_pixel_data: "The DICOM file holds no image.",
    dicom_unsupported_transfer_syntax:
      "This DICOM compression is not supported: export it uncompressed or as baseline JPEG.",
    dicom_unsupported_sop_class: "This DICOM object is not a photograph.",
    dicom_unsupported_image: "This DICOM image layout is not supported (for example multi-frame).",
    laterality_mismatch:
      "This DICOM file records the other eye (ImageLaterality): move it to the other eye's panel.",
  };
  DRG.REQUEST_ERRORS = {
    malformed_request: "The gateway could not read the upload. Reload the page and try again.",
    missing_field: "The upload was incomplete. Reload the page and try again.",
    unsupported_media_type: "The gateway could not read the upload. Reload the page and try again.",
    payload_too_large: "The files are larger than this gateway accepts.",
    too_many_images: "This gateway accepts fewer photographs per eye.",
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
  DRG.RETRY_LATER = new Set([
    "overloaded",
    "backend_overloaded",
    "not_ready",
    "backend_unavailable",
    "model_unavailable",
    "request_timeout",
    "backend_timeout",
  ]);
  DRG.SUPPORT = new Set([
    "model_mismatch",
    "backend_rejected_input",
    "backend_error",
    "internal_error",
  ]);
})();
