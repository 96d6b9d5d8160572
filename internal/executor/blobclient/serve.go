package blobclient

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/itemq/itemq/internal/executor/storage"
)

// Serve answers the requests read from in with st, writing the hello line
// and then the responses to out, until in ends. It then cancels the
// requests still running, waits for them, and returns: nil at EOF. When
// ctx ends, the running requests and those still to come fail. It does not
// close st.
func Serve(parent context.Context, st storage.Storage, in io.Reader, out io.Writer, version string, log *slog.Logger) error {
	ctx, cancelAll := context.WithCancel(parent)
	defer cancelAll()
	var (
		wmu     sync.Mutex
		enc     = json.NewEncoder(out)
		mu      sync.Mutex
		running = map[uint64]context.CancelFunc{}
		wg      sync.WaitGroup
		werr    error
	)
	write := func(v any) {
		wmu.Lock()
		defer wmu.Unlock()
		if werr == nil {
			if werr = enc.Encode(v); werr != nil {
				cancelAll() // nobody is listening any more
			}
		}
	}
	write(Hello{Protocol: Protocol, Version: version})

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var req Request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			write(Response{ID: req.ID, Error: &WireError{Kind: storage.Permanent, Message: fmt.Sprintf("bad request: %v", err)}})
			continue
		}
		if req.Op == OpCancel {
			mu.Lock()
			if cancel, ok := running[req.Target]; ok {
				cancel()
			}
			mu.Unlock()
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		mu.Lock()
		running[req.ID] = cancel
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			resp := serve1(rctx, st, req)
			mu.Lock()
			delete(running, req.ID)
			mu.Unlock()
			cancel()
			if resp.Error != nil {
				log.Debug("request failed", "id", req.ID, "op", req.Op, "kind", resp.Error.Kind, "error", resp.Error.Message, "duration", time.Since(t).String())
			} else {
				log.Debug("request done", "id", req.ID, "op", req.Op, "bytes", resp.Size, "duration", time.Since(t).String())
			}
			write(resp)
		}()
	}
	err := sc.Err()
	cancelAll()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("read requests: %w", err)
	}
	wmu.Lock()
	defer wmu.Unlock()
	if werr != nil {
		return fmt.Errorf("write responses: %w", werr)
	}
	return nil
}

func serve1(ctx context.Context, st storage.Storage, req Request) Response {
	resp := Response{ID: req.ID}
	var err error
	switch req.Op {
	case OpDownload:
		resp.Size, err = st.Download(ctx, req.URL, req.File, req.Max)
	case OpExists:
		resp.Exists, err = st.Exists(ctx, req.Bucket, req.Key)
	case OpUpload:
		var o storage.Object
		o, err = st.Upload(ctx, req.Bucket, req.Key, req.File, req.ContentType)
		resp.Size, resp.SHA256 = o.Size, o.SHA256
	case OpDelete:
		err = st.Delete(ctx, req.Bucket, req.Key)
	default:
		err = storage.Errorf(storage.Permanent, "unknown op %q", req.Op)
	}
	if err != nil {
		resp = Response{ID: req.ID, Error: &WireError{Kind: storage.KindOf(err), Message: err.Error()}}
	}
	return resp
}
