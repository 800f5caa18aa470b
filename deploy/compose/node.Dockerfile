# A node:22-bookworm-slim stand-in for the UI image's build stage, for hosts that cannot pull images
# (scripts/compose-test.sh): the local Debian bookworm Python base (for its CA bundle) and this
# host's Node.js (Debian's Node 18 is older than the UI needs), which the script copies into the
# build context (bin/node and lib/node_modules/npm).
ARG BASE_IMAGE=localhost/ftd-python:3.11-bookworm
FROM ${BASE_IMAGE}
COPY . /usr/local/
RUN ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && node --version && npm --version
