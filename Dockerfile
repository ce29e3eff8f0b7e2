# The heatsched image: one image, both processes. The Helm chart (charts/heatsched) runs `heatsched controller`
# and `heatsched placement` from it. Build: docker build -t REGISTRY/heatsched:0.1.0 .
# Dependencies are exactly uv.lock's (what CI tested), without the test extra; the dev harness (local control
# plane, demo, twin) is part of the package's source but none of its test or build tools are installed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# only what the package build needs (pyproject's readme, the lock, the source folder): no venv, tests or caches
COPY pyproject.toml uv.lock README.md /src/
COPY operator /src/operator
RUN pip install uv==0.13.9 \
 && uv export --frozen --no-dev --no-emit-project --format requirements-txt --project /src -o /tmp/requirements.txt \
 && pip install --require-hashes -r /tmp/requirements.txt \
 && pip install --no-deps /src \
 && pip uninstall -y uv && rm -rf /src /tmp/requirements.txt

# the chart runs it as this uid with a read-only root filesystem and /tmp as an emptyDir
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["heatsched"]
CMD ["--help"]
