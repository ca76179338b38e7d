package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hpcctl/hpcctl/internal/isolation"
	"github.com/hpcctl/hpcctl/internal/launcher"
	"github.com/hpcctl/hpcctl/internal/sif"
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
	env      []string
	envFiles []string
	unsquash bool
	backend  string
	writable bool
}

func addLaunchFlags(cmd *cobra.Command, o *launchOptions) {
	f := cmd.Flags()
	// Flags stop at the image: everything after it belongs to the program.
	f.SetInterspersed(false)
	f.StringArrayVarP(&o.binds, "bind", "B", nil, "bind `src[:dst[:ro|rw]]` into the container (repeatable, comma-separated lists; also $"+bindEnv+")")
	f.BoolVar(&o.noHome, "no-home", false, "do not bind the home directory")
	f.StringVar(&o.home, "home", "", "bind `src[:dst]` as the home directory")
	f.StringVar(&o.pwd, "pwd", "", "working `dir`ectory inside the container")
	f.BoolVarP(&o.cleanEnv, "cleanenv", "e", false, "pass no host environment variable (but TERM)")
	f.StringArrayVar(&o.env, "env", nil, "set `NAME=value` inside the container (repeatable)")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "set the variables of this `file` (NAME=value lines) inside the container")
	f.BoolVar(&o.unsquash, "unsquash", false, "extract the image to a private temporary directory instead of mounting it")
	f.StringVar(&o.backend, "backend", "", "how to mount the image: loop (root) or squashfuse (default: chosen automatically)")
	f.BoolVar(&o.writable, "writable-tmpfs", false, "let the program write to the container root (changes vanish at exit)")
}

// launch runs one container for a verb and returns the program's status as an ExitStatus.
func launch(g *globals, verb isolation.Verb, o *launchOptions, image string, args []string) error {
	img, cfg, cleanup, err := resolveImage(g, o, image)
	if err != nil {
		return err
	}
	defer cleanup()
	argv, err := isolation.Argv(verb, cfg, args)
	if err != nil {
		return err
	}
	host, err := hostFacts()
	if err != nil {
		return err
	}
	opts, err := isolationOptions(o, host)
	if err != nil {
		return err
	}
	s, err := isolation.Default(host, opts, img, argv)
	if err != nil {
		return err
	}
	if err := checkBindSources(s.Mounts); err != nil {
		return err
	}
	lo := launcher.Options{Logger: g.logger, Interactive: term.IsTerminal(int(os.Stdin.Fd()))}
	if img.Backend == spec.BackendSquashfuse {
		lo.Squashfuse, _ = exec.LookPath("squashfuse_ll")
	}
	status, err := launcher.Run(s, lo)
	var se *launcher.StartError
	if errors.As(err, &se) && se.Status != 1 {
		fmt.Fprintf(g.stderr, "hpcctl: %v\n", se)
		return ExitStatus{Code: se.Status}
	}
	if err != nil {
		return err
	}
	if status != 0 {
		return ExitStatus{Code: status}
	}
	return nil
}

// resolveImage reads a SIF image or takes a sandbox directory and picks the mount backend.
func resolveImage(g *globals, o *launchOptions, image string) (isolation.Image, *v1.ImageConfig, func(), error) {
	none := func() {}
	st, err := os.Stat(image)
	if err != nil {
		return isolation.Image{}, nil, none, fmt.Errorf("image: %w", err)
	}
	if st.IsDir() {
		return isolation.Image{Path: image, Backend: spec.BackendDir}, nil, none, nil
	}
	si, err := sif.Open(image)
	if err != nil {
		return isolation.Image{}, nil, none, err
	}
	img := isolation.Image{Path: image, Offset: si.Offset, Size: si.Size}
	if si.Config != nil {
		img.Env = si.Config.Env
	}
	if o.unsquash {
		dir, cleanup, err := launcher.Unsquash(si.Path, si.Offset, g.logger)
		if err != nil {
			return img, nil, none, err
		}
		img.Backend, img.Path = spec.BackendDir, dir
		return img, si.Config, cleanup, nil
	}
	img.Backend, err = launcher.ChooseBackend(launcher.Choice(o.backend), launcher.Probe())
	return img, si.Config, none, err
}

// hostFacts describes the launching user from the system's user database.
func hostFacts() (isolation.Host, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return isolation.Host{}, fmt.Errorf("current directory: %w", err)
	}
	h := isolation.Host{UID: os.Getuid(), GID: os.Getgid(), Env: os.Environ(), Cwd: cwd}
	u, err := user.LookupId(strconv.Itoa(h.UID))
	if err != nil {
		return h, fmt.Errorf("look up your user ID %d: %w (hpcctl needs a passwd entry for you)", h.UID, err)
	}
	h.User = isolation.User{Name: u.Username, Gecos: u.Name, Home: u.HomeDir, Shell: loginShell(u.Username)}
	gids, err := os.Getgroups()
	if err != nil {
		return h, fmt.Errorf("list your groups: %w", err)
	}
	for _, gid := range append([]int{h.GID}, gids...) {
		if gr, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
			h.Groups = append(h.Groups, isolation.Group{Name: gr.Name, GID: gid})
		}
	}
	return h, nil
}

// loginShell reads the user's shell from /etc/passwd (os/user does not expose it).
func loginShell(name string) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == name {
			return f[6]
		}
	}
	return ""
}

func isolationOptions(o *launchOptions, h isolation.Host) (isolation.Options, error) {
	specs := o.binds
	if v := os.Getenv(bindEnv); v != "" {
		specs = append([]string{v}, specs...)
	}
	binds, err := isolation.ParseBinds(specs, h.Cwd)
	if err != nil {
		return isolation.Options{}, usageError{err}
	}
	var env []string
	for _, name := range o.envFiles {
		b, err := os.ReadFile(name)
		if err != nil {
			return isolation.Options{}, fmt.Errorf("--env-file: %w", err)
		}
		kv, err := isolation.ParseEnvFile(name, string(b))
		if err != nil {
			return isolation.Options{}, err
		}
		env = append(env, kv...)
	}
	env = append(env, o.env...)
	return isolation.Options{
		Binds: binds, NoHome: o.noHome, Home: o.home, Pwd: o.pwd, CleanEnv: o.cleanEnv,
		Env: env, Writable: o.writable,
	}, nil
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
	}
	return nil
}
