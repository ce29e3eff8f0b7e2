# The heatsched image: one image, both processes. The Helm chart (charts/heatsched) runs `heatsched controller`
# and `heatsched placement` from it. Build: docker build -t REGISTRY/heatsched:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# only what the package build needs (pyproject's readme, the source folder): no venv, tests or caches
COPY pyproject.toml README.md /src/
COPY operator /src/operator
RUN pip install /src && rm -rf /src

# the chart runs it as this uid with a read-only root filesystem and /tmp as an emptyDir
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["heatsched"]
CMD ["--help"]
