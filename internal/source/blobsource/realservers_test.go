package blobsource_test

import (
	"context"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/testutil/servers"
)

// The conformance suite against real servers: versitygw (S3),
// fake-gcs-server (GCS) and Azurite (Azure Blob), each a child process with
// a fresh bucket per subtest. These tests set the providers' environment in
// the process (gocloud reads it there), so they do not run in parallel.

func runServerConformance(t *testing.T, srv *servers.Server) {
	srv.Setenv(t)
	runConformance(t, func(ctx context.Context, t *testing.T) (*blob.Bucket, string) {
		u := srv.NewBucket(t)
		b, err := blob.OpenBucket(ctx, u)
		if err != nil {
			t.Fatalf("open %s: %v", u, err)
		}
		t.Cleanup(func() { b.Close() })
		return b, u
	})
}

func TestConformanceS3VersityGW(t *testing.T) { runServerConformance(t, servers.VersityGW(t)) }

func TestConformanceGCSFake(t *testing.T) { runServerConformance(t, servers.FakeGCS(t)) }

func TestConformanceAzurite(t *testing.T) { runServerConformance(t, servers.Azurite(t)) }

// openServerBucket sets the server's environment and opens a fresh bucket.
func openServerBucket(t *testing.T, srv *servers.Server) (*blob.Bucket, string) {
	srv.Setenv(t)
	u := srv.NewBucket(t)
	b, err := blob.OpenBucket(context.Background(), u)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	t.Cleanup(func() { b.Close() })
	return b, u
}

// TestRealServers runs the driver-specific checks that depend on the
// provider (copy, delete, MD5 and times in listings) on each real server.
func TestRealServers(t *testing.T) {
	for _, srv := range servers.All(t) {
		t.Run(srv.Kind, func(t *testing.T) {
			t.Run("CrashBetweenCopyAndDelete", func(t *testing.T) {
				b, u := openServerBucket(t, srv)
				testCrashBetweenCopyAndDelete(t, b, u)
			})
			t.Run("Recovery", func(t *testing.T) {
				b, u := openServerBucket(t, srv)
				testRecovery(t, b, u, 1100*time.Millisecond)
			})
		})
	}
}
