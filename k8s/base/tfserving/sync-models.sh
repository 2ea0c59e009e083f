#!/bin/sh
# Init container of the tfserving pod: copy the model versions named in models.config from S3
# into the pod's emptyDir, using the pod's IAM role (IRSA). TF Serving cannot read s3:// itself
# since 2.7 (tensorflow/serving#1963), so it only ever sees a local directory.
# Only the versions the config asks for are fetched: a pod start costs the size of one or two
# versions, not of the whole release history.
set -eu
: "${MODEL_S3_URI:?s3://bucket/model_name}"
: "${MODEL_NAME:?}"
: "${MODELS_CONFIG:?path of models.config}"
: "${MODEL_ROOT:?local model root}"

versions=$(grep -o 'versions:[[:space:]]*[0-9][0-9]*' "$MODELS_CONFIG" | grep -o '[0-9][0-9]*$' | sort -un)
if [ -z "$versions" ]; then
  echo "sync-models: no 'versions:' in $MODELS_CONFIG" >&2
  exit 1
fi
for version in $versions; do
  target="$MODEL_ROOT/$MODEL_NAME/$version"
  echo "sync-models: $MODEL_S3_URI/$version/ -> $target"
  aws s3 sync --only-show-errors --no-progress "$MODEL_S3_URI/$version/" "$target/"
  if [ ! -f "$target/saved_model.pb" ]; then
    echo "sync-models: $MODEL_S3_URI/$version/ holds no saved_model.pb" >&2
    exit 1
  fi
done
echo "sync-models: versions $(echo "$versions" | tr '\n' ' ')ready"
