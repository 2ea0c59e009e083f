"""Bad input against the running gateway: thousands of malformed requests, no server error.

    python -m reliability.malformed --requests 10000 [--concurrency 8] [--model-root export] \
        [--seed 0]

Starts the TF Serving stand-in (harness/tfserving_server.py, serving the SavedModel under
``--model-root``) and the gateway in tfserving mode with the PACS intake on and a 1 MiB upload
limit, then sends ``--requests`` requests built by ``MalformedRequests`` (seeded, deterministic:
request ``i`` of seed ``s`` is always the same bytes) and prints a table family x status x code.

What a correct answer is (``judging.judge``):
- ``/v1/*`` and every other route: 2xx, or a 4xx whose JSON body is
  ``{"error": {"code", "message"}}`` with a code of ``gateway.errors.ERRORS`` whose table status
  is the HTTP status (a 405 also names the allowed methods in ``Allow``, RFC 9110).
- ``POST /dicomweb/studies`` (STOW-RS): a request-level 4xx as above (empty body, broken
  multipart/related, wrong media type, size, auth), or a STOW-RS response
  (``application/dicom+json``; 200 all stored, 202 some, 409 none) in which every item of the
  Failed SOP Sequence carries a Failure Reason (0008,1197) and the gateway's error code in the
  private attribute (0009,xx01), that code being a 4xx code of ``ERRORS``. A 503 STOW answer, or
  a failed item coded ``internal_error``/``backend_*``, is a server error.
A mutated image can still decode (a flipped bit in the entropy-coded data, a Content-Type that
lies about a valid image): such 200s are counted per family as gradable or ungradable.
Must be 0: 5xx, 4xx without a valid code, connection errors and timeouts.

Modules, one concern each: ``wire`` (the request, keys, limits, multipart), ``materials`` (valid
inputs), ``mutators`` (format-aware edits, byte damage), ``image_families`` and
``request_families`` (the request families), ``catalogue`` (weights, the seeded generator),
``judging`` (verdicts), ``report`` (sending, tables), ``stack`` (the gateway under test),
``health`` (the gateway after the run), ``cli``.
"""
