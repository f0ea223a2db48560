# The AutoTune tuner server (FastAPI + SQLite). Build from the repository root:
#   docker build -f images/tuner-server.Dockerfile -t autotune/tuner-server:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY tuner_server ./tuner_server
COPY sdk ./sdk
COPY kube_harness ./kube_harness
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && mkdir -p /var/lib/autotune && chown 65532:65532 /var/lib/autotune
USER 65532:65532
ENV PYTHONUNBUFFERED=1
VOLUME /var/lib/autotune
EXPOSE 8080
ENTRYPOINT ["python", "-m", "tuner_server", "--db", "/var/lib/autotune/tuner.db", "--host", "0.0.0.0", "--port", "8080"]
