package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/hpcctl/hpcctl/internal/instance"
	"github.com/hpcctl/hpcctl/internal/isolation"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// instanceScheme names a running instance where an IMAGE is taken.
const instanceScheme = "instance://"

// startscript is what an instance runs, as Apptainer's %startscript.
const startscript = "/.singularity.d/startscript"

// readyFD is the pipe on which the monitor tells `instance start` that the container runs.
const readyFD = 3

// instanceHook is set on launchOptions by the monitor: launch then makes the container an instance
// and records it once it runs.
type instanceHook struct {
	dir   instance.Dir
	name  string
	image string
	spec  *spec.Spec
	ready *os.File
}

func newInstanceCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Start, list and stop containers that run in the background",
		Long: `An instance is a container that stays up in the background until it is stopped: it runs the
image's /.singularity.d/startscript if there is one, and exec, run and shell join it with
instance://NAME. An instance started in a batch job ends with the job.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newInstanceStartCmd(g, false), newInstanceStartCmd(g, true), newInstanceListCmd(g), newInstanceStopCmd(g))
	return cmd
}

func instanceDir() (instance.Dir, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return instance.Dir{}, fmt.Errorf("instance state: %w (set HOME)", err)
	}
	return instance.OpenDir(filepath.Join(home, ".hpcctl"))
}

// newInstanceStartCmd makes `instance start`, or with monitor the hidden stage it starts in the
// background, which launches the container and waits for it.
func newInstanceStartCmd(g *Globals, monitor bool) *cobra.Command {
	var o launchOptions
	cmd := &cobra.Command{
		Use:   "start [flags] IMAGE NAME [ARGS...]",
		Short: "Start an instance of IMAGE called NAME",
		Long: `Start IMAGE in the background as the instance NAME, with the flags exec takes (and always a PID
namespace, so that its processes end together). ARGS go to the image's startscript.`,
		Args: minArgs("IMAGE", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := instance.CheckName(args[1]); err != nil {
				return UsageError{err}
			}
			dir, err := instanceDir()
			if err != nil {
				return err
			}
			if monitor {
				return runMonitor(cmd.Context(), g, &o, dir, args)
			}
			return startInstance(cmd.Context(), g, dir, args[1])
		},
	}
	if monitor {
		cmd.Use, cmd.Hidden = "monitor [flags] IMAGE NAME [ARGS...]", true
	}
	addLaunchFlags(g, cmd, &o)
	return cmd
}

// startInstance starts the monitor (this command line again, with "monitor" for "start") in a
// session of its own and waits until it says the container runs.
func startInstance(ctx context.Context, g *Globals, dir instance.Dir, name string) error {
	if _, err := dir.Load(name); err == nil {
		return fmt.Errorf("instance %s is already running: stop it first or choose another name", name)
	}
	argv, err := monitorArgs(os.Args)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start instance %s: %w", name, err)
	}
	logf, err := os.OpenFile(dir.Path(name, ".log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("start instance %s: log: %w", name, err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start instance %s: %w", name, err)
	}
	defer r.Close()
	cmd := exec.Command(self, argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	// A session of its own: the terminal's hang-up and job control do not reach the instance.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start instance %s: %w", name, err)
	}
	go cmd.Wait() //nolint:errcheck // reaps the monitor should it fail while we read
	done := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		done <- line
	}()
	select {
	case line := <-done:
		if line == "ok\n" {
			if !g.Quiet {
				fmt.Fprintf(g.Stderr, "hpcctl: instance %s started\n", name)
			}
			return nil
		}
	case <-ctx.Done():
		cmd.Process.Kill() //nolint:errcheck // it may have exited
		return context.Cause(ctx)
	}
	return fmt.Errorf("instance %s did not start: %s", name, logTail(dir.Path(name, ".log")))
}

// monitorArgs turns this process's `... instance start ...` into `... instance monitor ...`,
// keeping every flag as given.
func monitorArgs(args []string) ([]string, error) {
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "instance" && args[i+1] == "start" {
			out := append([]string{}, args[1:]...)
			out[i] = "monitor"
			return out, nil
		}
	}
	return nil, errors.New("start instance: cannot find 'instance start' in the command line")
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "it exited without a message (run with -d)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "; ")
}

// runMonitor launches the container as an instance and stays its parent until it ends.
func runMonitor(ctx context.Context, g *Globals, o *launchOptions, dir instance.Dir, args []string) error {
	ready := os.NewFile(readyFD, "ready")
	if ready == nil {
		return errors.New("instance monitor: run 'hpcctl instance start', not the monitor itself")
	}
	unix.CloseOnExec(readyFD)
	abs, err := filepath.Abs(args[0])
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	o.pid = true
	o.inst = &instanceHook{dir: dir, name: args[1], image: abs, ready: ready}
	defer dir.RemoveRecord(args[1])
	return launch(ctx, g, isolation.VerbExec, o, args[0], append([]string{startscript}, args[2:]...))
}

// started records the running instance and tells `instance start`.
func (h *instanceHook) started(initPID int) error {
	st, err := instance.StartTime(os.Getpid())
	if err != nil {
		return fmt.Errorf("instance %s: %w", h.name, err)
	}
	r := &instance.Record{
		Name: h.name, Image: h.image, PID: os.Getpid(), Start: st, InitPID: initPID,
		Env: h.spec.Env, Cwd: h.spec.Cwd, LogOut: h.dir.Path(h.name, ".log"), JobID: os.Getenv("SLURM_JOB_ID"),
	}
	if err = h.dir.Save(r); err != nil {
		return err
	}
	_, err = h.ready.WriteString("ok\n")
	h.ready.Close()
	return err
}

// joinInstance runs argv inside a running instance's namespaces.
func joinInstance(ctx context.Context, g *Globals, verb isolation.Verb, o *launchOptions, name string, args []string) error {
	dir, err := instanceDir()
	if err != nil {
		return err
	}
	r, err := dir.Load(name)
	if err != nil {
		return err
	}
	argv, err := isolation.Argv(verb, isolation.Image{OCIConfig: verb != isolation.VerbRun}, args)
	if err != nil {
		return UsageError{err}
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return fmt.Errorf("join instance %s: nsenter (util-linux) not found: install util-linux: %w", name, err)
	}
	env, err := envSettings(o, r.Image)
	if err != nil {
		return err
	}
	r.Env = append(r.Env, env...)
	cmd, err := instance.JoinCommand(nsenter, r, argv)
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// nsenter forks into the PID namespace and does not pass signals on: a process group lets
	// hpcctl signal both. Not on a terminal, where a shell must stay in the foreground group.
	group := !term.IsTerminal(int(os.Stdin.Fd()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: group, Pdeathsig: syscall.SIGKILL}
	g.Logger.Debug("join instance", "name", name, "argv", cmd.Args)
	if err = cmd.Start(); err != nil {
		return fmt.Errorf("join instance %s: %w", name, err)
	}
	stop := context.AfterFunc(ctx, func() {
		sig := syscall.SIGTERM
		var in Interrupted
		if errors.As(context.Cause(ctx), &in) {
			sig = in.Signal
		}
		if group {
			syscall.Kill(-cmd.Process.Pid, sig) //nolint:errcheck // it may have exited
		}
	})
	defer stop()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
		}
		return ExitStatus{Code: ws.ExitStatus()}
	}
	if err != nil {
		return fmt.Errorf("join instance %s: %w", name, err)
	}
	return nil
}

func newInstanceListCmd(g *Globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:               "list [flags] [NAME-PATTERN]",
		Short:             "List your running instances on this host",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeInstanceArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern := "*"
			if len(args) == 1 {
				pattern = args[0]
			}
			dir, err := instanceDir()
			if err != nil {
				return err
			}
			rs, err := dir.List(pattern)
			if err != nil {
				return err
			}
			if asJSON {
				return listJSON(g, rs)
			}
			tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INSTANCE NAME\tPID\tIP\tIMAGE")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Name, r.PID, r.IP, r.Image)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&asJSON, "json", "j", false, "print as JSON (Apptainer's shape)")
	return cmd
}

// listJSON prints the instances as `apptainer instance list --json` does.
func listJSON(g *Globals, rs []*instance.Record) error {
	type entry struct {
		Instance   string `json:"instance"`
		PID        int    `json:"pid"`
		Image      string `json:"img"`
		IP         string `json:"ip"`
		LogErrPath string `json:"logErrPath"`
		LogOutPath string `json:"logOutPath"`
	}
	out := struct {
		Instances []entry `json:"instances"`
	}{Instances: []entry{}}
	for _, r := range rs {
		out.Instances = append(out.Instances, entry{r.Name, r.PID, r.Image, r.IP, r.LogOut, r.LogOut})
	}
	e := json.NewEncoder(g.Stdout)
	e.SetIndent("", "\t")
	return e.Encode(out)
}

func newInstanceStopCmd(g *Globals) *cobra.Command {
	var all, force bool
	var sigName string
	var timeout int
	cmd := &cobra.Command{
		Use:               "stop [flags] NAME|--all",
		Short:             "Stop instances",
		ValidArgsFunction: completeInstanceArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) || len(args) > 1 {
				return UsageError{errors.New("instance stop: give one NAME or --all (see 'hpcctl instance stop --help')")}
			}
			sig, err := parseSignal(sigName)
			if err != nil {
				return UsageError{err}
			}
			if force {
				sig = unix.SIGKILL
			}
			dir, err := instanceDir()
			if err != nil {
				return err
			}
			var rs []*instance.Record
			if all {
				rs, err = dir.List("*")
			} else {
				var r *instance.Record
				r, err = dir.Load(args[0])
				rs = []*instance.Record{r}
			}
			if err != nil {
				return err
			}
			for _, r := range rs {
				if err := stopInstance(cmd.Context(), dir, r, sig, time.Duration(timeout)*time.Second); err != nil {
					return err
				}
				if !g.Quiet {
					fmt.Fprintf(g.Stderr, "hpcctl: instance %s stopped\n", r.Name)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "stop all your instances on this host")
	f.BoolVarP(&force, "force", "F", false, "stop with SIGKILL")
	f.StringVarP(&sigName, "signal", "s", "TERM", "signal to send (name or number)")
	f.IntVarP(&timeout, "timeout", "t", 10, "`seconds` to wait before SIGKILL")
	return cmd
}

// stopInstance signals the monitor, which passes the signal to the container, and kills it when
// the container has not ended within timeout: its death kills the container (Pdeathsig).
func stopInstance(ctx context.Context, dir instance.Dir, r *instance.Record, sig unix.Signal, timeout time.Duration) error {
	if err := unix.Kill(r.PID, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("stop instance %s: signal its monitor (PID %d): %w", r.Name, r.PID, err)
	}
	deadline := time.Now().Add(timeout)
	for r.Alive() {
		if time.Now().After(deadline) {
			unix.Kill(r.PID, unix.SIGKILL) //nolint:errcheck // it may have just exited
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
	dir.Remove(r.Name)
	return nil
}

// parseSignal takes a signal by name (TERM, SIGTERM) or number.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("--signal %q: not a signal name or number (e.g. TERM, INT, 9)", s)
}
