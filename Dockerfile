# One image for every server process of docker-compose.yml: the web server (gunicorn with
# deploy/gunicorn.conf.py), `lainaamo ingest`, `lainaamo scheduler` and the one-shot
# `lainaamo db upgrade`. It is built from the package registries only: the base image from
# Docker Hub and the Python packages from PyPI with pip; nothing else is downloaded.
# The tablet agent is not in it (`pip install '.[agent]'` on a tablet).
#
# PYTHON_IMAGE is the base of both stages: Docker Hub's Python 3.11 on Debian 12 by default;
# where no registry can be reached, a local stand-in made from Debian's own python3
# (scripts/docker/stack-images.sh builds one, tests/stack/ uses it):
#
#   docker build --build-arg PYTHON_IMAGE=lainaamo/python:3.11-bookworm -t lainaamo-server:local .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/lainaamo
WORKDIR /src
# Dependencies first, so that a change of the code alone reuses this layer.
COPY pyproject.toml README.md ./
RUN mkdir lainaamo server signaling \
    && /opt/lainaamo/bin/pip install '.[server]' \
    && /opt/lainaamo/bin/pip uninstall --yes lainaamo
COPY lainaamo ./lainaamo
COPY server ./server
COPY signaling ./signaling
# pip and setuptools are not needed to run: the final image has no build tools.
RUN /opt/lainaamo/bin/pip install --no-deps '.[server]' \
    && /opt/lainaamo/bin/python -m pip uninstall --yes pip setuptools wheel

FROM ${PYTHON_IMAGE}
# A fixed uid, so that files mounted from the host (the command signing key) can be made
# readable by it: `chown 10001` (docs/deploy.md).
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home lainaamo \
    && mkdir -p /app/deploy /var/lib/lainaamo/broker-auth \
    && chown lainaamo:lainaamo /var/lib/lainaamo/broker-auth
COPY --from=build /opt/lainaamo /opt/lainaamo
COPY deploy/gunicorn.conf.py deploy/healthcheck.py /app/deploy/
ENV PATH=/opt/lainaamo/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LAINAAMO_HTTP_HOST=0.0.0.0
WORKDIR /app
USER lainaamo
EXPOSE 8000 9101 9102
# Asks the /healthz of whichever server process the container runs (deploy/healthcheck.py);
# docker-compose.yml names each service's check itself.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py"]
