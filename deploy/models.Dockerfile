# syntax=docker/dockerfile:1
# Model versions for clusters without S3 (the k8s `local` overlay): the tfserving pod's init
# container copies /export/. into its model emptyDir.
#   docker build -f deploy/models.Dockerfile -t dr-models:dev export/
# The context is the export root, which holds dr_grader/<version>/. The base only has to provide
# `cp` (python -m deploy.images passes its Python base where busybox cannot be pulled).
ARG BASE_IMAGE=busybox:1.37.0
# checkov:skip=CKV_DOCKER_2:data-only image; an init container runs `cp` once and exits, there is no service to check
# checkov:skip=CKV_DOCKER_7:FROM is ${BASE_IMAGE}, whose default above is a pinned version tag; checkov does not expand ARGs
FROM ${BASE_IMAGE}
COPY dr_grader /export/dr_grader
USER 10001:10001
