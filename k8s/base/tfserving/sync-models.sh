#!/bin/sh
# Init container of the tfserving pod: copy the model versions named in models.config from S3
# into the pod's emptyDir, using the pod's IAM role (IRSA). TF Serving cannot read s3:// itself
# since 2.7 (tensorflow/serving#1963), so it only ever sees a local directory.
# Only the versions the config asks for are fetched: a pod start costs the size of one or two
# versions, not of the whole release history.
# Provenance: each version carries MANIFEST.sha256 (written by model-release.yml with
# deploy/manifest.py, uploaded last, never overwritable: conditional writes + Object Lock, see
# deploy/iam/). A version is fetched into a staging directory, checked with `sha256sum -c`, and
# only the files the manifest lists are moved where TF Serving looks; anything else is refused.
set -eu
: "${MODEL_S3_URI:?s3://bucket/model_name}"
: "${MODEL_NAME:?}"
: "${MODELS_CONFIG:?path of models.config}"
: "${MODEL_ROOT:?local model root}"

fail() {
  echo "sync-models: $*" >&2
  exit 1
}

versions=$(grep -o 'versions:[[:space:]]*[0-9][0-9]*' "$MODELS_CONFIG" | grep -o '[0-9][0-9]*$' | sort -un)
if [ -z "$versions" ]; then
  fail "no 'versions:' in $MODELS_CONFIG"
fi
for version in $versions; do
  target="$MODEL_ROOT/$MODEL_NAME/$version"
  staging="$MODEL_ROOT/.staging/$version"
  echo "sync-models: $MODEL_S3_URI/$version/ -> $target"
  aws s3 sync --only-show-errors --no-progress "$MODEL_S3_URI/$version/" "$staging/"
  manifest="$staging/MANIFEST.sha256"
  [ -f "$manifest" ] || fail "$MODEL_S3_URI/$version/ has no MANIFEST.sha256: refusing an unverified version"
  # Only '<sha256>  <relative path>' lines; no absolute path, no '..' component.
  if grep -Evq '^[0-9a-f]{64}  [A-Za-z0-9_][A-Za-z0-9._/-]*$' "$manifest" \
    || grep -Eq '/\.\.(/|$)' "$manifest"; then
    fail "version $version: MANIFEST.sha256 is malformed"
  fi
  grep -q '  saved_model.pb$' "$manifest" || fail "version $version: the manifest lists no saved_model.pb"
  (cd "$staging" && sha256sum -c --quiet --strict MANIFEST.sha256) >&2 \
    || fail "version $version: files do not match MANIFEST.sha256"
  while read -r _digest path; do
    mkdir -p "$target/$(dirname "$path")"
    mv "$staging/$path" "$target/$path"
  done < "$manifest"
  mv "$manifest" "$target/MANIFEST.sha256"
  rm -rf "$staging"
done
rm -rf "$MODEL_ROOT/.staging"
echo "sync-models: versions $(echo "$versions" | tr '\n' ' ')verified and ready"
