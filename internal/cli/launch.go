package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/hpcctl/hpcctl/internal/compat"
	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/gpu"
	"github.com/hpcctl/hpcctl/internal/hostfacts"
	"github.com/hpcctl/hpcctl/internal/isolation"
	"github.com/hpcctl/hpcctl/internal/launcher"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// bindEnv holds binds added to every launch, as APPTAINER_BIND does for Apptainer.
const bindEnv = "HPCCTL_BIND"

// launchOptions are the flags exec, run, shell and test share.
type launchOptions struct {
	binds    []string
	noHome   bool
	home     string
	pwd      string
	cleanEnv bool
	noJobEnv bool
	// noSession mounts the image for this container alone (no shared image session).
	noSession bool
	env       []string
	envFiles  []string
	unsquash  bool
	backend   string
	writable  bool
	noPrivs   bool

	contain, containAll, isolate bool
	profile                      string
	pid, ipc, net, uts           bool
	network, hostname            string
	hostnameSet                  bool // --hostname given, even empty
	noMount                      []string
	overlays                     []string
	config                       string
	verifyData                   bool
	userns                       bool
	starter                      starterChoice // the setuid starter, when this launch uses it
	apptainer                    apptainerOptions
	ref                          refOptions     // for an IMAGE given by reference
	inst                         *instanceHook  // set by an instance's monitor (instance.go)
	sandbox                      sandboxOptions // --fakeroot, --writable (writable.go)
	gpu                          gpuOptions     // --nv, --rocm, --device (gpu.go)
}

// addLaunchFlags gives a launch verb (exec, run, shell, test, instance start) its flags.
func addLaunchFlags(g *Globals, cmd *cobra.Command, o *launchOptions) {
	g.deferFlags(cmd, func() { defineLaunchFlags(cmd, o) })
}

// defineLaunchFlags defines a launch verb's flags (see Globals.deferFlags for when).
func defineLaunchFlags(cmd *cobra.Command, o *launchOptions) {
	f := cmd.Flags()
	// Flags stop at the image: everything after it belongs to the program.
	f.SetInterspersed(false)
	f.StringArrayVarP(&o.binds, "bind", "B", nil, "bind `src[:dst[:ro|rw]]` into the container (repeatable, comma-separated lists, \\, and \\: escape; also $"+bindEnv+", $APPTAINER_BIND)")
	f.BoolVar(&o.noHome, "no-home", false, "do not bind the home directory")
	f.StringVarP(&o.home, "home", "H", "", "bind `src[:dst]` as the home directory")
	f.StringVar(&o.pwd, "pwd", "", "working `dir`ectory inside the container")
	f.BoolVarP(&o.cleanEnv, "cleanenv", "e", false, "pass no host environment variable but TERM and the job's (SLURM_*, PMIX_*, proxies, ...)")
	f.BoolVar(&o.noJobEnv, "no-job-env", false, "do not pass the batch job's and MPI launcher's variables under profiles that clean the environment, nor open an MPI rank's walls")
	f.StringArrayVar(&o.env, "env", nil, "set `NAME=value` inside the container (repeatable)")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "set the variables of this `file` (NAME=value lines) inside the container")
	f.BoolVar(&o.noSession, "no-session", false, "mount the image for this container alone, not in the user's shared image session (also $HPCCTL_NO_SESSION=1)")
	f.BoolVar(&o.unsquash, "unsquash", false, "extract the image to a private temporary directory instead of mounting it")
	f.StringVar(&o.backend, "backend", "", "how to mount the image: loop (root) or squashfuse (default: chosen automatically)")
	f.BoolVar(&o.writable, "writable-tmpfs", false, "let the program write to the container root (changes vanish at exit)")
	f.BoolVar(&o.noPrivs, "no-privs", false, "drop all capabilities, also as root, and set no_new_privs")
	f.BoolVarP(&o.contain, "contain", "c", false, "profile: minimal /dev, private /tmp and /var/tmp, an empty home, start in the home")
	f.BoolVarP(&o.containAll, "containall", "C", false, "profile: --contain, plus PID and IPC namespaces and a clean environment")
	f.BoolVar(&o.isolate, "isolate", false, "profile: --containall, plus loopback-only network, a fixed host name, the image's working directory and an allow-listed environment")
	f.StringVar(&o.profile, "profile", "", "isolation profile `name` (default, contain, containall, isolate, or one defined in hpcctl.conf)")
	f.BoolVarP(&o.pid, "pid", "p", false, "run in a new PID namespace")
	f.BoolVarP(&o.ipc, "ipc", "i", false, "run in a new IPC namespace")
	f.BoolVarP(&o.net, "net", "n", false, "run in a new network namespace with only the loopback interface")
	f.StringVar(&o.network, "network", "", "network `type`: none (the same as --net); hpcctl has no CNI networks")
	f.BoolVar(&o.uts, "uts", false, "run in a new UTS namespace")
	f.Var(hostnameValue{o}, "hostname", "host `name` inside the container (implies --uts)")
	f.StringArrayVar(&o.noMount, "no-mount", nil, "leave out these mounts (comma list: proc,sys,dev,devpts,home,tmp,cwd,hostfiles,bind-paths, or paths such as /etc/hosts)")
	f.StringVar(&o.config, "config", "", "read the settings from this `file` instead of /etc/hpcctl/hpcctl.conf (also $"+configEnv+"; not when setuid)")
	f.BoolVar(&o.verifyData, "verify-data", false, "check a signed SIF's data against its signature's digests before running it (finds damage since signing; runs hpcctl-image)")
	f.BoolVarP(&o.userns, "userns", "u", false, "use the user-namespace path (squashfuse_ll) even where the setuid starter is installed")
	f.StringArrayVarP(&o.overlays, "overlay", "o", nil, "layer `dir` over the image: writable (changes persist in DIR/upper), or DIR:ro as an extra read-only layer (repeatable)")
	addReferenceFlags(f, &o.ref)
	addGPUFlags(f, &o.gpu)
	cmd.ValidArgsFunction = completeImage
	addApptainerFlags(cmd, o)
	addSandboxFlags(cmd, &o.sandbox)
}

// profileName picks the profile the flags ask for: --profile, else the strongest of --contain,
// --containall and --isolate, else def.
func (o *launchOptions) profileName(def string) (string, error) {
	var flagged string
	for _, f := range []struct {
		on   bool
		name string
	}{{o.contain, isolation.ProfileContain}, {o.containAll, isolation.ProfileContainAll}, {o.isolate, isolation.ProfileIsolate}} {
		if f.on {
			flagged = f.name
		}
	}
	switch {
	case o.profile != "" && flagged != "" && flagged != o.profile:
		return "", UsageError{fmt.Errorf("--profile %s and --%s ask for different profiles: give one", o.profile, flagged)}
	case o.profile != "":
		return o.profile, nil
	case flagged != "":
		return flagged, nil
	}
	return def, nil
}

// switches are the single namespace flags.
func (o *launchOptions) switches() (isolation.Switches, error) {
	sw := isolation.Switches{PID: o.pid, IPC: o.ipc, Net: o.net, UTS: o.uts, Hostname: o.hostname, NoPID: o.apptainer.noPID}
	if o.hostnameSet || o.hostname != "" {
		if err := spec.CheckHostname(o.hostname); err != nil {
			return sw, UsageError{fmt.Errorf("--hostname: %w", err)}
		}
	}
	switch o.network {
	case "":
	case "none":
		sw.Net = true
	default:
		return sw, UsageError{fmt.Errorf("--network %q: hpcctl has no CNI networks; the networks are the host's (no flag) and none (a private namespace with loopback only, as --net)", o.network)}
	}
	return sw, nil
}

// hostnameValue records --hostname and that it was given: an empty name is refused, not taken
// as "keep the host's".
type hostnameValue struct{ o *launchOptions }

func (h hostnameValue) String() string { return h.o.hostname }
func (h hostnameValue) Type() string   { return "string" }
func (h hostnameValue) Set(v string) error {
	h.o.hostname, h.o.hostnameSet = v, true
	return nil
}

// minArgs requires the named leading arguments, as a usage error that names the
// missing ones.
func minArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return UsageError{fmt.Errorf("%s: missing %s (see '%s --help')", cmd.CommandPath(), strings.Join(names[len(args):], " and "), cmd.CommandPath())}
		}
		return nil
	}
}

// launch runs one container for a verb and returns the program's status as an ExitStatus.
func launch(ctx context.Context, g *Globals, verb isolation.Verb, o *launchOptions, image string, args []string) error {
	if err := o.applyApptainer(g); err != nil {
		return err
	}
	o.sandbox.resolve(g)
	o.sandbox.apply(o)
	if name, ok := strings.CutPrefix(image, instanceScheme); ok {
		g.early.Abandon()
		return joinInstance(ctx, g, verb, o, name, args)
	}
	conf, err := g.launchConfig(o.config)
	if err != nil {
		return err
	}
	// SIGTERM or SIGINT stops the launch between any two steps (launcher.Run checks again before
	// the container starts); each step is bounded: files are read non-blocking and with a limit,
	// and the processes it runs (getent, the companion) are killed with ctx.
	if err = ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	sweepScratch(g)
	stage := prestart(g, o, conf)
	defer stage.Abandon()
	if err = o.gpu.resolve(ctx, g, o.starter.path != ""); err != nil {
		return err
	}
	img, cleanup, err := resolveImage(ctx, g, o, conf, image)
	if err != nil {
		return err
	}
	defer cleanup()
	if err = ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	s, err := buildSpec(ctx, o, conf, verb, img.Image, args)
	if err != nil {
		return err
	}
	// -d shows each step the setup stage takes inside the namespaces; without it the stage sends none.
	s.Debug = g.Debug
	lo := launchSettings(g, img)
	if len(s.Images) > 0 && s.Namespaces.User && lo.Squashfuse == "" {
		// Image binds and overlays are served by squashfuse_ll in a user namespace, whatever
		// serves the root image (a sandbox directory, --unsquash).
		if lo.Squashfuse = hostfacts.Probe(conf.Squashfuse).Squashfuse; lo.Squashfuse == "" {
			return errors.New("image binds and image overlays need squashfuse_ll: install the squashfuse package")
		}
	}
	if o.inst != nil {
		s.Instance, o.inst.spec = true, s
		lo.Started = func(pid int) {
			if serr := o.inst.started(pid); serr != nil {
				g.Logger.Error("instance", "err", serr)
			}
		}
	}
	lo.Interactive = term.IsTerminal(int(os.Stdin.Fd()))
	lo.Prestarted = stage
	lo.Session = sessionOptions(o, conf, img)
	if o.starter.path != "" {
		starterSpec(s)
		lo.Starter = o.starter.path
	}
	status, err := launcher.Run(ctx, s, lo)
	err = starterHint(o, err)
	var se *launcher.StartError
	if errors.As(err, &se) && se.Status != 1 {
		fmt.Fprintf(g.Stderr, "hpcctl: %v\n", se)
		return ExitStatus{Code: se.Status}
	}
	if err != nil {
		return err
	}
	if status.Code != 0 {
		return ExitStatus{Code: status.Code, Signal: status.Signal}
	}
	return nil
}

// launchSettings are the launcher's options for an image.
func launchSettings(g *Globals, img resolvedImage) launcher.Options {
	return launcher.Options{Logger: g.Logger, Image: img.File, Squashfuse: img.Squashfuse}
}

// resolveProfile is the profile the flags ask for, from the built-in ones and the configuration.
func (o *launchOptions) resolveProfile(conf *config.Config) (isolation.Profile, error) {
	name, err := o.profileName(conf.DefaultProfile)
	if err != nil {
		return isolation.Profile{}, err
	}
	p, err := isolation.ProfileFor(conf, name)
	if err != nil {
		return p, UsageError{err}
	}
	return p, nil
}

// prestart starts the container's setup process for the namespaces the flags ask for, so that
// its start overlaps opening the image and making the Spec, or takes the one speculate started
// when that one fits. It returns nil when the flags or the configuration are in error (buildSpec
// says why) or the process cannot start (launcher.Run, starting it again, says why).
func prestart(g *Globals, o *launchOptions, conf *config.Config) *launcher.Pending {
	early := g.early
	g.early = nil
	sh, lo, ok := prestartPlan(o, conf)
	if ok && early.Fits(sh, lo) {
		g.Logger.Debug("setup stage started before the command line was parsed: taken")
		return early
	}
	if early != nil {
		g.Logger.Debug("setup stage started before the command line was parsed: not this launch's, started again")
	}
	early.Abandon()
	if !ok {
		return nil
	}
	return launcher.Prestart(sh, lo)
}

// prestartPlan is the shape of the setup process, and how it is started, for the flags and the
// configuration; ok is false when they are in error. It chooses the starter (o.starter).
func prestartPlan(o *launchOptions, conf *config.Config) (sh spec.Shape, lo launcher.Options, ok bool) {
	p, err := o.resolveProfile(conf)
	if err != nil {
		return sh, lo, false
	}
	sw, err := o.switches()
	if err != nil {
		return sh, lo, false
	}
	p = isolation.Effective(p, isolation.Options{Switches: sw, NoJobEnv: o.noJobEnv}, os.Environ())
	sh = isolation.ShapeFor(p, os.Getuid(), os.Getgid(), o.sandbox.mapping)
	if o.starter = chooseStarter(o, conf); o.starter.path != "" {
		return starterShape(sh), launcher.Options{Starter: o.starter.path}, true
	}
	return sh, launcher.Options{}, true
}

// buildSpec makes the Spec of one launch from the flags, the configuration and the image, and
// prepares what it needs on the host (checked bind sources, overlay directories).
func buildSpec(ctx context.Context, o *launchOptions, conf *config.Config, verb isolation.Verb, img isolation.Image, args []string) (*spec.Spec, error) {
	argv, err := isolation.Argv(verb, img, args)
	if o.apptainer.app != "" {
		argv, err = isolation.AppArgv(verb, img, o.apptainer.app, args)
	}
	if err != nil {
		return nil, err
	}
	host, err := hostfacts.Host(ctx)
	if err != nil {
		return nil, err
	}
	opts, err := isolationOptions(o, host, img.Path)
	if err != nil {
		return nil, err
	}
	profile, err := o.resolveProfile(conf)
	if err != nil {
		return nil, err
	}
	policy, err := isolation.PolicyFor(conf)
	if err != nil {
		return nil, err
	}
	s, err := isolation.Build(profile, policy, host, opts, img, argv)
	if err != nil {
		return nil, err
	}
	if err := checkBindSources(s.Mounts); err != nil {
		return nil, err
	}
	if err := resolveImages(s, o.starter.path != ""); err != nil {
		return nil, err
	}
	return s, prepareOverlays(s.Overlays)
}

func isolationOptions(o *launchOptions, h isolation.Host, img string) (isolation.Options, error) {
	binds, err := isolation.ParseBinds(o.binds, h.Cwd)
	if err != nil {
		return isolation.Options{}, UsageError{err}
	}
	envBinds, err := isolation.ParseBinds(o.apptainer.envBinds, h.Cwd)
	if err != nil {
		return isolation.Options{}, fmt.Errorf("$%s or $APPTAINER_BIND: %w", bindEnv, err)
	}
	sw, err := o.switches()
	if err != nil {
		return isolation.Options{}, err
	}
	nm, err := isolation.ParseNoMount(o.noMount)
	if err != nil {
		return isolation.Options{}, UsageError{err}
	}
	overlays, err := isolation.ParseOverlaysWith(o.overlays, h.Cwd, isImageFile)
	if err != nil {
		return isolation.Options{}, UsageError{err}
	}
	env, err := envSettings(o, img)
	if err != nil {
		return isolation.Options{}, err
	}
	opts := isolation.Options{
		Binds: binds, EnvBinds: envBinds, NoHome: o.noHome, Home: o.home, Pwd: o.pwd, CleanEnv: o.cleanEnv,
		NoJobEnv: o.noJobEnv, Env: env, Writable: o.writable, NoPrivs: o.noPrivs, Switches: sw, NoMount: nm, Overlays: overlays,
		Devices: o.gpu.found.Mounts, DeviceEnv: o.gpu.found.Env,
	}
	if o.gpu.found.Libs > 0 {
		opts.DeviceLibs = gpu.LibDir
	}
	if err := o.sandbox.options(&opts, img); err != nil {
		return opts, err
	}
	return opts, apptainerIsolation(o, &opts, h.Cwd)
}

// envSettings are the --env-file contents, then the --env settings, each with a name a program
// can use. An env file's $NAME are evaluated against the host's environment (and
// $APPTAINER_IMAGE), as Apptainer evaluates it with a shell.
func envSettings(o *launchOptions, image string) ([]string, error) {
	host := compat.EnvLookup(append(os.Environ(), "APPTAINER_IMAGE="+image, "HPCCTL_IMAGE="+image))
	var env []string
	for _, name := range o.envFiles {
		b, err := readUserFile(name, "--env-file", maxSmallFile)
		if err != nil {
			return nil, err
		}
		kv, err := isolation.EvalEnvFile(name, string(b), host)
		if err != nil {
			return nil, err
		}
		env = append(env, kv...)
	}
	for _, kv := range o.env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, UsageError{fmt.Errorf("--env %q: want NAME=value", kv)}
		}
		if err := spec.CheckEnvName(name); err != nil {
			return nil, UsageError{fmt.Errorf("--env %q: %w", kv, err)}
		}
	}
	return append(env, o.env...), nil
}

// checkBindSources fails early, with one line, on a bind source that is missing or that the user
// cannot read; the child checks again when it opens them.
func checkBindSources(ms []spec.Mount) error {
	for _, m := range ms {
		if m.Kind != spec.KindBind || m.Optional {
			continue
		}
		if _, err := os.Stat(m.Source); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("bind source %s: %v (create it or fix the --bind/--home option)", m.Source, err)
		}
		if err := unix.Access(m.Source, unix.R_OK); err != nil {
			return fmt.Errorf("bind source %s: you cannot read it: %v", m.Source, err)
		}
	}
	return nil
}
