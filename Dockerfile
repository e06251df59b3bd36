# syntax=docker/dockerfile:1
#
# Two images from one file (docker-compose.yml builds both, k8s/ runs them):
#   docker build --target service  -t chat-service:0.1.0 .           the API on :8000
#   docker build --target frontend -t chat-service-frontend:0.1.0 .  NGINX with the page on :8085
# Without --target, the last stage (service) is built.

# ---------------------------------------------------------------- Python base
FROM python:3.12.12-slim-bookworm AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# ---------------------------------------------------------------- builder
# Installs the dependencies exactly as requirements/service.txt locks them (uvloop, the speedups
# extra, included: the service runs on it; every file hash-checked, wheels only) into a
# virtualenv without pip, then the project's wheel, built by the build backend locked in
# requirements/build.txt (no build isolation: nothing unlocked is downloaded) and installed
# without dependencies. Only that virtualenv reaches the final image;
# the dependencies' layer is rebuilt only when the lock files change.
FROM python-base AS builder
WORKDIR /src
COPY requirements/build.txt requirements/service.txt requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/build.txt \
    && python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --no-cache-dir --require-hashes \
        --only-binary=:all: -r requirements/service.txt
COPY pyproject.toml README.md ./
COPY chat_service/ chat_service/
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && pip --python /opt/venv/bin/python install --no-cache-dir --no-index --no-deps \
        /wheels/chat_service-*.whl

# ---------------------------------------------------------------- frontend libraries
# The pages' npm libraries (marked and DOMPurify for the chat, Swagger UI for /docs), installed
# exactly as the lock file says, without the dev dependencies (the checks of make test-js); npm ci
# copies the files the pages load into vendor/, and only that folder reaches NGINX.
FROM node:24.11.1-alpine3.22 AS frontend-libraries
WORKDIR /build
COPY frontend/package.json frontend/package-lock.json frontend/copy-vendor.mjs ./
RUN npm ci --omit=dev --no-audit --no-fund

# ---------------------------------------------------------------- frontend
# NGINX (unprivileged image: uid 101, no root needed) serving the page and proxying the API.
# The official entrypoint renders /etc/nginx/templates/*.template with envsubst into
# /etc/nginx/conf.d/ at start-up; the template reads exactly these three variables. It also
# runs the scripts in /docker-entrypoint.d/, in name order, after the template's: ours turn
# NGINX_TRUSTED_PROXIES (the proxies whose X-Forwarded-For names the client; none by default,
# NGINX being the edge) into the set_real_ip_from lines the template includes, and
# CHAT_OIDC_ISSUER (the service's OpenID Connect issuer; none by default) into the origin the
# page's Content-Security-Policy admits for its sign-in. Either stops the container on a value
# it cannot use.
FROM nginxinc/nginx-unprivileged:1.29.4-alpine AS frontend
ENV NGINX_PORT=8085 \
    CHAT_SERVICE_URL=http://chat-service:8000 \
    FRONTEND_ROOT=/usr/share/nginx/html \
    NGINX_TRUSTED_PROXIES="" \
    CHAT_OIDC_ISSUER=""
USER 0
RUN rm -f /usr/share/nginx/html/index.html /usr/share/nginx/html/50x.html
USER 101
COPY frontend/*.html frontend/*.js frontend/*.css frontend/config.json frontend/*.svg /usr/share/nginx/html/
COPY --from=frontend-libraries /build/vendor/ /usr/share/nginx/html/vendor/
# Named default.conf.template so that it replaces the image's stock server on :8080.
COPY frontend/nginx.conf.template /etc/nginx/templates/default.conf.template
COPY --chmod=0755 frontend/nginx-trusted-proxies.sh /docker-entrypoint.d/25-chat-trusted-proxies.sh
COPY --chmod=0755 frontend/nginx-oidc-origin.sh /docker-entrypoint.d/26-chat-oidc-origin.sh
EXPOSE 8085
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["sh", "-c", "wget -q -O /dev/null http://127.0.0.1:${NGINX_PORT}/nginx-health"]

# ---------------------------------------------------------------- service
FROM python-base AS service
LABEL org.opencontainers.image.title="chat-service" \
      org.opencontainers.image.description="Chat backend on aiohttp and SQLite with OpenTelemetry traces and Prometheus metrics" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 chat \
    && useradd --system --uid 10001 --gid chat --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin chat \
    && mkdir /data \
    && chown chat:chat /data
COPY --from=builder /opt/venv /opt/venv
# Containers listen on all interfaces (the service's own default is 127.0.0.1) and keep the
# database on the /data volume.
ENV PATH=/opt/venv/bin:$PATH \
    CHAT_HOST=0.0.0.0 \
    CHAT_PORT=8000 \
    CHAT_DB_PATH=/data/chat.db
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8000
# SIGTERM is the default stop signal; with the exec-form CMD the service is PID 1 and gets it
# directly, then drains within CHAT_SHUTDOWN_TIMEOUT (10 s): give `docker stop` more than that.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CHAT_PORT', '8000'), timeout=2)"]
CMD ["chat-service"]
