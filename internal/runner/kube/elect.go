package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
)

// Election configures leader election on a coordination.k8s.io Lease.
type Election struct {
	Namespace string
	Name      string // the Lease (default itemq-<queue>)
	Identity  string // this replica (hostname plus a random suffix)
	// LeaseDuration, RenewDeadline, RetryPeriod: defaults 10s, 7s, 2s, so
	// a leader that dies is replaced within about 12 s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       *slog.Logger
}

// ErrLostLease is returned by Elect when this replica was the leader and
// lost the Lease (it could not renew it in time).
var ErrLostLease = errors.New("lost the leader lease")

// Elect campaigns for the Lease until ctx ends. onElected is called (once,
// in a goroutine of its own) when this replica becomes the leader, with the
// leadership's context: it ends when the leadership does, so leader work
// started from it stops at once. Elect returns nil when ctx ends (the Lease
// is released, so another replica takes over at once) and ErrLostLease
// when the leadership was lost: the caller must stop acting as the leader
// at once (the manager exits, to restart as a standby).
func Elect(ctx context.Context, client kubernetes.Interface, e Election, onElected func(leading context.Context)) error {
	if e.LeaseDuration <= 0 {
		e.LeaseDuration = 10 * time.Second
	}
	if e.RenewDeadline <= 0 {
		e.RenewDeadline = 7 * time.Second
	}
	if e.RetryPeriod <= 0 {
		e.RetryPeriod = 2 * time.Second
	}
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	bc := record.NewBroadcaster(record.WithContext(ctx))
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events(e.Namespace)})
	defer bc.Shutdown()
	lock := &resourcelock.LeaseLock{
		LeaseMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name},
		Client:    client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{
			Identity:      e.Identity,
			EventRecorder: bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "itemq-manager", Host: e.Identity}),
		},
	}
	// Written in client-go's callback goroutine, read after Run returns.
	var led atomic.Bool
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   e.LeaseDuration,
		RenewDeadline:   e.RenewDeadline,
		RetryPeriod:     e.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            e.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				led.Store(true)
				e.Log.Info("elected leader", "lease", e.Name, "identity", e.Identity)
				onElected(leading)
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != e.Identity {
					e.Log.Info("the leader is another replica", "lease", e.Name, "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	e.Log.Info("campaigning for the leader lease", "lease", e.Namespace+"/"+e.Name, "identity", e.Identity)
	le.Run(ctx) // returns when ctx ends or the leadership is lost
	if ctx.Err() != nil {
		return nil
	}
	if led.Load() {
		return ErrLostLease
	}
	return fmt.Errorf("leader election ended without a leadership")
}
