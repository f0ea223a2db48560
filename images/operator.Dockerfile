# The AutoTune operator (kopf). Build from the repository root:
#   docker build -f images/operator.Dockerfile -t autotune/operator:0.1.0 .
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
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The restricted Pod Security Standard: a numeric non-root user (the chart sets the same).
USER 65532:65532
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["autotune", "operator"]
