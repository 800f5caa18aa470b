# moto's S3 server: stands in for MinIO where no MinIO image can be had (scripts/compose-test.sh,
# through deploy/compose/local.override.yml). It speaks the S3 API on :9000 and keeps objects in
# memory; it checks no credentials.
ARG PYTHON_IMAGE=localhost/ftd-python:3.11-bookworm
FROM ${PYTHON_IMAGE}
RUN pip install --no-cache-dir "moto[server,s3]==5.*" boto3
EXPOSE 9000
CMD ["moto_server", "-H", "0.0.0.0", "-p", "9000"]
