// Package blobclient is how an executor reaches buckets without linking the
// cloud SDKs: a storage.Storage whose operations run in an itemq-blob
// helper process, started on the first operation of a run and stopped at
// its end (Client), the line protocol between them, and its server side
// (Serve, which `itemq-blob serve` runs over blobstore).
//
// # Protocol
//
// The client writes requests to the helper's stdin and reads responses from
// its stdout, one JSON object per line. The helper first writes a hello
// line, {"protocol":"itemq-blob/1","version":"…"}. Every request has an id
// chosen by the client and an op:
//
//	{"id":1,"op":"exists","bucket":"s3://b?region=eu-west-1","key":"k/_SUCCESS.json"}
//	{"id":2,"op":"download","url":"s3://b/in/a.mp4?region=eu-west-1","file":"/tmp/itemq-run-1/input/a.mp4","max":10737418240}
//	{"id":3,"op":"upload","bucket":"s3://b?region=eu-west-1","key":"k/thumb001.png","file":"/tmp/out/thumb001.png","contentType":""}
//	{"id":4,"op":"delete","bucket":"s3://b?region=eu-west-1","key":"k/thumb001.png"}
//	{"id":5,"op":"cancel","target":3}
//
// and every request except cancel gets one response with the same id:
//
//	{"id":1,"exists":true}
//	{"id":2,"size":1234}
//	{"id":3,"size":40213,"sha256":"9f0c…"}
//	{"id":4,"error":{"kind":"not_found","message":"…"}}
//
// Files are passed by path (both processes share the file system), never
// as bodies. Requests run concurrently; responses come in the order they
// finish. cancel stops a running request, which then answers with an
// error. When its stdin closes the helper cancels what is still running,
// waits for it, and exits. Error kinds are storage.Kind values.
package blobclient

import "github.com/itemq/itemq/internal/executor/storage"

// Protocol names this protocol in the hello line.
const Protocol = "itemq-blob/1"

// Operations.
const (
	OpDownload = "download"
	OpExists   = "exists"
	OpUpload   = "upload"
	OpDelete   = "delete"
	OpCancel   = "cancel"
)

// Hello is the first line the helper writes.
type Hello struct {
	Protocol string `json:"protocol"`
	Version  string `json:"version,omitempty"`
}

// Request is one line from the client.
type Request struct {
	ID          uint64 `json:"id"`
	Op          string `json:"op"`
	URL         string `json:"url,omitempty"`    // download: the object URL
	Bucket      string `json:"bucket,omitempty"` // exists, upload, delete: the bucket URL
	Key         string `json:"key,omitempty"`
	File        string `json:"file,omitempty"` // download, upload: the local file
	Max         int64  `json:"max,omitempty"`  // download: the size cap
	ContentType string `json:"contentType,omitempty"`
	Target      uint64 `json:"target,omitempty"` // cancel: the id of the request to stop
}

// Response is one line from the helper.
type Response struct {
	ID     uint64     `json:"id"`
	Exists bool       `json:"exists,omitempty"`
	Size   int64      `json:"size,omitempty"`
	SHA256 string     `json:"sha256,omitempty"`
	Error  *WireError `json:"error,omitempty"`
}

// WireError is a failed request's error.
type WireError struct {
	Kind    storage.Kind `json:"kind"`
	Message string       `json:"message"`
}

// maxLine bounds a protocol line (URLs and paths; a request is far
// smaller).
const maxLine = 1 << 20
