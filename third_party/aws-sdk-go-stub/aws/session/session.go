// Package session is a stub of aws-sdk-go v1's package session. See
// ../../README.md.
package session

import (
	"errors"

	"github.com/aws/aws-sdk-go/aws"
)

// ErrStub is returned by every operation: itemq does not link the AWS SDK
// v1.
var ErrStub = errors.New("aws-sdk-go v1 is not linked into itemq (ffmpeg-go's s3:// outputs are not supported; itemq uploads through its bucket helper)")

// Session is the stub of session.Session.
type Session struct{}

// NewSession returns ErrStub.
func NewSession(...*aws.Config) (*Session, error) { return nil, ErrStub }
