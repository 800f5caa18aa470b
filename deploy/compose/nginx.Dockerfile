# An nginx image built from a local Debian bookworm image (Debian's nginx, wget for the UI's
# healthcheck), for hosts that cannot pull images (scripts/compose-test.sh): the gateway's image and
# the UI image's runtime stage (--build-arg NGINX_IMAGE=localhost/ftd-nginx:bookworm).
ARG DEBIAN_IMAGE=localhost/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx wget \
    && rm -rf /var/lib/apt/lists/* \
    && rm -f /etc/nginx/sites-enabled/default \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
