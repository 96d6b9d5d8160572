package memsource_test

import (
	"context"
	"testing"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/source/sourcetest"
)

type backend struct{ d *memsource.Driver }

func (b backend) Put(_ context.Context, _ *testing.T, name string, data []byte) (string, error) {
	return name, b.d.Put(name, data)
}

func (b backend) Remove(_ context.Context, _ *testing.T, name string) error {
	b.d.Remove(name)
	return nil
}

func TestConformance(t *testing.T) {
	mk := func(context.Context, *testing.T) (source.Driver, sourcetest.Backend, error) {
		d := memsource.New()
		return d, backend{d}, nil
	}
	sourcetest.RunConformanceTests(t, mk, sourcetest.Options{Watch: true, Submit: true, Ack: true, AckRemoves: true, Redrive: true})
}
