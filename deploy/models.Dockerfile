# syntax=docker/dockerfile:1
# Model versions for clusters without S3 (the k8s `local` overlay): the tfserving pod's init
# container copies /export/. into its model emptyDir.
#   docker build -f deploy/models.Dockerfile -t dr-models:dev export/
# The context is the export root, which holds dr_grader/<version>/.
# checkov:skip=CKV_DOCKER_2:data-only image; an init container runs `cp` once and exits, there is no service to check
FROM busybox:1.37.0
COPY dr_grader /export/dr_grader
USER 10001:10001
