package managercmd

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// Configuration errors of the podman and docker runners are usage errors
// (exit code 2) that name the variable.
func TestContainerRunnerConfigErrors(t *testing.T) {
	base := []string{"MANAGER_SOURCE=http://127.0.0.1:1", "MANAGER_STATE_DIR=" + t.TempDir(), "MANAGER_RUNNER=podman"}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, "MANAGER_IMAGE"},
		{[]string{"MANAGER_IMAGE=x", "MANAGER_CONTAINER_ENGINE=/nonexistent/podman"}, "MANAGER_CONTAINER_ENGINE"},
		{[]string{"MANAGER_IMAGE=x", "MANAGER_CONTAINER_ENGINE=/bin/true", "MANAGER_CONTAINER_VOLUMES=/a:/b"}, "MANAGER_CONTAINER_VOLUMES"},
		{[]string{"MANAGER_IMAGE=x", "MANAGER_CONTAINER_ENGINE=/bin/true", `MANAGER_CONTAINER_RUN_ARGS=["--read-only",""]`}, "MANAGER_CONTAINER_RUN_ARGS"},
		{[]string{"MANAGER_IMAGE=x", "MANAGER_CONTAINER_ENGINE=/bin/true", "MANAGER_CONTAINER_PULL=sometimes"}, "pull policy"},
	} {
		cfg, err := loadConfig(append(append([]string(nil), base...), c.env...))
		if err != nil {
			t.Fatal(err)
		}
		_, err = newRunner(context.Background(), cfg, nil, slog.New(slog.DiscardHandler))
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, &ue) {
			t.Errorf("%v: error %v, want a usage error naming %s", c.env, err, c.want)
		}
	}
}
