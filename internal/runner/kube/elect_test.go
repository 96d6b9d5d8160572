package kube

import (
	"context"
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// A leader that cannot renew its Lease loses it: Elect returns
// ErrLostLease and the leadership's context given to onElected has ended.
// Run with -race: the leadership flag is written in client-go's callback
// goroutine and read after the election ends (it was a plain bool).
func TestElectLostLease(t *testing.T) {
	c := fake.NewClientset()
	// The Lease is created (elected), but every renewal fails.
	c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd down"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leading := make(chan context.Context, 1)
	err := Elect(ctx, c, Election{
		Namespace: ns, Name: "itemq-q", Identity: "me",
		LeaseDuration: time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond,
	}, func(l context.Context) { leading <- l })
	if !errors.Is(err, ErrLostLease) {
		t.Fatalf("Elect = %v, want ErrLostLease", err)
	}
	select {
	case l := <-leading:
		select {
		case <-l.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the leadership's context did not end when the Lease was lost")
		}
	default:
		t.Fatal("onElected was not called")
	}
}

// Elect returns nil when its context ends.
func TestElectStops(t *testing.T) {
	c := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	elected := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Elect(ctx, c, Election{Namespace: ns, Name: "itemq-q", Identity: "me",
			LeaseDuration: time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond,
		}, func(context.Context) { close(elected) })
	}()
	<-elected
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Elect = %v after its context ended, want nil", err)
	}
}
