// Package servers starts the real object-storage servers that `make test`
// installs (hack/deps/30-storage.sh): versitygw for S3, fake-gcs-server for
// GCS and Azurite for Azure Blob. Each runs as a child process on a free
// 127.0.0.1 port with its own temporary directory, is ready when the
// constructor returns, and is stopped when the test ends.
//
// gocloud.dev reads the providers' credentials and emulator settings from
// the process environment: a test that opens buckets in-process calls
// Server.Setenv (which rules out t.Parallel for that test), and a test that
// runs a binary passes Server.Env to it explicitly. Beware: gocloud's
// azblob:// URL opener reads AZURE_STORAGE_* only once per process (the
// Azurite account and key are the same for every server, and each
// server's address is in its bucket URLs, so that is enough), whereas
// s3:// and gs:// read their variables at every open.
package servers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/itemq/itemq/internal/testutil"

	"github.com/itemq/itemq/internal/sysproc"
)

// Kinds of server.
const (
	S3    = "s3"
	GCS   = "gcs"
	Azure = "azure"
)

// Credentials the servers are started with.
const (
	S3AccessKey  = "itemqadmin"
	S3SecretKey  = "itemqsecret"
	S3Region     = "us-east-1"
	AzureAccount = "devstoreaccount1"
	// AzureKey is Azurite's well-known development key.
	AzureKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Server is one running storage server.
type Server struct {
	Kind string // S3, GCS or Azure
	Addr string // 127.0.0.1:port
	// Dir is the server's data directory (for versitygw's posix backend, one
	// subdirectory per bucket, one file per object).
	Dir string

	exe    string
	logf   string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// All starts one server of each kind (for table-driven tests).
func All(t testing.TB) []*Server {
	t.Helper()
	return []*Server{VersityGW(t), FakeGCS(t), Azurite(t)}
}

// VersityGW starts versitygw (S3, posix backend); ITEMQ_VERSITYGW names it.
func VersityGW(t testing.TB) *Server {
	t.Helper()
	return start(t, S3, testutil.Need(t, "ITEMQ_VERSITYGW"))
}

// FakeGCS starts fake-gcs-server (filesystem backend); ITEMQ_FAKEGCS names it.
func FakeGCS(t testing.TB) *Server {
	t.Helper()
	return start(t, GCS, testutil.Need(t, "ITEMQ_FAKEGCS"))
}

// Azurite starts Azurite's blob service; ITEMQ_AZURITE names azurite-blob.
func Azurite(t testing.TB) *Server {
	t.Helper()
	return start(t, Azure, testutil.Need(t, "ITEMQ_AZURITE"))
}

func start(t testing.TB, kind, exe string) *Server {
	t.Helper()
	s := &Server{Kind: kind, exe: exe}
	root := t.TempDir()
	s.Dir = filepath.Join(root, "data")
	s.logf = filepath.Join(root, kind+".log")
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop() })
	// A free port can be taken between the check and the server's bind: try
	// a few.
	var err error
	for try := 0; try < 3; try++ {
		s.Addr = testutil.FreeAddr(t)
		if err = s.launch(); err == nil {
			return s
		}
	}
	t.Fatalf("start %s server: %v", kind, err)
	return nil
}

// Stop stops the server, keeping its data, as an outage would.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop()
}

// Start starts a stopped server again on the same address and data.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	var err error
	for try := 0; try < 5; try++ { // the old socket may linger a moment
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("restart %s server on %s: %v", s.Kind, s.Addr, err)
}

func (s *Server) args() []string {
	host, port, _ := strings.Cut(s.Addr, ":")
	switch s.Kind {
	case S3:
		return []string{"--port", s.Addr, "posix", s.Dir}
	case GCS:
		return []string{"-scheme", "http", "-host", host, "-port", port,
			"-backend", "filesystem", "-filesystem-root", s.Dir,
			// Downloads are routed by Host header: it must be the address clients use.
			"-public-host", s.Addr, "-external-url", "http://" + s.Addr, "-log-level", "warn"}
	case Azure:
		// --location and --inMemoryPersistence exclude each other.
		return []string{"--blobHost", host, "--blobPort", port, "--location", s.Dir,
			"--skipApiVersionCheck", "--loose", "--silent"}
	}
	panic("unknown kind " + s.Kind)
}

func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	logw, err := os.OpenFile(s.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logw.Close()
	cmd := exec.Command(s.exe, s.args()...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+S3AccessKey, "ROOT_SECRET_ACCESS_KEY="+S3SecretKey, "VGW_REGION="+S3Region)
	// Own process group, killed with the test process if it dies first.
	cmd.SysProcAttr = sysproc.Child(true, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.exe, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = testutil.WaitFor(ctx, 60*time.Second, func() error {
		select {
		case <-exited:
			return errExited
		default:
		}
		return s.ping(ctx)
	})
	if err != nil {
		s.kill()
		return fmt.Errorf("%s on %s not ready: %w\n%s", s.Kind, s.Addr, err, tail(s.logf))
	}
	return nil
}

var errExited = errors.New("server exited")

// ping answers nil once the server answers HTTP.
func (s *Server) ping(ctx context.Context) error {
	u := "http://" + s.Addr + "/"
	if s.Kind == GCS {
		u = "http://" + s.Addr + "/storage/v1/b"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if s.Kind == GCS && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
}

// kill stops the process: SIGTERM, then SIGKILL after 5 s. s.mu is held.
func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// Log returns the server's output so far (for failure messages).
func (s *Server) Log() string { return tail(s.logf) }

// Env is the environment a client of this server needs (gocloud reads it
// from the process environment).
func (s *Server) Env() []string {
	switch s.Kind {
	case S3:
		return []string{
			"AWS_ACCESS_KEY_ID=" + S3AccessKey, "AWS_SECRET_ACCESS_KEY=" + S3SecretKey, "AWS_REGION=" + S3Region,
			// Nothing from the machine's own AWS setup.
			"AWS_PROFILE=", "AWS_SESSION_TOKEN=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			"AWS_EC2_METADATA_DISABLED=true",
		}
	case GCS:
		// host:port without a scheme: gocloud adds "http://" itself.
		return []string{"STORAGE_EMULATOR_HOST=" + s.Addr}
	case Azure:
		return []string{"AZURE_STORAGE_ACCOUNT=" + AzureAccount, "AZURE_STORAGE_KEY=" + AzureKey}
	}
	return nil
}

// Setenv sets Env in the test process for the rest of the test. Such a test
// cannot run in parallel with others.
func (s *Server) Setenv(t testing.TB) {
	t.Helper()
	type setenver interface{ Setenv(k, v string) }
	se, ok := t.(setenver)
	if !ok {
		t.Fatalf("%T cannot Setenv", t)
	}
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		se.Setenv(k, v)
	}
}

// BucketURL is the gocloud URL of a bucket on this server. The endpoint is
// in the URL, so that object URLs made from it open without more settings.
func (s *Server) BucketURL(bucket string) string {
	switch s.Kind {
	case S3:
		q := url.Values{"endpoint": {"http://" + s.Addr}, "use_path_style": {"true"}, "region": {S3Region}}
		return "s3://" + bucket + "?" + q.Encode()
	case GCS:
		return "gs://" + bucket
	case Azure:
		q := url.Values{"domain": {s.Addr}, "protocol": {"http"}, "localemu": {"true"}}
		return "azblob://" + bucket + "?" + q.Encode()
	}
	return ""
}

// NewBucket creates a bucket with a fresh name (3-63 lowercase characters,
// valid on every provider) and returns its gocloud URL.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	var r [5]byte
	_, _ = rand.Read(r[:])
	name := "itemq-" + hex.EncodeToString(r[:])
	if err := s.CreateBucket(context.Background(), name); err != nil {
		t.Fatalf("create bucket %s on %s: %v", name, s.Kind, err)
	}
	return s.BucketURL(name)
}

// CreateBucket creates a bucket (a container on Azure) with the server's
// native API, without touching the process environment.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch s.Kind {
	case S3:
		c := S3Client(s.Addr, S3AccessKey, S3SecretKey)
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
		return err
	case GCS:
		body := strings.NewReader(fmt.Sprintf(`{"name":%q}`, name))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.Addr+"/storage/v1/b?project=itemq-test", body)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST /storage/v1/b: %s", resp.Status)
		}
		return nil
	case Azure:
		cred, err := container.NewSharedKeyCredential(AzureAccount, AzureKey)
		if err != nil {
			return err
		}
		cc, err := container.NewClientWithSharedKeyCredential("http://"+s.Addr+"/"+AzureAccount+"/"+name, cred, nil)
		if err != nil {
			return err
		}
		_, err = cc.Create(ctx, nil)
		return err
	}
	return fmt.Errorf("unknown kind %q", s.Kind)
}

// S3Client is an S3 client for a server at addr with static credentials.
func S3Client(addr, accessKey, secretKey string) *s3.Client {
	return s3.New(s3.Options{
		Region:       S3Region,
		BaseEndpoint: aws.String("http://" + addr),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})
}
