package kube

import (
	"fmt"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClientConfig is the API client's configuration: from kubeconfig (a
// KUBECONFIG-style list of files) when set, else from the usual places
// (KUBECONFIG, ~/.kube/config), else in-cluster (the pod's service
// account). namespace is the kubeconfig context's namespace, or in a pod
// the service account's namespace (POD_NAMESPACE or
// /var/run/secrets/kubernetes.io/serviceaccount/namespace). qps and burst
// bound the client's request rate (client-go's own defaults, 5 and 10, are
// far too low for a queue).
func ClientConfig(kubeconfig string, qps float32, burst int) (cfg *rest.Config, namespace string, err error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.Precedence = filepath.SplitList(kubeconfig)
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err = cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client configuration (KUBECONFIG, or in-cluster): %w", err)
	}
	namespace, _, err = cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes namespace: %w", err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = "itemq-manager"
	return cfg, namespace, nil
}
