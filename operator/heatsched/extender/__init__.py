"""kube-scheduler extender: the HTTP face of the placement core.

Why a package of its own: kube-scheduler calls out over HTTP with its own JSON shapes (wire.py); the
handlers (server.py) translate those into placement.core calls on the operator's latest Snapshot and back,
and nothing else. No Prometheus or Kubernetes API call happens per request.
"""
