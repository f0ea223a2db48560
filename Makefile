# Developer shortcuts. The test control plane: see docs/kube-harness.md.
SHELL := /bin/bash
.PHONY: kube-build cluster-up cluster-down

kube-build:  ## build etcd/kube-apiserver/kube-controller-manager/kubectl/helm into the cache
	. scripts/_venv.sh && python -m kube_harness build

cluster-up:  ## start the test control plane + fake nodes (state in .cache/cluster)
	. scripts/_venv.sh && python -m kube_harness up

cluster-down:  ## stop it
	. scripts/_venv.sh && python -m kube_harness down
