package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/servers"
)

const wait = 60 * time.Second

// amb is a running itemq-bucket.
type amb struct {
	*testutil.Process
	t testing.TB
}

// startAmb runs itemq-bucket with the server's client environment (if srv
// is not nil) and env, and waits until it listens (and, unless noReady,
// until /readyz is 200).
func startAmb(t testing.TB, srv *servers.Server, noReady bool, env ...string) *amb {
	t.Helper()
	var full []string
	if srv != nil {
		full = append(full, srv.Env()...)
	}
	full = append(full, "ITEMQ_LOG_LEVEL=debug", "BUCKET_POLL_INTERVAL=200ms")
	p := testutil.StartServer(t, testutil.Binary(t, "ambassadors/bucket"), "ITEMQ_ADDR", append(full, env...)...)
	a := &amb{Process: p, t: t}
	if !noReady {
		a.waitReady(200, "")
	}
	return a
}

// logCount counts the log records with this message (and, if given, this
// value of the "problem" attribute).
func (a *amb) logCount(msgPrefix, problem string) int {
	n := 0
	for _, line := range strings.Split(a.Logs(), "\n") {
		var rec struct{ Msg, Problem string }
		if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(rec.Msg, msgPrefix) && (problem == "" || rec.Problem == problem) {
			n++
		}
	}
	return n
}

func (a *amb) do(method, path, body string) (int, http.Header, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.URL()+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: wait}).Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// waitReady waits until /readyz answers code with a body containing want.
func (a *amb) waitReady(code int, want string) string {
	a.t.Helper()
	var last string
	testutil.Eventually(a.t, wait, fmt.Sprintf("/readyz %d %q", code, want), func() error {
		a.Alive()
		got, _, body := a.do("GET", "/readyz", "")
		last = body
		if got != code || !strings.Contains(body, want) {
			return fmt.Errorf("/readyz: %d %s", got, body)
		}
		return nil
	})
	return last
}

func (a *amb) list() ([]string, error) { return a.listPages(2) }

// listPages follows the pages of the listing, limit names a page.
func (a *amb) listPages(limit int) ([]string, error) { return testutil.ListAll(a.URL(), limit) }

func (a *amb) waitListed(want ...string) {
	a.t.Helper()
	slices.Sort(want)
	testutil.Eventually(a.t, wait, "listing", func() error {
		got, err := a.list()
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			return fmt.Errorf("listed %q, want %q", got, want)
		}
		return nil
	})
}

// waitRetries waits until the driver has logged n failed listings since
// the call (its retries), so that a test can check what was logged once.
func (a *amb) waitRetries(n int) {
	a.t.Helper()
	start := a.logCount("bucket listing failed", "")
	testutil.Eventually(a.t, wait, "retries", func() error {
		if got := a.logCount("bucket listing failed", "") - start; got < n {
			return fmt.Errorf("%d retries so far", got)
		}
		return nil
	})
}

// s3 is a client of the test's versitygw bucket.
type s3Bucket struct {
	t      testing.TB
	c      *s3.Client
	bucket string
}

func newS3Bucket(t testing.TB, srv *servers.Server) (*s3Bucket, string) {
	t.Helper()
	u := srv.NewBucket(t)
	name := strings.TrimPrefix(u[:strings.Index(u, "?")], "s3://")
	return &s3Bucket{t: t, c: servers.S3Client(srv.Addr, servers.S3AccessKey, servers.S3SecretKey), bucket: name}, u
}

func (b *s3Bucket) put(key, content, contentType string) {
	b.t.Helper()
	_, err := b.c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &b.bucket, Key: &key,
		Body: strings.NewReader(content), ContentType: aws.String(contentType)})
	if err != nil {
		b.t.Fatalf("put %s: %v", key, err)
	}
}

func (b *s3Bucket) get(key string) (string, string, bool) {
	b.t.Helper()
	out, err := b.c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return "", "", false
	}
	defer out.Body.Close()
	body, _ := io.ReadAll(out.Body)
	return string(body), aws.ToString(out.ContentType), true
}

func (b *s3Bucket) del(key string) {
	b.t.Helper()
	if _, err := b.c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &key}); err != nil {
		b.t.Fatalf("delete %s: %v", key, err)
	}
}
