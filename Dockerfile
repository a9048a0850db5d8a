# One image for every server process (api, ingest, migrations) and for simulated agents.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY lainaamo ./lainaamo
COPY server ./server
COPY agent ./agent
COPY signaling ./signaling
RUN pip install --no-cache-dir '.[server,agent]' && useradd --system lainaamo \
    && mkdir -p /var/lib/lainaamo/broker-auth && chown lainaamo /var/lib/lainaamo/broker-auth
USER lainaamo
ENV LAINAAMO_HTTP_HOST=0.0.0.0
EXPOSE 8000 9101
ENTRYPOINT ["lainaamo"]
CMD ["serve"]
