package itemqcmd

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/itemq/itemq/itemapi"
)

func newTop(c *conn) *cobra.Command {
	var interval time.Duration
	var once bool
	var running int
	cmd := &cobra.Command{
		Use:   "top",
		Short: "a live view of the queue: jobs by state, λ, S, c, and the running jobs",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return usageError{fmt.Errorf("--interval %v: at least 100ms", interval)}
			}
			jc, err := c.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			clear := !once && isTerminal(out)
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				frame, err := topFrame(cmd, jc, running)
				if err != nil {
					if once {
						return err
					}
					frame = "error: " + err.Error() + "\n"
				}
				if clear {
					fmt.Fprint(out, "\033[H\033[2J")
				}
				fmt.Fprint(out, frame)
				if once {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-t.C:
				}
			}
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh this often")
	cmd.Flags().BoolVar(&once, "once", false, "print one view and exit")
	cmd.Flags().IntVar(&running, "running", 20, "show at most this many running jobs")
	return cmd
}

var topStates = []itemapi.State{itemapi.StatePending, itemapi.StateRunning, itemapi.StateSucceeded,
	itemapi.StateFailed, itemapi.StateDead, itemapi.StateCancelled}

func topFrame(cmd *cobra.Command, jc *itemapi.JobsClient, running int) (string, error) {
	ctx := cmd.Context()
	sum, err := jc.Summary(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	role := "leader"
	if !sum.Leader {
		role = "standby"
	}
	synced := ""
	if !sum.Synced {
		synced = ", source not listed yet"
	}
	fmt.Fprintf(&b, "queue %s (%s%s)  %s\n\n", sum.Queue, role, synced, time.Now().Format("15:04:05"))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	var heads, counts []string
	for _, st := range topStates {
		heads = append(heads, strings.ToUpper(string(st)))
		counts = append(counts, fmt.Sprint(sum.Counts[st]))
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	fmt.Fprintln(tw, strings.Join(counts, "\t"))
	tw.Flush()
	fmt.Fprintf(&b, "\nλ %.2f items/s   S %.2fs   c %d   active %d   backlog %d\n\n", sum.Lambda, sum.S, sum.Parallelism, sum.Active, sum.Backlog)
	if running > 0 {
		l, err := jc.List(ctx, itemapi.StateRunning, running, "")
		if err != nil {
			return "", err
		}
		if len(l.Items) == 0 {
			b.WriteString("no job is running\n")
		} else if err := jobTable(&b, l.Items, false); err != nil {
			return "", err
		}
		if l.Continue != "" {
			fmt.Fprintf(&b, "… and more (itemq jobs --state running)\n")
		}
	}
	return b.String(), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newItems() *cobra.Command {
	var source, token string
	cmd := &cobra.Command{
		Use:   "items [--source URL]",
		Short: "list an ambassador's items, one name a line",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source == "" {
				source = os.Getenv("ITEMQ_SOURCE_URL")
			}
			if source == "" {
				return usageError{fmt.Errorf("no ambassador: give --source URL or set ITEMQ_SOURCE_URL")}
			}
			if token == "" {
				token = os.Getenv("ITEMQ_SOURCE_TOKEN")
			}
			var opts []itemapi.ClientOption
			if token != "" {
				opts = append(opts, itemapi.WithBearerToken(token))
			}
			cl, err := itemapi.NewClient(source, opts...)
			if err != nil {
				return usageError{fmt.Errorf("--source %q: %w", source, err)}
			}
			names, err := cl.List(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, n := range names {
				if _, err := fmt.Fprintln(out, n); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "the ambassador's URL (default $ITEMQ_SOURCE_URL)")
	cmd.Flags().StringVar(&token, "source-token", "", "the ambassador's bearer token (default $ITEMQ_SOURCE_TOKEN)")
	return cmd
}
