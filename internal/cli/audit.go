package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hpcctl/hpcctl/internal/audit"
	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/isolation"
	"github.com/hpcctl/hpcctl/internal/launcher"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// Exit statuses of hpcctl audit besides 0 (report made), 1 (error) and 2 (usage).
const auditDiffer = 3 // --expect-same or --replay found differences

type auditOptions struct {
	launch     launchOptions
	profiles   []string
	outputs    string
	showValues bool
	asJSON     bool
	expectSame bool
	timeout    time.Duration
	record     string
	replay     string
}

func newAuditCmd(g *Globals) *cobra.Command {
	var o auditOptions
	cmd := &cobra.Command{
		Use:   "audit [flags] IMAGE [--] COMMAND [ARGS...] | audit --replay FILE [IMAGE]",
		Short: "Run a command under several isolation profiles and report what differs and why",
		Long: `Run COMMAND from IMAGE under each profile (default, contain, containall, isolate), digest its
exit status, output and written files, probe what each container saw of the host, and report side
by side which results differ and which host leak (a variable, a home directory, a search path...)
explains each difference. The last profile is the reference.

Exit status: 0 the report was made (also when results differ, unless --expect-same), 1 an error
stopped the audit, 2 a bad command line, 3 results differ and --expect-same or --replay was given.
A command that fails, times out or writes nothing is part of the report, not an error.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAudit(cmd.Context(), g, &o, args)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringSliceVar(&o.profiles, "profiles", []string{isolation.ProfileDefault, isolation.ProfileContain, isolation.ProfileContainAll, isolation.ProfileIsolate}, "profiles to compare, comma-separated; the last is the reference")
	f.StringVar(&o.outputs, "outputs", "", "`dir`ectory the command writes in: each profile gets an empty DIR/PROFILE bound at DIR")
	f.BoolVar(&o.showValues, "show-values", false, "show the values of environment variables (redacted to digests otherwise)")
	f.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&o.expectSame, "expect-same", false, "exit with status 3 when results differ between profiles")
	f.DurationVar(&o.timeout, "timeout", 0, "kill a run after this `duration` (e.g. 30s) and report it as timed out")
	f.StringVar(&o.record, "record", "", "write a provenance record to `file`")
	f.StringVar(&o.replay, "replay", "", "run the command of a record `file` again and compare with it")
	f.StringArrayVarP(&o.launch.binds, "bind", "B", nil, "bind `src[:dst[:ro|rw]]` into the container under every profile")
	f.StringVar(&o.launch.backend, "backend", "", "how to mount the image: loop (root) or squashfuse")
	f.StringVar(&o.launch.config, "config", "", "read the settings from this `file` instead of /etc/hpcctl/hpcctl.conf")
	addReferenceFlags(f, &o.launch.ref)
	return cmd
}

// auditRun is one audit's inputs, from the command line or from a record.
type auditRun struct {
	image    string
	command  []string
	profiles []string
	outputs  string // host directory of the outputs
	at       string // where they are in the container
	timeout  time.Duration
}

func runAudit(ctx context.Context, g *Globals, o *auditOptions, args []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.replay != "" {
		return replayAudit(ctx, g, o, args)
	}
	a, err := auditArgs(o, args)
	if err != nil {
		return err
	}
	if a.outputs != "" {
		if err = audit.PrepareOutputs(a.outputs, a.profiles); err != nil {
			return err
		}
	}
	runs, host, specs, err := auditRuns(ctx, g, o, a)
	if err != nil {
		return err
	}
	rep := audit.NewReport(a.image, a.command, a.at, runs)
	if err := writeReport(g, o, rep); err != nil {
		return err
	}
	if o.record != "" {
		rec := audit.Record{Version: Version, Image: imageFacts(ctx, auditImagePath(o, a.image)), Command: a.command, Outputs: a.at, Host: host, Runs: runs}
		if a.timeout > 0 {
			rec.Timeout = a.timeout.String()
		}
		for i := range rec.Runs {
			rec.Runs[i].Spec = specs[rec.Runs[i].Profile]
		}
		if err := audit.WriteRecord(o.record, rec); err != nil {
			return err
		}
	}
	if o.expectSame && !rep.Same {
		return ExitStatus{Code: auditDiffer}
	}
	return nil
}

// auditArgs checks the command line of an audit.
func auditArgs(o *auditOptions, args []string) (auditRun, error) {
	if len(args) > 1 && args[1] == "--" {
		args = append(args[:1:1], args[2:]...)
	}
	if len(args) < 2 {
		return auditRun{}, UsageError{errors.New("hpcctl audit: missing IMAGE and COMMAND (see 'hpcctl audit --help')")}
	}
	if len(o.profiles) == 0 {
		return auditRun{}, UsageError{errors.New("--profiles: name at least one profile")}
	}
	seen := map[string]bool{}
	for _, p := range o.profiles {
		if seen[p] {
			return auditRun{}, UsageError{fmt.Errorf("--profiles: %s is named twice", p)}
		}
		seen[p] = true
	}
	if o.timeout < 0 {
		return auditRun{}, UsageError{fmt.Errorf("--timeout %s: want a positive duration", o.timeout)}
	}
	a := auditRun{image: args[0], command: args[1:], profiles: o.profiles, timeout: o.timeout}
	if o.outputs != "" {
		abs, err := filepath.Abs(o.outputs)
		if err != nil {
			return a, fmt.Errorf("--outputs: %w", err)
		}
		a.outputs, a.at = abs, abs
	}
	return a, nil
}

// auditRuns runs the audit and returns the runs, the host probe and each profile's Spec.
func auditRuns(ctx context.Context, g *Globals, o *auditOptions, a auditRun) ([]audit.Run, audit.Host, map[string]json.RawMessage, error) {
	conf, err := loadConfig(o.launch.config)
	if err != nil {
		return nil, audit.Host{}, nil, err
	}
	for _, p := range a.profiles {
		if _, err = isolation.ProfileFor(conf, p); err != nil {
			return nil, audit.Host{}, nil, UsageError{fmt.Errorf("--profiles: %w", err)}
		}
	}
	o.launch.starter = chooseStarter(&o.launch, conf)
	img, cleanup, err := resolveImage(ctx, g, &o.launch, conf, a.image)
	if err != nil {
		return nil, audit.Host{}, nil, err
	}
	defer cleanup()
	specs := map[string]json.RawMessage{}
	sessions := map[string]string{}
	l := auditLauncher{g: g, o: o.launch, conf: conf, img: img, at: a.at, timeout: a.timeout, specs: specs, sessions: sessions, showValues: o.showValues}
	host := audit.ProbeHost()
	if !o.launch.noJobEnv {
		host.JobVariable = isolation.JobVariables(conf.Environment.JobVariables).Match
	}
	opts := audit.Options{Profiles: a.profiles, Command: a.command, OutputsDir: a.outputs, OutputsAt: a.at, ShowValues: o.showValues, ImageEnv: img.Env}
	runs, err := audit.RunAll(ctx, opts, host, l.launch)
	for i := range runs {
		runs[i].Session = sessions[runs[i].Profile]
	}
	return runs, host, specs, err
}

// auditLauncher runs one profile's container the way exec does.
type auditLauncher struct {
	g    *Globals
	o    launchOptions
	conf *config.Config
	// img is the image opened (and checked against the signature policy) once for every run.
	img     resolvedImage
	at      string
	timeout time.Duration
	specs   map[string]json.RawMessage
	// sessions is how each profile's last run mounted the image (launcher.Status.Session).
	sessions map[string]string
	// showValues keeps the environment's values in the recorded Spec.
	showValues bool
}

// recordedSpec is the Spec as a record keeps it: the environment's values redacted unless asked.
func recordedSpec(s spec.Spec, showValues bool) json.RawMessage {
	if !showValues {
		env := make([]string, len(s.Env))
		for i, kv := range s.Env {
			name, value, _ := strings.Cut(kv, "=")
			env[i] = name + "=" + audit.RedactValue(value)
		}
		s.Env = env
	}
	b, _ := json.Marshal(s) //nolint:errchkjson // plain data
	return b
}

func (l auditLauncher) launch(ctx context.Context, profile string, argv []string, stdout, stderr *os.File, outputs string) (int, error) {
	o := l.o
	o.profile = profile
	if outputs != "" {
		o.binds = append(append([]string(nil), o.binds...), outputs+":"+l.at)
	}
	s, err := buildSpec(ctx, &o, l.conf, isolation.VerbExec, l.img.Image, argv)
	if err != nil {
		return 0, err
	}
	if _, seen := l.specs[profile]; !seen {
		l.specs[profile] = recordedSpec(*s, l.showValues)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	lo := launchSettings(l.g, l.img)
	lo.Session = sessionOptions(&o, l.conf, l.img)
	if o.starter.path != "" {
		starterSpec(s)
		lo.Starter = o.starter.path
	}
	lo.Stdin, lo.Stdout, lo.Stderr, lo.Timeout = null, stdout, stderr, l.timeout
	// Without a time limit the container shares hpcctl's process group, and a terminal's ^C
	// reaches it directly: forwarding it too would deliver it twice.
	lo.Interactive = l.timeout == 0 && term.IsTerminal(int(os.Stdin.Fd()))
	status, err := launcher.Run(ctx, s, lo)
	l.sessions[profile] = status.Session
	var se *launcher.StartError
	switch {
	case errors.As(err, &se):
		return se.Status, fmt.Errorf("%w: %v", audit.ErrNotStarted, se)
	case errors.Is(err, launcher.ErrTimedOut):
		return status.Code, audit.ErrTimedOut
	}
	return status.Code, err
}

func writeReport(g *Globals, o *auditOptions, rep audit.Report) error {
	if o.asJSON {
		return rep.WriteJSON(g.Stdout)
	}
	return rep.WriteText(g.Stdout)
}

// replayAudit runs a record's command again and compares.
func replayAudit(ctx context.Context, g *Globals, o *auditOptions, args []string) error {
	if o.record != "" || len(args) > 1 {
		return UsageError{errors.New("hpcctl audit --replay FILE takes at most an IMAGE (where the recorded one moved to), and no --record")}
	}
	f, err := os.Open(o.replay)
	if err != nil {
		return fmt.Errorf("--replay: %w", err)
	}
	rec, err := audit.ReadRecord(f, o.replay)
	f.Close()
	if err != nil {
		return err
	}
	a := auditRun{image: rec.Image.Path, command: rec.Command, at: rec.Outputs}
	if len(args) == 1 {
		a.image = args[0]
	}
	for _, r := range rec.Runs {
		a.profiles = append(a.profiles, r.Profile)
	}
	if rec.Timeout != "" {
		if a.timeout, err = time.ParseDuration(rec.Timeout); err != nil {
			return fmt.Errorf("audit record %s: timeout %q: %w", o.replay, rec.Timeout, err)
		}
	}
	if a.at != "" {
		// The recorded outputs stay as they were: this run writes in a scratch directory.
		var dir string
		dir, err = os.MkdirTemp("", "hpcctl-replay-")
		if err != nil {
			return fmt.Errorf("--replay: %w", err)
		}
		defer os.RemoveAll(dir) // best effort
		a.outputs = dir
		if err = audit.PrepareOutputs(dir, a.profiles); err != nil {
			return err
		}
	}
	o.showValues = false
	runs, host, _, err := auditRuns(ctx, g, o, a)
	if err != nil {
		return err
	}
	rep := audit.NewReport(a.image, a.command, a.at, runs)
	rep.Reference = "record " + o.replay
	rep.Differences = audit.Replay(rec, imageFacts(ctx, auditImagePath(o, a.image)), host, runs)
	rep.Same = len(rep.Differences) == 0
	if err := writeReport(g, o, rep); err != nil {
		return err
	}
	if !rep.Same {
		return ExitStatus{Code: auditDiffer}
	}
	return nil
}

// imageFacts digests the image and asks the companion whether its signatures verify.
func imageFacts(ctx context.Context, image string) audit.ImageFacts {
	abs, _ := filepath.Abs(image)
	facts := audit.ImageFacts{Path: abs, Digest: "none (a directory)", Signature: "not checked: a directory"}
	f, err := os.Open(abs)
	if err != nil {
		facts.Digest = "unreadable: " + err.Error()
		return facts
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.IsDir() {
		return facts
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		facts.Digest = "unreadable: " + err.Error()
		return facts
	}
	facts.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	facts.Signature = signatureStatus(ctx, abs)
	return facts
}

// signatureStatus runs 'hpcctl-image verify --json' (hpcctl itself links no signing code) and
// sums its answer up in one line.
func signatureStatus(ctx context.Context, image string) string {
	path, err := companionPath()
	if err != nil {
		return "not checked: " + Companion + " not found"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "verify", "--json", image)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var v struct {
		Verified   bool   `json:"verified"`
		Error      string `json:"error"`
		Signatures []struct {
			Signer      string `json:"signer"`
			Fingerprint string `json:"fingerprint"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		why := strings.TrimSpace(strings.SplitN(stderr.String(), "\n", 2)[0])
		if why == "" && runErr != nil {
			why = runErr.Error()
		}
		return "not checked: " + Companion + " verify: " + why
	}
	if v.Verified && runErr == nil {
		var by []string
		for _, sig := range v.Signatures {
			by = append(by, strings.TrimSpace(sig.Signer+" "+sig.Fingerprint))
		}
		return "verified: signed by " + strings.Join(by, ", ")
	}
	return "not verified: " + v.Error
}
