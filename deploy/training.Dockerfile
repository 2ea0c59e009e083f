# syntax=docker/dockerfile:1
# The training image `dr-training` of k8s/training (fold Jobs, export Job): the repository's
# Python code with requirements.txt and a CUDA 12 build of jax matching requirements.txt's jax.
# No data, no tests, no runs in it: the dataset is synced in at run time (DATA_URI).
#   docker build -f deploy/training.Dockerfile -t dr-training:dev .
# Not built in CI (several GB: TensorFlow + jax CUDA wheels); checked by hadolint and checkov
# (tests/deploy/test_tools.py). The base is overridable; keep it Python 3.11 + glibc.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# checkov:skip=CKV_DOCKER_7:FROM is ${PYTHON_IMAGE}, whose default above is a pinned version tag; checkov does not expand ARGs
# checkov:skip=CKV_DOCKER_2:batch image for Jobs (train, export), there is no service to health-check
FROM ${PYTHON_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
# jax[cuda12] at the version requirements.txt pins (jax-cuda12-plugin/-pjrt of the same version;
# the NVIDIA CUDA/cuDNN wheels come with it, so the base needs no CUDA, only the node's driver).
RUN jax="$(grep -E '^jax==' /tmp/requirements.txt)" \
 && test -n "$jax" \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt "jax[cuda12]==${jax#jax==}"
WORKDIR /app
# Only the code the Jobs run: model.train / model.export, deploy/validate_model.py (which reads
# the TF Serving batching configs under k8s/) and what they import.
COPY contract contract
COPY demo/__init__.py demo/quiet.py demo/
COPY deploy deploy
COPY fundus fundus
COPY k8s k8s
COPY model model
USER 10001:10001
ENTRYPOINT ["python"]
