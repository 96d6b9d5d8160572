// Package s3manager is a stub of aws-sdk-go v1's package s3manager. See
// ../../../README.md.
package s3manager

import (
	"io"

	"github.com/aws/aws-sdk-go/aws/session"
)

// UploadInput is the stub of s3manager.UploadInput.
type UploadInput struct {
	Bucket *string
	Key    *string
	Body   io.Reader
}

// UploadOutput is the stub of s3manager.UploadOutput.
type UploadOutput struct{}

// Uploader is the stub of s3manager.Uploader.
type Uploader struct{}

// NewUploader returns an Uploader whose Upload always fails.
func NewUploader(*session.Session, ...func(*Uploader)) *Uploader { return &Uploader{} }

// Upload returns session.ErrStub at once. A body that is the reading end of
// a pipe (ffmpeg-go's case) is closed with that error, so the writer fails
// instead of blocking forever.
func (*Uploader) Upload(in *UploadInput, _ ...func(*Uploader)) (*UploadOutput, error) {
	if c, ok := in.Body.(interface{ CloseWithError(error) error }); ok {
		_ = c.CloseWithError(session.ErrStub)
	}
	return nil, session.ErrStub
}
