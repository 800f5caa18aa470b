# A rabbitmq:3.10-management stand-in built from a local Debian bookworm image (Debian's RabbitMQ
# 3.10 with the management plugin enabled), for hosts that cannot pull images
# (scripts/compose-test.sh). docker-compose.yml's entrypoint (deploy/rabbitmq/entrypoint.sh) runs
# `docker-entrypoint.sh rabbitmq-server` as user rabbitmq, as with the official image.
ARG DEBIAN_IMAGE=localhost/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* \
    && rabbitmq-plugins enable --offline rabbitmq_management \
    && printf '#!/bin/sh\nexec "$@"\n' >/usr/local/bin/docker-entrypoint.sh \
    && chmod 755 /usr/local/bin/docker-entrypoint.sh \
    && mkdir -p /var/lib/rabbitmq /var/log/rabbitmq \
    && chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq /etc/rabbitmq
# Logs to the console, as the official image does.
ENV RABBITMQ_LOGS=- \
    HOME=/var/lib/rabbitmq \
    LANG=C.UTF-8
VOLUME /var/lib/rabbitmq
EXPOSE 5672 15672
CMD ["rabbitmq-server"]
