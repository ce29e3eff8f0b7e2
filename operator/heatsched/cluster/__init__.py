"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)
for tests, the demo and people, built from Go modules because this project cannot assume Docker or kind."""
