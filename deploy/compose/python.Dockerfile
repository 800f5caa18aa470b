# A python:3.11-slim stand-in built from a local Debian bookworm image (Debian's Python 3.11), for
# hosts that cannot pull images (scripts/compose-test.sh). The service and worker Dockerfiles build
# FROM it with --build-arg PYTHON_IMAGE=localhost/ftd-python:3.11-bookworm. The build context holds
# the build host's CA bundle (ca-certificates.crt), so that pip, uv and npm in the builds trust what
# the host trusts (a TLS-inspecting proxy's CA, for one).
ARG DEBIAN_IMAGE=localhost/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-pip python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV LANG=C.UTF-8 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
