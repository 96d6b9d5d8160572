package blobsource

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// problem is what is wrong with the bucket, as far as a client can tell.
type problem int

const (
	problemUnknown     problem = iota // nothing known yet
	problemNone                       // reachable and listable
	problemAuth                       // credentials wrong, missing or without permission
	problemMissing                    // the bucket does not exist
	problemUnreachable                // the server does not answer (down, wrong endpoint, DNS)
	problemOther                      // anything else (server errors, unexpected answers)
)

func (p problem) String() string {
	switch p {
	case problemNone:
		return "ok"
	case problemAuth:
		return "access denied"
	case problemMissing:
		return "bucket missing"
	case problemUnreachable:
		return "unreachable"
	case problemOther:
		return "error"
	}
	return "unknown"
}

// errBucketMissing is what IsAccessible's false becomes.
var errBucketMissing = errors.New("the bucket does not exist")

// S3 error codes that mean the credentials are wrong or not allowed.
var s3AuthCodes = map[string]bool{
	"AccessDenied": true, "Forbidden": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true, "AuthorizationHeaderMalformed": true,
	"InvalidClientTokenId": true, "UnrecognizedClientException": true, "AccountProblem": true,
	"AllAccessDisabled": true, "MissingSecurityHeader": true, "Unauthorized": true,
}

// looksLikeAuthCode catches the auth error codes of S3-compatible servers
// that AWS does not use (versitygw answers an unknown access key ID with
// 404 XAdminUserNotFound).
func looksLikeAuthCode(code string) bool {
	for _, w := range []string{"AccessKey", "Signature", "Credential", "UserNotFound", "Unauthorized", "Authentication"} {
		if strings.Contains(code, w) {
			return true
		}
	}
	return false
}

// classify says what kind of problem err shows.
func classify(err error) problem {
	if err == nil {
		return problemNone
	}
	if errors.Is(err, errBucketMissing) {
		return problemMissing
	}
	// Auth first: gcsblob reports a 403 as NotFound ("or it may not exist").
	var apiErr interface {
		ErrorCode() string
	}
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		if s3AuthCodes[code] || looksLikeAuthCode(code) {
			return problemAuth
		}
		if code == "NoSuchBucket" || code == "ContainerNotFound" {
			return problemMissing
		}
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		if c := status.HTTPStatusCode(); c == http.StatusUnauthorized || c == http.StatusForbidden {
			return problemAuth
		}
	}
	var azErr *azcore.ResponseError
	if errors.As(err, &azErr) {
		switch {
		case azErr.StatusCode == http.StatusUnauthorized || azErr.StatusCode == http.StatusForbidden:
			return problemAuth
		case azErr.ErrorCode == "ContainerNotFound":
			return problemMissing
		}
	}
	var gErr *googleapi.Error
	if errors.As(err, &gErr) && (gErr.Code == http.StatusUnauthorized || gErr.Code == http.StatusForbidden) {
		return problemAuth
	}
	msg := err.Error()
	if strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "could not find default credentials") ||
		strings.Contains(msg, "no EC2 IMDS role found") || strings.Contains(msg, "AuthenticationFailed") {
		return problemAuth
	}
	if gcerrors.Code(err) == gcerrors.PermissionDenied {
		return problemAuth
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") ||
		strings.Contains(msg, "EOF") {
		return problemUnreachable
	}
	if gcerrors.Code(err) == gcerrors.NotFound {
		return problemMissing
	}
	return problemOther
}

// hint is the sentence the log and /readyz give for a problem.
func hint(p problem) string {
	switch p {
	case problemAuth:
		return "access to the bucket was denied: the credentials are missing, wrong or lack permission " +
			"(S3: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_PROFILE; GCS: GOOGLE_APPLICATION_CREDENTIALS; " +
			"Azure: AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING)"
	case problemMissing:
		return "the bucket does not exist (check BUCKET_URL)"
	case problemUnreachable:
		return "the storage server is unreachable (down, or a wrong endpoint in BUCKET_URL)"
	case problemOther:
		return "the storage server answered with an error"
	}
	return ""
}

// health remembers the bucket's last known problem and logs each change
// once, however often the same problem is seen again.
type health struct {
	log    *slog.Logger
	bucket string

	mu   sync.Mutex
	last problem
}

// report records the outcome of an operation that needs the bucket (a
// listing, a readiness check) and returns err classified for callers.
func (h *health) report(err error) error {
	p := classify(err)
	h.mu.Lock()
	changed := p != h.last
	was := h.last
	h.last = p
	h.mu.Unlock()
	if changed {
		switch {
		case p == problemNone && was == problemUnknown:
			h.log.Info("bucket is reachable", "bucket", h.bucket)
		case p == problemNone:
			h.log.Info("bucket is reachable again", "bucket", h.bucket, "was", was.String())
		default:
			h.log.Error("bucket not usable: "+hint(p), "bucket", h.bucket, "problem", p.String(), "err", err)
		}
	}
	if err == nil {
		return nil
	}
	return source.Errorf(itemapi.ReasonUnavailable, "bucket %s: %s: %w", h.bucket, hint(p), err)
}

// state is the last known problem.
func (h *health) state() problem {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}
