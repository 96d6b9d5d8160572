// Package aws is a stub of aws-sdk-go v1's package aws: only what
// github.com/u2takey/ffmpeg-go refers to. See ../README.md.
package aws

// Config is the stub of aws.Config; it has no settings.
type Config struct{}
