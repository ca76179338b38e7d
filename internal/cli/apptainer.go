package cli

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcctl/hpcctl/internal/compat"
	"github.com/hpcctl/hpcctl/internal/isolation"
)

// apptainerOptions are the launch flags that exist so that Apptainer's command lines run
// unchanged (issue 15); docs/apptainer.md maps every one of them.
type apptainerOptions struct {
	cwd               string
	mounts            []string
	noEnv             []string
	noInit, noEval    bool
	noPID, noUmask    bool
	compat            bool
	keepPrivs         bool
	addCaps, dropCaps string
	app               string
	security          []string
	netnsPath         string
	networkArgs       []string
	runscriptTimeout  string
	underlay          bool
	workdir           string
	scratch           []string
	// capDrop are the capabilities root gives up (from --drop-caps, or all but --add-caps's
	// under --no-privs).
	capDrop  []uint
	keepSome bool // --no-privs --add-caps: root keeps the added capabilities only
	// envBinds are the binds of $HPCCTL_BIND, $APPTAINER_BIND, ... (and their mounts), applied
	// before the command line's and ignored under --isolate.
	envBinds  []string
	envMounts []string
	// foreign are the Apptainer variables honoured, for the one notice at -v.
	foreign []string
}

func addApptainerFlags(cmd *cobra.Command, o *launchOptions) {
	a := &o.apptainer
	f := cmd.Flags()
	f.StringVar(&a.cwd, "cwd", "", "the same as --pwd (Apptainer's name)")
	f.StringArrayVar(&a.mounts, "mount", nil, "bind in Docker's `syntax`: type=bind,source=SRC,destination=DST[,ro] (repeatable)")
	f.StringArrayVar(&a.noEnv, "no-env", nil, "do not pass these host `variables` (comma list)")
	f.BoolVar(&a.noInit, "no-init", false, "accepted for Apptainer: hpcctl's PID 1 is its own setup process, which forwards signals and reaps; the program is never PID 1")
	f.BoolVar(&a.noEval, "no-eval", false, "keep --env, --env-file and APPTAINERENV_ values as they are instead of evaluating $NAME in them")
	f.BoolVar(&a.noPID, "no-pid", false, "no PID namespace, even under a profile that has one (--containall)")
	f.BoolVar(&a.noUmask, "no-umask", false, "start the program with umask 022 instead of yours")
	f.BoolVar(&a.compat, "compat", false, "Apptainer's OCI-compatibility bundle: --containall --no-init --no-umask --no-eval --writable-tmpfs")
	f.BoolVar(&a.keepPrivs, "keep-privs", false, "root keeps its capabilities in the container (hpcctl's default for root; refused with --no-privs)")
	f.StringVar(&a.addCaps, "add-caps", "", "root with --no-privs: keep these `capabilities` (comma list, e.g. CAP_NET_RAW); root keeps all without --no-privs")
	f.StringVar(&a.dropCaps, "drop-caps", "", "root: drop these `capabilities` (comma list, e.g. CAP_NET_RAW,CAP_SYS_ADMIN)")
	f.StringVar(&a.app, "app", "", "run the SCIF app `name` of an Apptainer image: its runscript (run), test (test) and environment")
	f.StringArrayVar(&a.security, "security", nil, "refused: hpcctl applies no seccomp, AppArmor or SELinux profile")
	f.StringVar(&a.netnsPath, "netns-path", "", "refused: hpcctl joins no existing network namespace; use --net")
	f.StringArrayVar(&a.networkArgs, "network-args", nil, "refused: hpcctl has no CNI networks to pass arguments to")
	f.StringVar(&a.runscriptTimeout, "runscript-timeout", "", "bound an Apptainer image's environment scripts to this `duration` (e.g. 30s)")
	f.BoolVar(&a.underlay, "underlay", false, "accepted for Apptainer: hpcctl always adds mount points in a private overlay layer")
	f.StringVarP(&a.workdir, "workdir", "W", "", "keep --scratch directories, and /tmp and /var/tmp under --contain, in this host `dir`")
	f.StringArrayVarP(&a.scratch, "scratch", "S", nil, "an empty directory at this `path` inside, private to this container (repeatable, comma lists)")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error { return apptainerPreRun(cmd, o) }
}

// apptainerPreRun sets the flags the command line left unset from their variables ($HPCCTL_X,
// $APPTAINER_X, $SINGULARITY_X), collects the appending ones (binds) and says once, at -v,
// which of Apptainer's variables were honoured.
func apptainerPreRun(cmd *cobra.Command, o *launchOptions) error {
	env := compat.EnvLookup(os.Environ())
	used, err := compat.FromEnv(cmd.Flags(), env)
	if err != nil {
		return Usage(err)
	}
	for _, h := range compat.AppendValues("bind", env) {
		o.apptainer.envBinds = append(o.apptainer.envBinds, h.Value)
		used = append(used, h)
	}
	for _, h := range compat.AppendValues("mount", env) {
		o.apptainer.envMounts = append(o.apptainer.envMounts, h.Value)
		used = append(used, h)
	}
	for _, h := range used {
		if h.Foreign() {
			o.apptainer.foreign = append(o.apptainer.foreign, fmt.Sprintf("$%s (--%s)", h.Variable, h.Flag))
		}
	}
	return nil
}

// applyApptainer folds the Apptainer flags into the options hpcctl already has and refuses the
// ones it cannot honour, each with one line.
func (o *launchOptions) applyApptainer(g *Globals) error {
	a := &o.apptainer
	switch {
	case len(a.security) > 0:
		return Usage(fmt.Errorf("--security %s: hpcctl applies no seccomp, AppArmor or SELinux profile and changes no IDs; run without it (--isolate sets no_new_privs)", strings.Join(a.security, ",")))
	case a.netnsPath != "":
		return Usage(fmt.Errorf("--netns-path %s: hpcctl does not join an existing network namespace; use --net for a private one with loopback only", a.netnsPath))
	case len(a.networkArgs) > 0:
		return Usage(fmt.Errorf("--network-args: hpcctl has no CNI networks to pass arguments to; the networks are the host's (default) and none (--net)"))
	case (a.addCaps != "" || a.dropCaps != "") && os.Getuid() != 0:
		return Usage(errors.New("--add-caps and --drop-caps are for root: a plain user's container has no capabilities (Apptainer's `capability add` grants have no hpcctl equivalent)"))
	case a.addCaps != "" && a.dropCaps != "":
		return Usage(errors.New("--add-caps and --drop-caps together: give --drop-caps to keep all but some, or --no-privs --add-caps to keep only some"))
	case a.keepPrivs && o.noPrivs:
		return Usage(errors.New("--keep-privs and --no-privs contradict each other: give one"))
	case a.keepPrivs && os.Getuid() != 0:
		return Usage(errors.New("--keep-privs is for root: a plain user's container has no privileges to keep"))
	case a.cwd != "" && o.pwd != "" && path.Clean(a.cwd) != path.Clean(o.pwd):
		return Usage(fmt.Errorf("--cwd %s and --pwd %s differ: give one", a.cwd, o.pwd))
	case a.app != "" && isolation.CheckAppName(a.app) != nil:
		return Usage(isolation.CheckAppName(a.app))
	}
	if err := o.capabilities(); err != nil {
		return err
	}
	if len(a.foreign) > 0 {
		g.Logger.Info("honouring Apptainer's variables: " + strings.Join(a.foreign, ", "))
	}
	if a.cwd != "" {
		o.pwd = a.cwd
	}
	if a.compat {
		o.containAll, a.noInit, a.noUmask, a.noEval, o.writable = true, true, true, true, true
	}
	if a.noInit {
		g.Logger.Info("--no-init: hpcctl's PID 1 is its own setup process (it forwards signals and reaps); the program is not PID 1")
	}
	if a.underlay {
		g.Logger.Debug("--underlay: hpcctl adds missing mount points in a private overlay layer already; nothing changes")
	}
	for _, s := range a.scratch {
		for _, d := range strings.Split(s, ",") {
			if d = strings.TrimSpace(d); d != "" && !path.IsAbs(d) {
				return Usage(fmt.Errorf("--scratch %q: give an absolute path inside the container", d))
			}
		}
	}
	return nil
}

// capabilities turns --drop-caps and --add-caps into the capabilities root drops. --add-caps
// with --no-privs keeps root's capabilities but for those not named (no_new_privs stays set);
// without --no-privs root keeps every capability already, so there is nothing to add.
func (o *launchOptions) capabilities() error {
	a := &o.apptainer
	if a.dropCaps != "" {
		caps, err := compat.ParseCapabilities(a.dropCaps)
		if err != nil {
			return Usage(fmt.Errorf("--drop-caps: %w", err))
		}
		a.capDrop = caps
	}
	if a.addCaps != "" {
		caps, err := compat.ParseCapabilities(a.addCaps)
		if err != nil {
			return Usage(fmt.Errorf("--add-caps: %w", err))
		}
		if o.noPrivs {
			a.capDrop, a.keepSome = compat.AllCapabilitiesBut(caps), true
		}
	}
	return nil
}

// timeout parses --runscript-timeout as Apptainer does (a Go duration).
func (a *apptainerOptions) timeout() (time.Duration, error) {
	if a.runscriptTimeout == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(a.runscriptTimeout)
	if err != nil || d <= 0 {
		return 0, Usage(fmt.Errorf("--runscript-timeout %q: want a positive duration such as 30s or 2m", a.runscriptTimeout))
	}
	return d, nil
}

// scratchDirs are the --scratch paths, comma lists split.
func (a *apptainerOptions) scratchDirs() []string {
	var out []string
	for _, s := range a.scratch {
		for _, d := range strings.Split(s, ",") {
			if d = strings.TrimSpace(d); d != "" {
				out = append(out, path.Clean(d))
			}
		}
	}
	return out
}

// apptainerIsolation adds what the Apptainer flags ask of the Spec to opts, and creates the
// --workdir directories with the user's own rights.
func apptainerIsolation(o *launchOptions, opts *isolation.Options, cwd string) error {
	a := &o.apptainer
	mounts, err := isolation.ParseMounts(a.mounts, cwd)
	if err != nil {
		return Usage(err)
	}
	opts.Binds = append(opts.Binds, mounts...)
	envMounts, err := isolation.ParseMounts(a.envMounts, cwd)
	if err != nil {
		return fmt.Errorf("$APPTAINER_MOUNT: %w", err)
	}
	opts.EnvBinds = append(opts.EnvBinds, envMounts...)
	for _, v := range a.noEnv {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				opts.NoEnv = append(opts.NoEnv, n)
			}
		}
	}
	opts.NoEval, opts.NoUmask, opts.App = a.noEval, a.noUmask, a.app
	opts.DropCaps, opts.KeepSomeCaps = a.capDrop, a.keepSome
	opts.Switches.NoPID = a.noPID
	if opts.RunscriptTimeout, err = a.timeout(); err != nil {
		return err
	}
	opts.Scratch = a.scratchDirs()
	if a.workdir != "" {
		w := a.workdir
		if !path.IsAbs(w) {
			w = path.Join(cwd, w)
		}
		opts.Workdir = path.Clean(w)
		for _, d := range isolation.WorkdirPaths(*opts) {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("--workdir: %w (give a directory you can write)", err)
			}
		}
	}
	return nil
}
