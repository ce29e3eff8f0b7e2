# The heatsched image: one image, both processes. The Helm chart (charts/heatsched) runs `heatsched controller`
# and `heatsched placement` from it. Build: docker build -t REGISTRY/heatsched:0.1.0 .
# Dependencies are exactly uv.lock's (what CI tested), without the extras: no test tools and no numpy, scipy or
# matplotlib (extra `twin`). The wheel leaves the dev harness out (heatsched.cluster, the demo, heatsched.twin).
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
