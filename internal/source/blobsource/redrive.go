package blobsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

var _ source.Redriver = (*Driver)(nil)

// maxStreamedRedrive is the largest archived object that Redrive copies
// back through the driver with a conditional write (atomic against a
// concurrent writer of the key); larger ones are copied by the provider
// after a check that the key is free.
const maxStreamedRedrive = 64 << 20

// Redrive puts a failed item back: the object under BUCKET_FAILED_PREFIX
// is copied back to the item's key, never over an object there (Conflict),
// then the archived copy is deleted, and the item is listed at once. Only
// BUCKET_ON_FAILED=move keeps failed objects where Redrive finds them.
func (d *Driver) Redrive(ctx context.Context, name string) (string, error) {
	if d.cfg.OnFailed != ActionMove {
		return "", source.Errorf(itemapi.ReasonMethodNotAllowed, "redrive: this bucket source keeps no failed archive (BUCKET_ON_FAILED=%s); only BUCKET_ON_FAILED=move keeps failed objects where redrive finds them", d.cfg.OnFailed)
	}
	key, ok := d.keyOf(name)
	if !ok {
		return "", source.Errorf(itemapi.ReasonNotFound, "redrive: %q is not an item name of this bucket source", name)
	}
	mu := &d.locks[lockIndex(name)]
	mu.Lock()
	defer mu.Unlock()

	archived := d.cfg.Prefix + d.cfg.FailedPrefix + name
	a, err := d.b.Attributes(ctx, archived)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound && !isBucketMissing(err) {
			return "", source.Errorf(itemapi.ReasonNotFound, "redrive: the failed archive holds no object %s", archived)
		}
		return "", d.redriveError("read attributes of "+archived, err)
	}
	if err := d.checkFree(ctx, key); err != nil {
		return "", err
	}
	if err := d.copyBack(ctx, archived, key, a); err != nil {
		return "", err
	}
	if err := d.b.Delete(ctx, archived); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		// The item is back in the queue: that is what was asked. The stale
		// archived copy only makes a later redrive of the name a Conflict
		// while the item is queued.
		d.log.Warn("redriven, but the archived copy could not be deleted", "item", name, "archived", archived, "err", err)
	}
	d.localPut(name, attrs{size: a.Size, mod: time.Now().UnixNano(), md5: string(a.MD5)})
	d.log.Info("redriven", "item", name, "from", archived)
	return name, nil
}

// checkFree answers Conflict when the key holds an object.
func (d *Driver) checkFree(ctx context.Context, key string) error {
	there, err := d.b.Exists(ctx, key)
	if err != nil {
		return d.redriveError("check "+key, err)
	}
	if there {
		return conflict(key)
	}
	return nil
}

func conflict(key string) error {
	return source.Errorf(itemapi.ReasonConflict, "redrive: the bucket already holds an object %s; move or delete it first", key)
}

// copyBack copies the archived object to key without replacing an object
// there: a conditional write of its content where the provider has them
// and the object is not large, else the provider's copy.
func (d *Driver) copyBack(ctx context.Context, archived, key string, a *blob.Attributes) error {
	if d.ifNotExist.Load() && a.Size <= maxStreamedRedrive {
		err := d.streamBack(ctx, archived, key, a)
		if gcerrors.Code(err) != gcerrors.Unimplemented {
			return err
		}
		d.ifNotExist.Store(false)
	}
	if err := d.b.Copy(ctx, key, archived, nil); err != nil {
		return d.redriveError(fmt.Sprintf("copy %s to %s", archived, key), err)
	}
	return nil
}

// streamBack writes the archived object's content to key with IfNotExist.
func (d *Driver) streamBack(ctx context.Context, archived, key string, a *blob.Attributes) error {
	r, err := d.b.NewReader(ctx, archived, nil)
	if err != nil {
		return d.redriveError("read "+archived, err)
	}
	defer r.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := d.b.NewWriter(wctx, key, &blob.WriterOptions{
		ContentType: a.ContentType, ContentEncoding: a.ContentEncoding, ContentLanguage: a.ContentLanguage,
		ContentDisposition: a.ContentDisposition, CacheControl: a.CacheControl, Metadata: a.Metadata,
		IfNotExist: true,
	})
	if err != nil {
		return d.redriveError("write "+key, err)
	}
	if _, err := io.Copy(w, r); err != nil {
		cancel() // abort the write
		_ = w.Close()
		return d.redriveError(fmt.Sprintf("copy %s to %s", archived, key), err)
	}
	if err := w.Close(); err != nil {
		if gcerrors.Code(err) == gcerrors.Unimplemented {
			return err
		}
		if c := gcerrors.Code(err); c == gcerrors.FailedPrecondition || c == gcerrors.AlreadyExists {
			return conflict(key)
		}
		return d.redriveError("write "+key, err)
	}
	return nil
}

// redriveError classifies an error of Redrive; unlike objectError, a
// missing object does not touch the index.
func (d *Driver) redriveError(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	p := classify(err)
	if p == problemAuth || p == problemMissing || p == problemUnreachable {
		return source.Errorf(itemapi.ReasonUnavailable, "redrive: %s: %s: %w", what, hint(p), err)
	}
	return fmt.Errorf("redrive: %s: %w", what, err)
}
