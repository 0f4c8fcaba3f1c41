# cors-proxy: a CORS-adding reverse proxy for a Flask (or any HTTP) dev server.
#
#   docker build -t cors-proxy .
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -e CORS_PROXY_UPSTREAM=http://host.docker.internal:5000 \
#     -e CORS_PROXY_ORIGINS=http://localhost:3000 \
#     --add-host host.docker.internal:host-gateway cors-proxy
#
# With a config file instead: mount it at /etc/cors-proxy/config.yaml (it is watched and
# reloaded on change; mount the directory rather than the file if your editor replaces
# files on save).
#
# BASE_IMAGE exists so machines without Docker Hub can build from a local stand-in.
ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build: wheels
FROM ${BASE_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir "hatchling==1.33.0"
# Dependencies first, read from pyproject.toml alone: this layer survives code changes.
COPY pyproject.toml ./
RUN /opt/build/bin/python -c "import tomllib; \
p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['fast']))" \
        > requirements.txt \
    && /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels/deps -r requirements.txt
# Then the code: only this layer and the ones below rebuild on an edit.
COPY README.md ./
COPY proxy/ proxy/
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation \
        --wheel-dir /wheels/app .

# ---------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="cors-proxy" \
      org.opencontainers.image.description="Local reverse proxy that adds CORS headers and explains upstream 500s" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="0.1.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CORS_PROXY_LISTEN=0.0.0.0:8080

RUN groupadd --gid 10001 cors-proxy \
    && useradd --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin cors-proxy \
    && mkdir -p /etc/cors-proxy \
    && python -m venv /opt/venv

COPY --from=build /wheels/deps /tmp/wheels/deps
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels/deps \
        /tmp/wheels/deps/*.whl \
    && rm -rf /tmp/wheels

COPY --from=build /wheels/app /tmp/wheels/app
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps /tmp/wheels/app/*.whl \
    && rm -rf /tmp/wheels

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080

# The proxy answers its own health endpoint; urllib with no proxy handler, so an
# HTTP_PROXY in the environment is never used for this loopback call.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; port = os.environ.get('CORS_PROXY_LISTEN', '0.0.0.0:8080').rpartition(':')[2]; r.build_opener(r.ProxyHandler({})).open(f'http://127.0.0.1:{port}/__cors-proxy__/health', timeout=2)"]

# Use /etc/cors-proxy/config.yaml when it is mounted (unless CORS_PROXY_CONFIG says
# otherwise); without it, CORS_PROXY_UPSTREAM and CORS_PROXY_ORIGINS configure the proxy.
# `exec` makes cors-proxy PID 1, so `docker stop` (SIGTERM) reaches it directly.
ENTRYPOINT ["/bin/sh", "-c", "if [ -z \"${CORS_PROXY_CONFIG:-}\" ] && [ -f /etc/cors-proxy/config.yaml ]; then export CORS_PROXY_CONFIG=/etc/cors-proxy/config.yaml; fi; exec cors-proxy \"$@\"", "cors-proxy"]
CMD []
