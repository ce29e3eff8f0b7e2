"""The placement decision, kept pure: data in (model), residency parsing (residency), filter and score (core).

Why a package of its own: everything that decides where a pod may and should run lives here, free of
Kubernetes, kopf, Prometheus and HTTP, so the extender, `explain`, the digital twin and the policy benchmark
share one decision and tests run without a cluster. An import-linter contract (pyproject.toml) and
tests/test_purity.py keep it that way.
"""
