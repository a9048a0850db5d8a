# One image for every server process of docker-compose.yml: the web server (gunicorn with
# deploy/gunicorn.conf.py), `lainaamo ingest`, `lainaamo scheduler` and the one-shot
# `lainaamo db upgrade`. It is built from the package registries only: the base image from
# Docker Hub and the Python packages from PyPI with pip; nothing else is downloaded.
# The tablet agent is not in it (`pip install '.[agent]'` on a tablet).

FROM python:3.11-slim-bookworm AS build
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
RUN /opt/lainaamo/bin/pip install --no-deps '.[server]'

FROM python:3.11-slim-bookworm
# A fixed uid, so that files mounted from the host (the command signing key) can be made
# readable by it: `chown 10001` (docs/deploy.md).
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home lainaamo \
    && mkdir -p /app/deploy /var/lib/lainaamo/broker-auth \
    && chown lainaamo:lainaamo /var/lib/lainaamo/broker-auth
COPY --from=build /opt/lainaamo /opt/lainaamo
COPY deploy/gunicorn.conf.py /app/deploy/gunicorn.conf.py
ENV PATH=/opt/lainaamo/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LAINAAMO_HTTP_HOST=0.0.0.0
WORKDIR /app
USER lainaamo
EXPOSE 8000 9101 9102
CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py"]
