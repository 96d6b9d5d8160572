// Package kubetest runs a real Kubernetes control plane for integration
// tests: etcd, kube-apiserver (RBAC on, token authentication),
// kube-controller-manager (job, garbagecollector, ttl-after-finished,
// serviceaccount, deployment and replicaset controllers) and KWOK as a fake node that runs pods to
// completion, all on free 127.0.0.1 ports with their files in a temporary
// directory. The binaries come from hack/k8s-build.sh (ITEMQ_K8S_BIN, set by
// `make test`); the KWOK stages from hack/kwok/stages.yaml.
//
// A package shares one control plane between its tests:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
//	func TestX(t *testing.T) {
//		cp := kubetest.Get(t)      // skips (or fails under make test) without ITEMQ_K8S_BIN
//		ns := cp.Namespace(t)      // a fresh namespace per test
//		...
//	}
//
// There is no scheduler: pods run only when their spec sets nodeName:
// kubetest.NodeName. A pod's annotations tell KWOK what to do (see
// hack/kwok/stages.yaml): itemq.test/exit-code: "N" makes its containers exit
// with N, itemq.test/delay: "2s" delays the end, itemq.test/hold: "true"
// keeps it running. Pods without nodeName stay Pending.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/itemq/itemq/internal/testutil"

	"github.com/itemq/itemq/internal/sysproc"
)

// NodeName is the KWOK node that runs pods. A Job template for tests sets
// spec.template.spec.nodeName to it (there is no scheduler).
const NodeName = "kwok-node-0"

// Annotations on a pod (its Job template's pod metadata) that steer KWOK.
const (
	AnnotationExitCode = "itemq.test/exit-code" // every container exits with this code
	AnnotationDelay    = "itemq.test/delay"     // a Go duration before the pod ends
	AnnotationHold     = "itemq.test/hold"      // "true": the pod keeps running
)

// ControlPlane is a running test control plane.
type ControlPlane struct {
	// Dir holds the PKI, kubeconfigs, data and logs (removed by Stop).
	Dir string
	// Host is the API server's URL (https://127.0.0.1:port).
	Host string
	// CAFile is the API server's CA certificate (PEM).
	CAFile string
	// AdminToken authenticates as a member of system:masters.
	AdminToken string
	// Kubeconfig is a kubeconfig file for the admin.
	Kubeconfig string
	// Bin is the directory of the binaries (kubectl is there too).
	Bin string

	tokens   map[string]string
	procs    []*proc
	launch   chan func()
	stopOnce sync.Once
	nsSeq    int
	nsMu     sync.Mutex
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// Options of Start.
type Options struct {
	// Bin holds etcd, kube-apiserver, kube-controller-manager and kwok.
	Bin string
	// Stages is the KWOK configuration (default: hack/kwok/stages.yaml of
	// the module).
	Stages string
	// Dir is where files go (default: a new temporary directory).
	Dir string
}

// Start starts a control plane and waits until it is ready: the API
// server answers, the controllers run, the KWOK node is Ready.
func Start(ctx context.Context, opts Options) (cp *ControlPlane, err error) {
	if opts.Bin == "" {
		return nil, errors.New("kubetest: Options.Bin is required")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kwok"} {
		if _, err := os.Stat(filepath.Join(opts.Bin, b)); err != nil {
			return nil, fmt.Errorf("kubetest: %w (run hack/k8s-build.sh)", err)
		}
	}
	dir := opts.Dir
	if dir == "" {
		removeStale()
		if dir, err = os.MkdirTemp("", "itemq-kubetest-"); err != nil {
			return nil, err
		}
		// The owner's pid: a test binary that died (a panic skips Stop; its
		// processes die with it) leaves the directory, which the next Start
		// removes.
		if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			return nil, err
		}
	}
	cp = &ControlPlane{Dir: dir, Bin: opts.Bin, launch: make(chan func())}
	go cp.launcher()
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, cp.logTails())
			cp.Stop()
		}
	}()
	if err := cp.writePKI(); err != nil {
		return nil, fmt.Errorf("kubetest: PKI: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	apiPort, kcmPort := ports[2], ports[3]
	cp.Host = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	cp.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := writeKubeconfig(cp.Kubeconfig, cp.Host, cp.CAFile, cp.AdminToken); err != nil {
		return nil, err
	}
	kcmConfig := filepath.Join(dir, "kcm.kubeconfig")
	if err := writeKubeconfig(kcmConfig, cp.Host, cp.CAFile, cp.tokens["kcm"]); err != nil {
		return nil, err
	}
	kwokConfig := filepath.Join(dir, "kwok.kubeconfig")
	if err := writeKubeconfig(kwokConfig, cp.Host, cp.CAFile, cp.tokens["kwok"]); err != nil {
		return nil, err
	}
	pki := filepath.Join(dir, "pki")

	// etcd
	if err := cp.start("etcd", "--name=test", "--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=test="+etcdPeer, "--unsafe-no-fsync=true", "--log-level=warn"); err != nil {
		return nil, err
	}
	if err := cp.waitHTTP(ctx, "etcd", etcdClient+"/health", nil, 60*time.Second); err != nil {
		return nil, err
	}

	// kube-apiserver
	if err := cp.start("kube-apiserver",
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--tls-cert-file="+filepath.Join(pki, "apiserver.crt"), "--tls-private-key-file="+filepath.Join(pki, "apiserver.key"),
		"--client-ca-file="+cp.CAFile,
		"--token-auth-file="+filepath.Join(pki, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	); err != nil {
		return nil, err
	}
	if err := cp.waitHTTP(ctx, "kube-apiserver", cp.Host+"/readyz", cp.adminHTTP(), 120*time.Second); err != nil {
		return nil, err
	}

	// kube-controller-manager
	if err := cp.start("kube-controller-manager",
		"--kubeconfig="+kcmConfig,
		"--authentication-kubeconfig="+kcmConfig, "--authorization-kubeconfig="+kcmConfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(dir, "kcm-certs"),
		"--leader-elect=false",
		"--controllers=job,garbagecollector,ttl-after-finished,serviceaccount,deployment,replicaset",
		"--kube-api-qps=500", "--kube-api-burst=1000",
		"--concurrent-job-syncs=10",
		"--root-ca-file="+cp.CAFile,
		"--profiling=false",
	); err != nil {
		return nil, err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
	if err := cp.waitHTTP(ctx, "kube-controller-manager", fmt.Sprintf("https://127.0.0.1:%d/healthz", kcmPort), insecure, 60*time.Second); err != nil {
		return nil, err
	}

	// kwok and its node
	stages := opts.Stages
	if stages == "" {
		stages = filepath.Join(moduleRoot(), "hack", "kwok", "stages.yaml")
	}
	if err := cp.start("kwok", "--kubeconfig="+kwokConfig, "--config="+stages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-ip=127.0.0.1", "--cidr=10.0.0.0/16"); err != nil {
		return nil, err
	}
	client := cp.MustClient()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        NodeName,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": NodeName},
	}}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("kubetest: create node: %w", err)
	}
	err = cp.poll(ctx, "the KWOK node to be Ready", 60*time.Second, func() error {
		n, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("not Ready")
	})
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// launcher starts every process from one goroutine locked to its OS thread,
// which lives until Stop: the processes get SIGKILL (Pdeathsig) when that
// thread ends, so a test binary that dies (a timeout panic, a kill) leaves
// no control plane behind.
func (cp *ControlPlane) launcher() {
	runtime.LockOSThread()
	for fn := range cp.launch {
		fn()
	}
	runtime.UnlockOSThread()
}

func (cp *ControlPlane) start(name string, args ...string) error {
	logPath := filepath.Join(cp.Dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(cp.Bin, name), args...)
	cmd.Dir = cp.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), "HOME="+cp.Dir) // kwok and friends write nothing into the real home
	cmd.SysProcAttr = sysproc.Child(true, syscall.SIGKILL)
	errc := make(chan error, 1)
	cp.launch <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		logf.Close()
		return fmt.Errorf("kubetest: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	cp.procs = append(cp.procs, p)
	return nil
}

// Stop kills every process group of the control plane, waits for them and
// removes the directory. It may be called more than once.
func (cp *ControlPlane) Stop() {
	cp.stopOnce.Do(func() {
		for i := len(cp.procs) - 1; i >= 0; i-- {
			p := cp.procs[i]
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
			// Whatever the process left in its group goes too.
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
		close(cp.launch)
		if os.Getenv("ITEMQ_KUBETEST_KEEP") == "" {
			_ = os.RemoveAll(cp.Dir)
		}
	})
}

// logTails is the end of each process's log, for error messages.
func (cp *ControlPlane) logTails() string {
	var b strings.Builder
	for _, p := range cp.procs {
		raw, _ := os.ReadFile(p.log)
		if len(raw) > 2000 {
			raw = raw[len(raw)-2000:]
		}
		fmt.Fprintf(&b, "\n--- %s log (tail) ---\n%s", p.name, raw)
	}
	return b.String()
}

// exited returns an error if a process of the control plane has exited.
func (cp *ControlPlane) exited() error {
	for _, p := range cp.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.cmd.ProcessState)
		default:
		}
	}
	return nil
}

func (cp *ControlPlane) poll(ctx context.Context, what string, timeout time.Duration, cond func() error) error {
	err := testutil.WaitFor(ctx, timeout, func() error {
		if err := cp.exited(); err != nil {
			return stopPolling{err}
		}
		return cond()
	})
	var sp stopPolling
	if errors.As(err, &sp) {
		err = sp.err
	}
	if err != nil {
		return fmt.Errorf("kubetest: waiting for %s: %w", what, err)
	}
	return nil
}

type stopPolling struct{ err error }

func (s stopPolling) Error() string { return s.err.Error() }

func (cp *ControlPlane) waitHTTP(ctx context.Context, name, url string, client *http.Client, timeout time.Duration) error {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return cp.poll(ctx, name, timeout, func() error {
		if err := cp.exited(); err != nil {
			// WaitFor keeps calling cond until the timeout; an exited
			// process will not come back, but the error says so.
			return err
		}
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
		}
		return nil
	})
}

// adminHTTP is an HTTP client that authenticates as the admin.
func (cp *ControlPlane) adminHTTP() *http.Client {
	rt, err := rest.TransportFor(cp.RestConfig())
	if err != nil {
		panic(err)
	}
	return &http.Client{Transport: rt, Timeout: 5 * time.Second}
}

// RestConfig is a client configuration of the admin, without client-side
// rate limits.
func (cp *ControlPlane) RestConfig() *rest.Config {
	return cp.TokenConfig(cp.AdminToken)
}

// TokenConfig is a client configuration that authenticates with token.
func (cp *ControlPlane) TokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            cp.Host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: cp.CAFile},
		QPS:             -1,
	}
}

// MustClient is an admin clientset.
func (cp *ControlPlane) MustClient() kubernetes.Interface {
	c, err := kubernetes.NewForConfig(cp.RestConfig())
	if err != nil {
		panic(err)
	}
	return c
}

// Client is an admin clientset.
func (cp *ControlPlane) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cp.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Namespace creates a fresh namespace for a test and waits until its
// "default" ServiceAccount exists (pods need it). Namespaces are not
// deleted (there is no namespace controller); the control plane goes at
// the end of the package's tests.
func (cp *ControlPlane) Namespace(t testing.TB) string {
	t.Helper()
	cp.nsMu.Lock()
	cp.nsSeq++
	n := cp.nsSeq
	cp.nsMu.Unlock()
	base := strings.ToLower(t.Name())
	base = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, base)
	base = strings.Trim(base, "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	name := fmt.Sprintf("%s-%d", base, n)
	cp.CreateNamespace(t, name)
	return name
}

// CreateNamespace creates a namespace with a given name and waits for its
// default ServiceAccount.
func (cp *ControlPlane) CreateNamespace(t testing.TB, name string) {
	t.Helper()
	ctx := context.Background()
	c := cp.Client(t)
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	testutil.Eventually(t, 60*time.Second, "the default ServiceAccount of "+name, func() error {
		_, err := c.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// Token returns a bearer token of a ServiceAccount (TokenRequest API).
func (cp *ControlPlane) Token(ctx context.Context, namespace, serviceAccount string) (string, error) {
	exp := int64(3600)
	tr, err := cp.MustClient().CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of %s/%s: %w", namespace, serviceAccount, err)
	}
	return tr.Status.Token, nil
}

// WriteKubeconfig writes a kubeconfig that authenticates with token into
// dir and returns its path.
func (cp *ControlPlane) WriteKubeconfig(dir, token string) (string, error) {
	p := filepath.Join(dir, "kubeconfig-"+randHex(4))
	return p, writeKubeconfig(p, cp.Host, cp.CAFile, token)
}

// Kubectl runs the control plane's own kubectl (the same version) as the
// admin and returns its combined output.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	bin := filepath.Join(cp.Bin, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("kubectl is not in %s (hack/k8s-build.sh builds it): %w", cp.Bin, err)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig=" + cp.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+cp.Dir)
	return cmd.CombinedOutput()
}

// ---- the shared control plane of a test package ----

var (
	sharedMu  sync.Mutex
	shared    *ControlPlane
	sharedErr error
)

// Main runs a package's tests and stops the shared control plane, if a
// test started one. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	if shared != nil {
		shared.Stop()
	}
	sharedMu.Unlock()
	os.Exit(code)
}

// Get returns the package's shared control plane, starting it on first
// use. Without ITEMQ_K8S_BIN it skips the test (fails under make test).
// Tests that use it must be run through Main (TestMain).
func Get(t testing.TB) *ControlPlane {
	t.Helper()
	bin := testutil.Need(t, "ITEMQ_K8S_BIN")
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		shared, sharedErr = Start(ctx, Options{Bin: bin})
		cancel()
		if sharedErr == nil {
			t.Logf("kubetest: control plane up in %v at %s (%s)", time.Since(start).Round(time.Millisecond), shared.Host, shared.Dir)
		}
	}
	if sharedErr != nil {
		t.Fatalf("kubetest: %v", sharedErr)
	}
	return shared
}

// ---- files ----

func (cp *ControlPlane) writePKI() error {
	pki := filepath.Join(cp.Dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "itemq-kubetest-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(7 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(7 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	cp.CAFile = filepath.Join(pki, "ca.crt")
	files := map[string][]byte{
		"ca.crt":        pemBlock("CERTIFICATE", caDER),
		"apiserver.crt": pemBlock("CERTIFICATE", srvDER),
	}
	for name, key := range map[string]*ecdsa.PrivateKey{"apiserver.key": srvKey, "sa.key": saKey} {
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		files[name] = pemBlock("EC PRIVATE KEY", der)
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	files["sa.pub"] = pemBlock("PUBLIC KEY", pub)
	cp.tokens = map[string]string{"admin": randHex(16), "kcm": randHex(16), "kwok": randHex(16)}
	cp.AdminToken = cp.tokens["admin"]
	// token,user,uid,"groups": all three are cluster admins (system:masters).
	var csv strings.Builder
	for _, u := range []string{"admin", "kcm", "kwok"} {
		fmt.Fprintf(&csv, "%s,%s,%s,\"system:masters\"\n", cp.tokens[u], u, u)
	}
	files["tokens.csv"] = []byte(csv.String())
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(pki, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeKubeconfig(path, host, caFile, token string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %q
    certificate-authority: %q
users:
- name: user
  user:
    token: %q
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: user
current-context: kubetest
`, host, caFile, token)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// removeStale removes the directories of control planes whose test binary
// is gone.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "itemq-kubetest-*"))
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}
