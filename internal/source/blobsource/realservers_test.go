package blobsource_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"

	"github.com/itemq/itemq/internal/source/blobsource"
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

// TestRealServersReadiness: Ready names the problem on each provider: a
// missing bucket, and (where the server checks them) wrong credentials.
func TestRealServersReadiness(t *testing.T) {
	for _, srv := range servers.All(t) {
		t.Run(srv.Kind, func(t *testing.T) {
			ready := func(t *testing.T, bucketURL string) error {
				b, err := blob.OpenBucket(context.Background(), bucketURL)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				d, err := blobsource.New(context.Background(), b, testConfig(bucketURL), testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := d.Ready(ctx); err != nil {
					return err // the live check of the bucket failed
				}
				return nil
			}
			readyAfterSync := func(t *testing.T, bucketURL string) error {
				b, err := blob.OpenBucket(context.Background(), bucketURL)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				d := newDriver(t, b, testConfig(bucketURL))
				return d.Ready(context.Background())
			}
			srv.Setenv(t)
			if err := readyAfterSync(t, srv.NewBucket(t)); err != nil {
				t.Fatalf("Ready on a good bucket: %v", err)
			}
			if err := ready(t, srv.BucketURL("itemq-never-created")); err == nil || !strings.Contains(err.Error(), "does not exist") {
				t.Errorf("Ready on a missing bucket: %v", err)
			}
			// Wrong credentials. gocloud's azblob:// opener reads AZURE_STORAGE_*
			// once per process, so the wrong key goes into a client of its own.
			u := srv.NewBucket(t)
			switch srv.Kind {
			case servers.S3:
				t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
				if err := ready(t, u); err == nil || !strings.Contains(err.Error(), "access to the bucket was denied") {
					t.Errorf("Ready with a wrong AWS_SECRET_ACCESS_KEY: %v", err)
				}
			case servers.Azure:
				name := strings.TrimPrefix(u[:strings.Index(u, "?")], "azblob://")
				cred, err := container.NewSharedKeyCredential(servers.AzureAccount, "d3Jvbmcgc2VjcmV0IGtleQ==")
				if err != nil {
					t.Fatal(err)
				}
				cc, err := container.NewClientWithSharedKeyCredential("http://"+srv.Addr+"/"+servers.AzureAccount+"/"+name, cred, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, err := azureblob.OpenBucket(context.Background(), cc, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				d, err := blobsource.New(context.Background(), b, testConfig(u), testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				if err := d.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "access to the bucket was denied") {
					t.Errorf("Ready with a wrong Azure key: %v", err)
				}
			}
			// (fake-gcs-server does not check credentials.)
		})
	}
}
