package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/session"
)

// sessionOptions are a launch's shared image session settings, nil when the site
// ([session] enabled = false), --no-session or $HPCCTL_NO_SESSION turn sessions off.
func sessionOptions(o *launchOptions, conf *config.Config, img resolvedImage) *session.Options {
	if o.noSession || !conf.Session.Enabled || os.Getenv("HPCCTL_NO_SESSION") == "1" {
		return nil
	}
	companion, _ := companionPath() // without it, the holder runs squashfuse_ll
	return &session.Options{Squashfuse: img.Squashfuse, Server: conf.Session.FUSEServer, Companion: companion, IdleTimeout: conf.Session.SessionIdle()}
}

// newSessionCmd is `hpcctl session list|stop`.
func newSessionCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "session",
		Short: "List or stop your shared image sessions on this node",
		Args:  cobra.NoArgs,
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List your shared image sessions on this node",
		Long: `List your shared image sessions on this node: the holder's PID, the containers using its
mount, its idle timeout, the image, and the FUSE requests hpcctl's own server has served by kind
("LOOKUP=12 READ=40"; "-" for a holder that serves with squashfuse_ll, which does not count them).`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			infos, err := session.List("")
			if err != nil {
				return err
			}
			if asJSON {
				return sessionsJSON(g, infos)
			}
			return sessionsTable(g.Stdout, infos)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines")
	cmd.AddCommand(list)
	cmd.AddCommand(&cobra.Command{
		Use:   "stop [IMAGE...]",
		Short: "Stop your sessions (of these images): no more launches join them, and each ends once its containers have",
		RunE: func(_ *cobra.Command, images []string) error {
			return stopSessions(images)
		},
	})
	return cmd
}

// sessionsTable prints the sessions for people. The request counts come last: they are the
// widest column and vary in width, and the image path stays in the column it always had.
func sessionsTable(out io.Writer, infos []session.Info) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PID\tCONTAINERS\tIDLE TIMEOUT\tIMAGE\tREQUESTS")
	for _, i := range infos {
		requests := i.Requests
		if requests == "" {
			requests = "-"
		}
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\n", i.PID, i.Containers, i.Idle, tableField(i.Image), requests)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("session list: %w", err)
	}
	return nil
}

// tableField is s as one table cell: quoted, as Go quotes it, when it holds a tab, a newline or
// another control character that would break the table's rows and columns.
func tableField(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// sessionsJSON prints the sessions for machines: {"sessions": [...]}, the idle timeout in seconds,
// the request counts as the server gives them ("" for squashfuse_ll).
func sessionsJSON(g *Globals, infos []session.Info) error {
	type entry struct {
		PID         int     `json:"pid"`
		Containers  int     `json:"containers"`
		IdleTimeout float64 `json:"idleTimeoutSeconds"`
		Image       string  `json:"image"`
		Socket      string  `json:"socket"`
		Requests    string  `json:"requests"`
	}
	out := struct {
		Sessions []entry `json:"sessions"`
	}{Sessions: []entry{}}
	for _, i := range infos {
		out.Sessions = append(out.Sessions, entry{i.PID, i.Containers, i.Idle.Seconds(), i.Image, i.Socket, i.Requests})
	}
	e := json.NewEncoder(g.Stdout)
	e.SetIndent("", "  ")
	return e.Encode(out)
}

// stopSessions stops the user's sessions, or those of the given images (by path).
func stopSessions(images []string) error {
	want := map[string]bool{}
	for _, img := range images {
		abs, err := filepath.Abs(img)
		if err != nil {
			return UsageError{fmt.Errorf("image %s: %w", img, err)}
		}
		want[abs] = true
	}
	infos, err := session.List("")
	if err != nil {
		return err
	}
	var errs []error
	for _, i := range infos {
		if len(want) == 0 || want[i.Image] {
			errs = append(errs, session.Stop(i.Socket))
		}
	}
	return errors.Join(errs...)
}
