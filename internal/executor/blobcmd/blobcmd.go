// Package blobcmd is the itemq-blob command: the bucket helper of the
// executors (`itemq-blob serve`, the protocol of internal/executor/blobclient
// over blobstore) and small get, put and ls commands for users' scripts.
// It is the only executor-side binary that links the cloud SDKs.
package blobcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/executor/blobclient"
	"github.com/itemq/itemq/internal/executor/blobstore"
	"github.com/itemq/itemq/internal/executor/storage"
	"github.com/itemq/itemq/internal/logging"
	"github.com/itemq/itemq/internal/version"
	"github.com/itemq/itemq/itemapi"
)

// Binary is the command's name.
const Binary = "itemq-blob"

const usage = `usage: itemq-blob COMMAND [ARGS]

  get OBJECT_URL FILE            download an object to FILE (- for stdout)
  put FILE OBJECT_URL            upload FILE (- for stdin) as an object
  ls [-l] BUCKET_URL [PREFIX]    list the keys under PREFIX; -l: size, modification time, key
  serve [--log-level LEVEL]      the executors' helper: requests on stdin, responses on stdout
  --version                      print the version

Object URLs are an item's data.url (s3://bucket/key?…, gs://…, azblob://…,
file:///dir/file, mem://name/key); bucket URLs are OUTPUT_URL's
(s3://bucket?region=…, file:///dir, …). Credentials come from each SDK's
usual environment. Exit codes: 0 done, 1 failed, 2 bad usage or URL, or no
such object.
`

// Main runs itemq-blob with args (without the program name) and returns
// its exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "--version", "-version", "version":
		fmt.Fprintln(stdout, version.String(Binary))
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "serve":
		return serve(ctx, args, stdin, stdout, stderr)
	}
	store := blobstore.New()
	defer store.Close()
	var err error
	switch {
	case cmd == "get" && len(args) == 2:
		err = get(ctx, store, args[0], args[1], stdout)
	case cmd == "put" && len(args) == 2:
		err = put(ctx, store, args[0], args[1], stdin)
	case cmd == "ls" && len(args) >= 1 && len(args) <= 3:
		err = ls(ctx, store, args, stdout)
	default:
		fmt.Fprintf(stderr, "%s: bad command line %q\n\n%s", Binary, append([]string{cmd}, args...), usage)
		return 2
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s %s: %v\n", Binary, cmd, err)
	if ctx.Err() == nil && storage.KindOf(err) != storage.Transient {
		return 2
	}
	return 1
}

func get(ctx context.Context, store *blobstore.Store, objectURL, file string, stdout io.Writer) error {
	if file != "-" {
		_, err := store.Download(ctx, objectURL, file, math.MaxInt64)
		return err
	}
	bucketURL, key, err := itemapi.SplitObjectURL(objectURL)
	if err != nil {
		return storage.Classify(storage.Permanent, err)
	}
	b, err := store.Bucket(ctx, bucketURL)
	if err != nil {
		return err
	}
	_, err = store.Get(ctx, b, key, stdout, math.MaxInt64)
	return err
}

func put(ctx context.Context, store *blobstore.Store, file, objectURL string, stdin io.Reader) error {
	bucketURL, key, err := itemapi.SplitObjectURL(objectURL)
	if err != nil {
		return storage.Classify(storage.Permanent, err)
	}
	if file != "-" {
		_, err := store.Upload(ctx, bucketURL, key, file, "")
		return err
	}
	b, err := store.Bucket(ctx, bucketURL)
	if err != nil {
		return err
	}
	_, err = blobstore.Put(ctx, b, key, stdin, "")
	return err
}

func ls(ctx context.Context, store *blobstore.Store, args []string, stdout io.Writer) error {
	long := false
	if args[0] == "-l" {
		long, args = true, args[1:]
	}
	if len(args) == 0 || len(args) > 2 || strings.HasPrefix(args[0], "-") {
		return storage.Errorf(storage.Permanent, "want [-l] BUCKET_URL [PREFIX]")
	}
	prefix := ""
	if len(args) == 2 {
		prefix = args[1]
	}
	b, err := store.Bucket(ctx, args[0])
	if err != nil {
		return err
	}
	iter := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := iter.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return storage.Classify(storage.Transient, err)
		}
		if long {
			_, err = fmt.Fprintf(stdout, "%d\t%s\t%s\n", o.Size, o.ModTime.UTC().Format(time.RFC3339), o.Key)
		} else {
			_, err = fmt.Fprintln(stdout, o.Key)
		}
		if err != nil {
			return storage.Classify(storage.Permanent, err)
		}
	}
}

// serve runs the helper protocol. It ignores SIGTERM and SIGINT: an
// executor stopped by a signal to its process group still needs the helper
// to delete what it had uploaded, and closes the helper's stdin when it is
// done (or dies); SIGKILL stops it.
func serve(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	level := "info"
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case strings.HasPrefix(a, "--log-level="):
			level = strings.TrimPrefix(a, "--log-level=")
		case a == "--log-level" && i+1 < len(args):
			level = args[i+1]
			i++
		default:
			fmt.Fprintf(stderr, "%s serve: unknown argument %q\n", Binary, a)
			return 2
		}
	}
	log, err := logging.New(stderr, level, "json")
	if err != nil {
		fmt.Fprintf(stderr, "%s serve: %v\n", Binary, err)
		return 2
	}
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	if f, ok := stdout.(*os.File); ok && f == os.Stdout {
		// The protocol owns stdout: anything a library prints goes to
		// stderr (and so to the executor's log).
		os.Stdout = os.Stderr
	}
	store := blobstore.New()
	defer store.Close()
	if err := blobclient.Serve(ctx, store, stdin, stdout, version.Version, log); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("serve", "error", err.Error())
		return 1
	}
	return 0
}
