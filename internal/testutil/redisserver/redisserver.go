// Package redisserver starts the real redis-server (and redis-sentinel) that
// `make test` installs (hack/deps/20-redis.sh, ITEMQ_REDIS_SERVER and
// ITEMQ_REDIS_SENTINEL) as child processes on free 127.0.0.1 ports, each with
// its own directory, ready when the constructor returns and stopped when the
// test ends. It is apart from internal/testutil/servers so that the Redis
// tests do not build the cloud SDKs that package needs.
package redisserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/testutil"

	"github.com/itemq/itemq/internal/sysproc"
)

// Options configure a server.
type Options struct {
	// AOF turns on the append-only file with appendfsync always (the
	// default is no persistence at all: --save '' --appendonly no).
	AOF bool
	// Config lines added to the configuration file (e.g. ACL "user" lines,
	// "requirepass", "replicaof").
	Config []string
	// Password is what the readiness check (and Client) authenticates with.
	Username, Password string
	// TLS serves TLS only, with a certificate for 127.0.0.1 signed by a CA
	// made for this server (CAFile); clients need no certificate.
	TLS bool
}

// Server is one running redis-server or redis-sentinel.
type Server struct {
	Addr string // 127.0.0.1:port
	Dir  string
	// CAFile, CertFile, KeyFile: with Options.TLS.
	CAFile, CertFile, KeyFile string

	o        Options
	exe      string
	sentinel bool
	conf     string
	logf     string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Start starts a redis-server.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{o: o, exe: testutil.Need(t, "ITEMQ_REDIS_SERVER")}
	s.Dir = t.TempDir()
	if o.TLS {
		s.CAFile, s.CertFile, s.KeyFile = writeCerts(t, s.Dir)
	}
	s.start(t)
	return s
}

// StartSentinel starts a redis-sentinel watching the primary at master,
// named name, with a quorum of quorum and fast failure detection.
func StartSentinel(t testing.TB, name, master string, quorum int) *Server {
	t.Helper()
	host, port, _ := strings.Cut(master, ":")
	s := &Server{exe: testutil.Need(t, "ITEMQ_REDIS_SENTINEL"), sentinel: true}
	s.Dir = t.TempDir()
	s.o.Config = []string{
		fmt.Sprintf("sentinel monitor %s %s %s %d", name, host, port, quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s 1000", name),
		fmt.Sprintf("sentinel failover-timeout %s 5000", name),
		fmt.Sprintf("sentinel parallel-syncs %s 1", name),
	}
	s.start(t)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.conf = filepath.Join(s.Dir, "redis.conf")
	s.logf = filepath.Join(s.Dir, "redis.log")
	t.Cleanup(s.stop)
	var err error
	for try := 0; try < 3; try++ {
		s.Addr = testutil.FreeAddr(t)
		if err = s.writeConf(); err != nil {
			t.Fatal(err)
		}
		if err = s.launch(); err == nil {
			return
		}
	}
	t.Fatalf("start %s: %v", s.exe, err)
}

func (s *Server) writeConf() error {
	_, port, _ := strings.Cut(s.Addr, ":")
	lines := []string{"bind 127.0.0.1", "protected-mode no", "dir " + s.Dir, "daemonize no", "loglevel notice"}
	if s.o.TLS {
		lines = append(lines, "port 0", "tls-port "+port, "tls-cert-file "+s.CertFile, "tls-key-file "+s.KeyFile,
			"tls-ca-cert-file "+s.CAFile, "tls-auth-clients no")
	} else {
		lines = append(lines, "port "+port)
	}
	if !s.sentinel {
		lines = append(lines, `save ""`)
		if s.o.AOF {
			lines = append(lines, "appendonly yes", "appendfsync always")
		} else {
			lines = append(lines, "appendonly no")
		}
	}
	lines = append(lines, s.o.Config...)
	return os.WriteFile(s.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	logw, err := os.OpenFile(s.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logw.Close()
	args := []string{s.conf}
	if s.sentinel {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command(s.exe, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = sysproc.Child(true, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.exe, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	c := s.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = testutil.WaitFor(ctx, 30*time.Second, func() error {
		select {
		case <-exited:
			return errors.New("server exited")
		default:
		}
		return c.Ping(ctx).Err()
	})
	if err != nil {
		s.killLocked(syscall.SIGKILL)
		return fmt.Errorf("redis on %s not ready: %w\n%s", s.Addr, err, s.Log())
	}
	return nil
}

// Options are go-redis options for a client of this server.
func (s *Server) Options() *redis.Options {
	o := &redis.Options{Addr: s.Addr, Username: s.o.Username, Password: s.o.Password, MaxRetries: -1}
	if s.o.TLS {
		o.TLSConfig = clientTLS(s.CAFile)
	}
	return o
}

func (s *Server) client() *redis.Client { return redis.NewClient(s.Options()) }

// Client is a client of this server, closed at the end of the test.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(s.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill SIGKILLs the server (a crash: only what the AOF holds survives).
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked(syscall.SIGKILL)
}

// Restart starts a killed server again on the same address and directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	var err error
	for try := 0; try < 10; try++ {
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("restart redis on %s: %v", s.Addr, err)
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked(syscall.SIGTERM)
}

func (s *Server) killLocked(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, sig)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
}

// Log returns the end of the server's log (for failure messages).
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logf)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}
