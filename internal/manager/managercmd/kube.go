package managercmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/pool"
)

// KubeConfig configures the kubernetes runner and leader election; see
// docs/kubernetes.md.
type KubeConfig struct {
	JobTemplate string `env:"MANAGER_JOB_TEMPLATE"`
	Namespace   string `env:"MANAGER_NAMESPACE"`
	// JobTTL (a duration; empty: none) becomes a Job's
	// ttlSecondsAfterFinished once its item is acknowledged.
	JobTTL string  `env:"MANAGER_JOB_TTL"`
	QPS    float32 `env:"MANAGER_KUBE_QPS" envDefault:"50"`
	Burst  int     `env:"MANAGER_KUBE_BURST" envDefault:"100"`
	// ItemFile: where the item document goes: "annotation" (the pod
	// template, projected by the downward API; one API write per item, a
	// ConfigMap above MaxInlineItemBytes) or "configmap" (a ConfigMap owned
	// by the Job; three writes per item).
	ItemFile string `env:"MANAGER_KUBE_ITEM_FILE" envDefault:"annotation"`

	LeaderElect   bool          `env:"MANAGER_LEADER_ELECT" envDefault:"false"`
	LeaseName     string        `env:"MANAGER_LEASE_NAME"`
	LeaseDuration time.Duration `env:"MANAGER_LEASE_DURATION" envDefault:"10s"`
}

// kubeRunner is the kubernetes runner with what leader election needs.
type kubeRunner struct {
	*kube.Runner
	client    kubernetes.Interface
	namespace string
	leading   atomic.Bool
}

func newKubeRunner(ctx context.Context, cfg *Config, environ []string, log *slog.Logger) (*kubeRunner, error) {
	kc := cfg.Kube
	if kc.JobTemplate == "" {
		return nil, usageError{errors.New("the kubernetes runner needs MANAGER_JOB_TEMPLATE: a YAML file holding the executor's batch/v1 Job template")}
	}
	tmpl, err := kube.LoadTemplate(kc.JobTemplate)
	if err != nil {
		return nil, usageError{fmt.Errorf("MANAGER_JOB_TEMPLATE: %w", err)}
	}
	if err := kube.ValidateTemplate(tmpl, cfg.steps); err != nil {
		return nil, usageError{fmt.Errorf("MANAGER_JOB_TEMPLATE %s: %w", kc.JobTemplate, err)}
	}
	var ttl *time.Duration
	if kc.JobTTL != "" {
		d, err := time.ParseDuration(kc.JobTTL)
		if err != nil || d < 0 {
			return nil, usageError{fmt.Errorf("MANAGER_JOB_TTL=%q: want a duration ≥ 0 such as 24h, or nothing (keep finished Jobs)", kc.JobTTL)}
		}
		ttl = &d
	}
	if kc.QPS == 0 || kc.Burst < 1 {
		return nil, usageError{fmt.Errorf("MANAGER_KUBE_QPS=%v, MANAGER_KUBE_BURST=%d: want QPS > 0 (or -1: no limit) and burst ≥ 1", kc.QPS, kc.Burst)}
	}
	if kc.ItemFile != "configmap" && kc.ItemFile != "annotation" {
		return nil, usageError{fmt.Errorf("MANAGER_KUBE_ITEM_FILE=%q: want configmap or annotation", kc.ItemFile)}
	}
	if kc.LeaderElect && kc.LeaseDuration < 3*time.Second {
		return nil, usageError{fmt.Errorf("MANAGER_LEASE_DURATION=%v: at least 3s", kc.LeaseDuration)}
	}
	client, ns, host, err := kubeClient(cfg, environ, log)
	if err != nil {
		return nil, err
	}
	kr := &kubeRunner{client: client, namespace: ns}
	rcfg := kube.Config{
		Queue: cfg.Queue, Namespace: ns, Template: tmpl, Steps: cfg.steps, Env: cfg.jobEnv,
		MaxAttempts: cfg.MaxAttempts, JobTimeout: cfg.JobTimeout, TTL: ttl, InlineItems: kc.ItemFile == "annotation", Log: log,
	}
	if kc.LeaderElect {
		rcfg.Active = kr.leading.Load
	}
	r, err := kube.New(client, rcfg)
	if err != nil {
		return nil, usageError{err}
	}
	kr.Runner = r
	log.Info("kubernetes runner", "namespace", ns, "server", host, "template", kc.JobTemplate, "ttl", kc.JobTTL,
		"qps", kc.QPS, "burst", kc.Burst, "leaderElect", kc.LeaderElect)
	return kr, nil
}

// startLeaderElection: with MANAGER_LEADER_ELECT=true the manager starts
// passive and becomes active when this replica holds the Lease. lost gets
// an error if the Lease is lost (the manager then exits, to restart as a
// standby: what it had started is not known to have stopped). stop ends
// the campaign (releasing the Lease) and waits for it.
func startLeaderElection(ctx context.Context, cfg *Config, runner runner.Runner, m *manager.Manager, log *slog.Logger) (lost <-chan error, stop func(), err error) {
	if !cfg.Kube.LeaderElect {
		return nil, func() {}, nil
	}
	kr, ok := runner.(*kubeRunner)
	if !ok {
		return nil, nil, usageError{errors.New("MANAGER_LEADER_ELECT=true needs MANAGER_RUNNER=kubernetes (the Lease lives in the cluster)")}
	}
	name := cfg.Kube.LeaseName
	if name == "" {
		name = "itemq-" + cfg.Queue
	}
	host, _ := os.Hostname()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	identity := host + "_" + hex.EncodeToString(suffix)
	d := cfg.Kube.LeaseDuration
	m.SetActive(false)
	ectx, cancel := context.WithCancel(ctx)
	lostc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := kube.Elect(ectx, kr.client, kube.Election{
			Namespace: kr.namespace, Name: name, Identity: identity,
			LeaseDuration: d, RenewDeadline: d * 7 / 10, RetryPeriod: d / 5, Log: log,
		}, func(context.Context) {
			kr.leading.Store(true)
			m.SetActive(true)
			kr.SweepSoon()
		})
		if err != nil {
			kr.leading.Store(false)
			m.SetActive(false)
			lostc <- err
		}
	}()
	return lostc, func() { cancel(); <-done }, nil
}

// kubeClient is the Kubernetes client (KUBECONFIG, or in the cluster) and
// the namespace (MANAGER_NAMESPACE, or the client configuration's).
func kubeClient(cfg *Config, environ []string, log *slog.Logger) (kubernetes.Interface, string, string, error) {
	kc := cfg.Kube
	// client-go logs through klog: into the manager's log, as JSON.
	klog.SetSlogLogger(log.With("component", "client-go"))
	rc, ns, err := kube.ClientConfig(config.Environ(environ)["KUBECONFIG"], kc.QPS, kc.Burst)
	if err != nil {
		return nil, "", "", err
	}
	if kc.Namespace != "" {
		ns = kc.Namespace
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, "", "", fmt.Errorf("kubernetes client: %w", err)
	}
	return client, ns, rc.Host, nil
}

// newKubePool is the pool on Kubernetes (MANAGER_EXECUTION=pool): the
// record and attempts in MANAGER_STATE_DIR, the workers a Deployment built
// from MANAGER_JOB_TEMPLATE (docs/pool.md).
func newKubePool(cfg *Config, lcfg local.Config, environ []string, log *slog.Logger) (*pool.Runner, error) {
	kc := cfg.Kube
	if kc.JobTemplate == "" {
		return nil, usageError{errors.New("the pool on Kubernetes needs MANAGER_JOB_TEMPLATE: a YAML file holding the executor's batch/v1 Job template, whose pod the workers run")}
	}
	if kc.LeaderElect {
		return nil, usageError{errors.New("MANAGER_LEADER_ELECT=true does not work with MANAGER_EXECUTION=pool: the pool's record is in the manager's MANAGER_STATE_DIR, which a standby does not share")}
	}
	tmpl, err := kube.LoadTemplate(kc.JobTemplate)
	if err != nil {
		return nil, usageError{fmt.Errorf("MANAGER_JOB_TEMPLATE: %w", err)}
	}
	client, ns, host, err := kubeClient(cfg, environ, log)
	if err != nil {
		return nil, err
	}
	var command []string
	if len(cfg.steps) == 1 {
		command = cfg.steps[0]
	}
	workers, err := kube.NewWorkers(client, kube.WorkersConfig{Queue: cfg.Queue, Namespace: ns, Template: tmpl, Command: command,
		Env: cfg.jobEnv, URL: cfg.PoolURL, Token: cfg.PoolToken, Owner: cfg.PoolOwner, Log: log})
	if err != nil {
		return nil, usageError{fmt.Errorf("MANAGER_JOB_TEMPLATE %s: %w", kc.JobTemplate, err)}
	}
	log.Info("pool on kubernetes", "namespace", ns, "server", host, "deployment", kube.DeploymentName(cfg.Queue), "url", cfg.PoolURL, "owner", cfg.PoolOwner)
	return newPool(cfg, lcfg, workers)
}
