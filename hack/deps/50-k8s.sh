#!/usr/bin/env bash
# The test control plane: etcd, kube-apiserver, kube-controller-manager, kwok
# (hack/k8s-build.sh; about 15 min cold, cached afterwards).
source "$(dirname "$0")/../lib.sh"
apt_install openssl
bin=$(bash "$(dirname "$0")/../k8s-build.sh")
echo "ITEMQ_K8S_BIN=$bin"
