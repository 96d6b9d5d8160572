// Package kube is the kubernetes runner: one batch/v1 Job per item, built
// from the user's Job template, with a ConfigMap holding the item file. The
// Jobs are the manager's record; their state comes from a shared informer.
// See docs/kubernetes.md.
package kube
