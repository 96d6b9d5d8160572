package itemqcmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/itemq/itemq/itemapi"
)

// Exit codes of submit --wait, beyond 0 (succeeded), 1 (error) and 2
// (usage).
const (
	ExitJobFailed    = 3 // the job failed (failed or dead)
	ExitJobCancelled = 4 // the job was cancelled
)

// conn is how the job commands reach a manager: --server/ITEMQ_MANAGER_URL
// and --token/ITEMQ_TOKEN.
type conn struct {
	server, token string
}

// DefaultManagerURL is the manager's default address (MANAGER_ADDR's).
const DefaultManagerURL = "http://127.0.0.1:8081"

func (c *conn) flags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&c.server, "server", "", "the manager's URL (default $ITEMQ_MANAGER_URL, else "+DefaultManagerURL+")")
	cmd.PersistentFlags().StringVar(&c.token, "token", "", "bearer token (default $ITEMQ_TOKEN)")
}

func (c *conn) client() (*itemapi.JobsClient, error) {
	server := c.server
	if server == "" {
		server = os.Getenv("ITEMQ_MANAGER_URL")
	}
	if server == "" {
		server = DefaultManagerURL
	}
	token := c.token
	if token == "" {
		token = os.Getenv("ITEMQ_TOKEN")
	}
	var opts []itemapi.ClientOption
	if token != "" {
		opts = append(opts, itemapi.WithBearerToken(token))
	}
	jc, err := itemapi.NewJobsClient(server, opts...)
	if err != nil {
		return nil, usageError{fmt.Errorf("--server %q: %w", server, err)}
	}
	return jc, nil
}

// completeJobs completes job names from the manager (for shell completion).
func (c *conn) completeJobs(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	jc, err := c.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
	defer cancel()
	l, err := jc.ListPrefix(ctx, "", toComplete, 200, "")
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(l.Items))
	for _, st := range l.Items {
		out = append(out, st.Item)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// output is the -o flag: table (for people), wide, or json (for scripts).
type output struct{ format string }

func (o *output) flag(cmd *cobra.Command, wide bool) {
	help := "output format: table or json"
	if wide {
		help = "output format: table, wide or json"
	}
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", help)
}

func (o *output) check(wide bool) error {
	switch o.format {
	case "table", "json":
		return nil
	case "wide":
		if wide {
			return nil
		}
	}
	return usageError{fmt.Errorf("-o %q: want table%s or json", o.format, map[bool]string{true: ", wide", false: ""}[wide])}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newJobCommands(c *conn) []*cobra.Command {
	return []*cobra.Command{newJobs(c), newJob(c), newSubmit(c), newAction(c, "cancel"), newAction(c, "retry"),
		newLogs(c), newOutputs(c), newGetOutput(c), newTop(c)}
}

func newJobs(c *conn) *cobra.Command {
	var state, prefix string
	var limit int
	var o output
	cmd := &cobra.Command{
		Use:   "jobs [--state S] [--prefix P]",
		Short: "list jobs, sorted by item (state: pending, running, succeeded, failed, dead, cancelled)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(true); err != nil {
				return err
			}
			var st itemapi.State
			if state != "" {
				s, err := itemapi.ParseState(state)
				if err != nil {
					return usageError{err}
				}
				st = s
			}
			jc, err := c.client()
			if err != nil {
				return err
			}
			var all []itemapi.JobStatus
			cont := ""
			for {
				page, err := jc.ListPrefix(cmd.Context(), st, prefix, 1000, cont)
				if err != nil {
					return err
				}
				all = append(all, page.Items...)
				if page.Continue == "" || (limit > 0 && len(all) >= limit) {
					break
				}
				cont = page.Continue
			}
			if limit > 0 && len(all) > limit {
				all = all[:limit]
			}
			if o.format == "json" {
				return writeJSON(cmd.OutOrStdout(), itemapi.JobStatusList{Kind: "JobList", APIVersion: itemapi.APIVersion, Items: all})
			}
			return jobTable(cmd.OutOrStdout(), all, o.format == "wide")
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only jobs in this state")
	cmd.Flags().StringVar(&prefix, "prefix", "", "only items whose names start with this")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all)")
	o.flag(cmd, true)
	_ = cmd.RegisterFlagCompletionFunc("state", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"pending", "running", "succeeded", "failed", "dead", "cancelled"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func jobTable(w io.Writer, jobs []itemapi.JobStatus, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if wide {
		fmt.Fprintln(tw, "ITEM\tSTATE\tATTEMPTS\tDURATION\tJOB\tSTARTED\tFINISHED\tERROR")
	} else {
		fmt.Fprintln(tw, "ITEM\tSTATE\tATTEMPTS\tDURATION\tERROR")
	}
	now := time.Now()
	for _, j := range jobs {
		errText := oneLine(j.Error, 60)
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", j.Item, j.State, j.Attempts, duration(j, now), j.Job,
				stamp(j.StartedAt), stamp(j.FinishedAt), oneLine(j.Error, 200))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", j.Item, j.State, j.Attempts, duration(j, now), errText)
		}
	}
	return tw.Flush()
}

func duration(j itemapi.JobStatus, now time.Time) string {
	if j.StartedAt.IsZero() {
		return "-"
	}
	end := j.FinishedAt
	if end.IsZero() {
		end = now
	}
	return end.Sub(j.StartedAt).Round(100 * time.Millisecond).String()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// itemView is a command that shows one document of an item's job: as
// JSON with -o json, else as table does.
func itemView[T any](c *conn, use, short string, get func(*itemapi.JobsClient, context.Context, string) (*T, error), table func(io.Writer, *T) error) *cobra.Command {
	var o output
	cmd := &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              exactArgs(1),
		ValidArgsFunction: c.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(false); err != nil {
				return err
			}
			jc, err := c.client()
			if err != nil {
				return err
			}
			v, err := get(jc, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.format == "json" {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			return table(cmd.OutOrStdout(), v)
		},
	}
	o.flag(cmd, false)
	return cmd
}

func newJob(c *conn) *cobra.Command {
	return itemView(c, "job ITEM", "show one item's job and its attempts", (*itemapi.JobsClient).Get, jobDetail)
}

func jobDetail(w io.Writer, st *itemapi.JobStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Item", st.Item)
	row("Job", st.Job)
	row("State", string(st.State))
	row("Attempts", fmt.Sprint(st.Attempts))
	if st.Priority != nil {
		row("Priority", fmt.Sprint(*st.Priority))
	}
	row("Fair key", st.FairKey)
	if !st.StartedAt.IsZero() {
		row("Started", stamp(st.StartedAt))
	}
	if !st.FinishedAt.IsZero() {
		row("Finished", stamp(st.FinishedAt))
	}
	row("Duration", duration(*st, time.Now()))
	row("Error", st.Error)
	row("Output", st.OutputURL)
	row("Log", st.LogPath)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.History) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nAttempts:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tSTARTED\tDURATION\tEXIT\tREASON\tWHERE")
	for _, a := range st.History {
		exit, dur := "-", "-"
		if a.ExitCode != nil {
			exit = fmt.Sprint(*a.ExitCode)
		}
		if !a.StartedAt.IsZero() {
			end := a.FinishedAt
			if end.IsZero() {
				end = time.Now()
			}
			dur = end.Sub(a.StartedAt).Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", a.Number, stamp(a.StartedAt), dur, exit, oneLine(a.Reason, 80), a.Where)
	}
	return tw.Flush()
}

func newSubmit(c *conn) *cobra.Command {
	var file, key, data string
	var wait bool
	var priority int
	var timeout time.Duration
	var o output
	cmd := &cobra.Command{
		Use:   "submit [-f FILE|-] [--data JSON] [--key K] [--priority N] [--wait]",
		Short: "submit a job (a JSON object) through the manager's source",
		Long: `Submit a job: its data is a JSON object, from --data, from -f FILE, or from
standard input (-f -). --key sends an Idempotency-Key: the same key and data
answer the same job, however often the command is run.

With --wait the command waits until the job ends and exits with its
outcome: 0 succeeded, 3 failed or dead-lettered, 4 cancelled (1: could not
tell; 2: bad usage).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(false); err != nil {
				return err
			}
			body, err := submitBody(cmd, file, data)
			if err != nil {
				return err
			}
			jc, err := c.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			opts := itemapi.SubmitOptions{Key: key}
			if cmd.Flags().Changed("priority") {
				opts.Priority = &priority
			}
			st, err := jc.SubmitWith(ctx, body, opts)
			if err != nil {
				return err
			}
			if !wait {
				if o.format == "json" {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "submitted %s (job %s)\n", st.Item, st.Job)
				return err
			}
			if o.format != "json" {
				fmt.Fprintf(cmd.ErrOrStderr(), "submitted %s (job %s); waiting for it to end\n", st.Item, st.Job)
			}
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			final, err := waitJob(ctx, jc, st.Item)
			if err != nil {
				return err
			}
			if o.format == "json" {
				err = writeJSON(cmd.OutOrStdout(), final)
			} else {
				err = jobDetail(cmd.OutOrStdout(), final)
			}
			if err != nil {
				return err
			}
			return outcomeError(final)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the job's data from FILE (- for standard input)")
	cmd.Flags().StringVar(&data, "data", "", "the job's data, a JSON object")
	cmd.Flags().StringVar(&key, "key", "", "Idempotency-Key: a retried submission with the same key makes no second job")
	cmd.Flags().IntVar(&priority, "priority", 0, "the job's priority, written into the data's MANAGER_PRIORITY_FIELD by the manager (higher first)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the job ends; exit 0 succeeded, 3 failed, 4 cancelled")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --wait: give up after this long (exit 1; 0: never)")
	o.flag(cmd, false)
	return cmd
}

func submitBody(cmd *cobra.Command, file, data string) (json.RawMessage, error) {
	var body []byte
	switch {
	case file != "" && data != "":
		return nil, usageError{errors.New("give the data with -f or with --data, not both")}
	case data != "":
		body = []byte(data)
	case file == "-":
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), itemapi.MaxDataBytes+1))
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		body = b
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, usageError{err}
		}
		body = b
	default:
		return nil, usageError{errors.New("no data: give -f FILE, -f - (standard input) or --data JSON")}
	}
	if !json.Valid(body) {
		return nil, usageError{errors.New("the job's data is not valid JSON")}
	}
	return body, nil
}

// waitJob long-polls until the job has ended.
func waitJob(ctx context.Context, jc *itemapi.JobsClient, item string) (*itemapi.JobStatus, error) {
	for {
		st, err := jc.Wait(ctx, item, time.Minute)
		if err != nil {
			return nil, err
		}
		if st.State.Finished() {
			return st, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// jobOutcome is a job's end as an exit code.
type jobOutcome struct {
	state itemapi.State
	code  int
}

func (j jobOutcome) Error() string { return "the job ended " + string(j.state) }

func outcomeError(st *itemapi.JobStatus) error {
	switch st.State {
	case itemapi.StateSucceeded:
		return nil
	case itemapi.StateCancelled:
		return jobOutcome{st.State, ExitJobCancelled}
	}
	return jobOutcome{st.State, ExitJobFailed}
}

func newAction(c *conn, action string) *cobra.Command {
	var state, prefix string
	var o output
	short := map[string]string{
		"cancel": "cancel jobs: a running attempt is stopped, the item dead-lettered; it never runs again unless retried",
		"retry":  "run failed, dead or cancelled jobs again with a fresh count of attempts (dead-lettered items are redriven)",
	}[action]
	cmd := &cobra.Command{
		Use:               action + " ITEM... | --state S [--prefix P]",
		Short:             short,
		ValidArgsFunction: c.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(false); err != nil {
				return err
			}
			sel := itemapi.JobSelector{Items: args, State: itemapi.State(state), Prefix: prefix}
			if err := sel.Validate(); err != nil {
				return usageError{err}
			}
			jc, err := c.client()
			if err != nil {
				return err
			}
			do := jc.Cancel
			if action == "retry" {
				do = jc.Retry
			}
			res, err := do(cmd.Context(), sel)
			if err != nil {
				return err
			}
			if o.format == "json" {
				err = writeJSON(cmd.OutOrStdout(), res)
			} else {
				err = actionTable(cmd.OutOrStdout(), res)
			}
			if err != nil {
				return err
			}
			if res.Errors > 0 {
				return fmt.Errorf("%d of %d could not be done", res.Errors, len(res.Items))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "every job in this state")
	cmd.Flags().StringVar(&prefix, "prefix", "", "every job whose item starts with this")
	o.flag(cmd, false)
	return cmd
}

func actionTable(w io.Writer, res *itemapi.ActionResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ITEM\tRESULT\tDETAIL")
	for _, it := range res.Items {
		detail := it.Message
		if it.NewItem != "" {
			detail = "now " + it.NewItem
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Item, it.Result, oneLine(detail, 120))
	}
	fmt.Fprintf(tw, "%s: %d done, %d skipped, %d errors\n", res.Action, res.Done, res.Skipped, res.Errors)
	return tw.Flush()
}

func newLogs(c *conn) *cobra.Command {
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:               "logs [-f] [--tail N] ITEM",
		Short:             "print the log of an item's job (-f: follow it until the job ends)",
		Args:              exactArgs(1),
		ValidArgsFunction: c.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < 0 {
				return usageError{fmt.Errorf("--tail %d: want ≥ 0", tail)}
			}
			jc, err := c.client()
			if err != nil {
				return err
			}
			rc, err := jc.Logs(cmd.Context(), args[0], tail, follow)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(cmd.OutOrStdout(), rc)
			if err != nil && cmd.Context().Err() != nil {
				return nil // interrupted while following
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "go on printing what is written until the job ends")
	cmd.Flags().IntVar(&tail, "tail", 0, "only the last N lines (0: all)")
	return cmd
}

func newOutputs(c *conn) *cobra.Command {
	return itemView(c, "outputs ITEM", "list the results of an item's job (its _SUCCESS.json manifest)", (*itemapi.JobsClient).Outputs, outputsTable)
}

func outputsTable(w io.Writer, man *itemapi.Manifest) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tSHA256")
	for _, out := range man.Outputs {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", out.Name, out.Size, out.SHA256)
	}
	return tw.Flush()
}

func newGetOutput(c *conn) *cobra.Command {
	var dest string
	cmd := &cobra.Command{
		Use:               "get-output ITEM FILE [-O DEST]",
		Short:             "download one result of an item's job through the manager (checked against its SHA-256)",
		Args:              exactArgs(2),
		ValidArgsFunction: c.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			jc, err := c.client()
			if err != nil {
				return err
			}
			rc, size, want, err := jc.Output(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			defer rc.Close()
			if dest == "" {
				dest = path.Base(args[1])
			}
			return saveChecked(cmd, rc, dest, size, want)
		},
	}
	cmd.Flags().StringVarP(&dest, "output-file", "O", "", "where to write it (- for standard output; default: the file's base name here)")
	return cmd
}

// saveChecked writes r to dest (atomically for a file) and checks its size
// and SHA-256.
func saveChecked(cmd *cobra.Command, r io.Reader, dest string, size int64, want string) error {
	h := sha256.New()
	check := func(n int64) error {
		if size >= 0 && n != size {
			return fmt.Errorf("got %d bytes, want %d", n, size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
			return fmt.Errorf("SHA-256 %s, the manifest says %s", got, want)
		}
		return nil
	}
	if dest == "-" {
		n, err := io.Copy(io.MultiWriter(cmd.OutOrStdout(), h), r)
		if err != nil {
			return err
		}
		return check(n)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := check(n); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}
