package itemqcmd

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"
	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/itemapi"
)

const blobLong = `Read and write objects in buckets, in this process (internal/bucket).

Object URLs are an item's data.url (s3://bucket/key?…, gs://…, azblob://…,
file:///dir/file, mem://name/key); bucket URLs are OUTPUT_URL's
(s3://bucket?region=…, file:///dir, …). Credentials come from each SDK's
usual environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*).
Exit codes: 0 done, 1 failed, 2 bad usage or URL, or no such object.`

func newBlob() *cobra.Command {
	c := &cobra.Command{Use: "blob", Short: "read and write objects in buckets", Long: blobLong, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("a subcommand is needed: get, put, ls or rm")}
		}}
	c.AddCommand(
		&cobra.Command{Use: "get OBJECT_URL FILE", Short: "download an object to FILE (- for stdout)", Args: exactArgs(2), RunE: blobGet},
		&cobra.Command{Use: "put FILE OBJECT_URL", Short: "upload FILE (- for stdin) as an object", Args: exactArgs(2), RunE: blobPut},
		&cobra.Command{Use: "rm OBJECT_URL", Short: "delete an object", Args: exactArgs(1), RunE: blobRm},
		newLs(),
	)
	return c
}

func blobGet(cmd *cobra.Command, args []string) error {
	ctx, store := cmd.Context(), bucket.NewStore()
	defer store.Close()
	if args[1] != "-" {
		_, err := store.Download(ctx, args[0], args[1], math.MaxInt64)
		return err
	}
	b, key, err := openObject(cmd, store, args[0])
	if err != nil {
		return err
	}
	_, err = store.Get(ctx, b, key, cmd.OutOrStdout(), math.MaxInt64)
	return err
}

func blobPut(cmd *cobra.Command, args []string) error {
	ctx, store := cmd.Context(), bucket.NewStore()
	defer store.Close()
	b, key, err := openObject(cmd, store, args[1])
	if err != nil {
		return err
	}
	var r io.Reader = cmd.InOrStdin()
	if args[0] != "-" {
		bucketURL, _, _ := itemapi.SplitObjectURL(args[1])
		_, err := store.Upload(ctx, bucketURL, key, args[0], "")
		return err
	}
	_, err = bucket.Put(ctx, b, key, r, "")
	return err
}

func blobRm(cmd *cobra.Command, args []string) error {
	store := bucket.NewStore()
	defer store.Close()
	bucketURL, key, err := itemapi.SplitObjectURL(args[0])
	if err != nil {
		return bucket.Classify(bucket.Permanent, err)
	}
	return store.Delete(cmd.Context(), bucketURL, key)
}

func openObject(cmd *cobra.Command, store *bucket.Store, objectURL string) (*blob.Bucket, string, error) {
	bucketURL, key, err := itemapi.SplitObjectURL(objectURL)
	if err != nil {
		return nil, "", bucket.Classify(bucket.Permanent, err)
	}
	b, err := store.Bucket(cmd.Context(), bucketURL)
	return b, key, err
}

func newLs() *cobra.Command {
	var long bool
	c := &cobra.Command{
		Use:   "ls [-l] BUCKET_URL [PREFIX]",
		Short: "list the keys under PREFIX, one a line (-l: size, modification time, key)",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, store := cmd.Context(), bucket.NewStore()
			defer store.Close()
			prefix := ""
			if len(args) == 2 {
				prefix = args[1]
			}
			b, err := store.Bucket(ctx, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			iter := b.List(&blob.ListOptions{Prefix: prefix})
			for {
				o, err := iter.Next(ctx)
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return bucket.Classify(bucket.Transient, err)
				}
				if long {
					_, err = fmt.Fprintf(out, "%d\t%s\t%s\n", o.Size, o.ModTime.UTC().Format(time.RFC3339), o.Key)
				} else {
					_, err = fmt.Fprintln(out, o.Key)
				}
				if err != nil {
					return bucket.Classify(bucket.Permanent, err)
				}
			}
		},
	}
	c.Flags().BoolVarP(&long, "long", "l", false, "size, modification time and key")
	return c
}

// exitCodeOf maps a bucket error to the exit code: 2 for an object that
// does not exist or a request that cannot work, 1 for a transient failure.
func exitCodeOf(err error) (int, bool) {
	switch bucket.KindOf(err) {
	case bucket.NotFound, bucket.Permanent, bucket.TooLarge:
		return 2, true
	}
	return 1, true
}
