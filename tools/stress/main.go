// Command stress runs many hpcctl launches at once, and kills hpcctl with SIGKILL at each stage
// of a launch, as root and as a plain user, and checks after each round that nothing is left:
// no mount in the host's namespace, no loop device on the image, no squashfuse_ll or hpcctl
// process, no temporary directory. It needs root and the plain user (-user); make stress runs it.
// It is too long for CI on two cores.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/sif/siftest"
)

type options struct {
	hpcctl   string
	user     string
	n        int
	profiles []string
	kills    []time.Duration
	// source, when set, is built by the build rounds (buildRounds).
	source     string
	buildsOnly bool
	// suid, when set, is a prefix of make install-suid: the plain user's rounds run once more
	// through its hpcctl, and so through the setuid starter.
	suid string
}

// viaStarter marks the plain user's rounds through the setuid installation (options.suid).
const viaStarter = " (starter)"

func main() {
	var o options
	var profiles, kills string
	flag.StringVar(&o.hpcctl, "hpcctl", "bin/hpcctl", "the hpcctl binary")
	flag.StringVar(&o.user, "user", "hpcuser", "the plain user")
	flag.IntVar(&o.n, "n", 64, "concurrent launches per profile")
	flag.StringVar(&profiles, "profiles", "default,contain,containall,isolate", "profiles to run")
	flag.StringVar(&o.source, "source", "", "also stress builds of this source (oci-archive:FILE:TAG); \"\" skips them")
	flag.BoolVar(&o.buildsOnly, "builds-only", false, "only the build rounds")
	flag.StringVar(&o.suid, "suid", "", "a `prefix` of make install-suid: also run the plain user's rounds through its setuid starter")
	flag.StringVar(&kills, "kill-after", "0s,1ms,2ms,5ms,10ms,20ms,40ms,80ms,160ms", "SIGKILL hpcctl after each of these delays")
	flag.Parse()
	o.profiles = strings.Split(profiles, ",")
	for _, k := range strings.Split(kills, ",") {
		d, err := time.ParseDuration(k)
		if err != nil {
			fail(err)
		}
		o.kills = append(o.kills, d)
	}
	if err := run(o); err != nil {
		fail(err)
	}
	fmt.Println("stress: nothing left behind")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "stress:", err)
	os.Exit(1)
}

// env is one run's shared state.
type env struct {
	o     options
	u     *user.User
	dir   string // world-readable: the image, and TMPDIR of every launch
	image string
	token string // in the environment of every process started, to find them afterwards
}

func run(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root (it launches as root and as -user)")
	}
	e, err := setup(o)
	if err != nil {
		return err
	}
	defer os.RemoveAll(e.dir)
	if !o.buildsOnly {
		if err := e.launchRounds(); err != nil {
			return err
		}
	}
	if o.source == "" {
		fmt.Println("stress: no -source, no build rounds")
		return nil
	}
	return e.buildRounds(o.source)
}

// launchRounds runs n concurrent launches, then SIGKILLs at each delay, per user and profile.
func (e *env) launchRounds() error {
	o := e.o
	who := []string{"root", o.user}
	if o.suid != "" {
		who = append(who, o.user+viaStarter)
	}
	for _, as := range who {
		for _, p := range o.profiles {
			before, err := snapshot()
			if err != nil {
				return err
			}
			start := time.Now()
			if err = e.concurrent(as, p); err != nil {
				return err
			}
			fmt.Printf("%s %s: %d concurrent launches in %v\n", as, p, o.n, time.Since(start).Round(time.Millisecond))
			if err = e.stopSessions(as); err != nil {
				return err
			}
			if err = e.leftovers(before); err != nil {
				return fmt.Errorf("%s %s, after %d concurrent launches: %w", as, p, o.n, err)
			}
			before, err = snapshot()
			if err != nil {
				return err
			}
			if err := e.killed(as, p); err != nil {
				return err
			}
			fmt.Printf("%s %s: killed at %v\n", as, p, o.kills)
			if err := e.stopSessions(as); err != nil {
				return err
			}
			if err := e.leftovers(before); err != nil {
				return fmt.Errorf("%s %s, after SIGKILLs: %w", as, p, err)
			}
		}
	}
	return nil
}

func setup(o options) (*env, error) {
	u, err := user.Lookup(o.user)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(o.hpcctl)
	if err != nil {
		return nil, err
	}
	o.hpcctl = abs
	dir, err := os.MkdirTemp("/var/tmp", "hpcctl-stress-")
	if err != nil {
		return nil, err
	}
	if err = os.Chmod(dir, 0o1777); err != nil {
		return nil, err
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("needs busybox: %w", err)
	}
	tree := filepath.Join(dir, "tree")
	if err := siftest.BusyboxTree(tree, busybox); err != nil {
		return nil, err
	}
	image := filepath.Join(dir, "bb.sif")
	if err := siftest.Make(image, tree, &v1.ImageConfig{Env: []string{"PATH=/bin"}}); err != nil {
		return nil, err
	}
	// Root's, readable by all, in a sticky directory of root's: one the starter mounts.
	if err := os.Chmod(image, 0o644); err != nil {
		return nil, err
	}
	tok := make([]byte, 8)
	rand.Read(tok) // never fails
	return &env{o: o, u: u, dir: dir, image: image, token: hex.EncodeToString(tok)}, nil
}

func (e *env) cmd(ctx context.Context, as string, args ...string) *exec.Cmd {
	base := []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "TMPDIR=" + e.dir, "HPCCTL_STRESS_TOKEN=" + e.token}
	var c *exec.Cmd
	bin := e.o.hpcctl
	if strings.HasSuffix(as, viaStarter) {
		bin = filepath.Join(e.o.suid, "bin", "hpcctl")
	}
	if as == "root" {
		c = exec.CommandContext(ctx, bin, args...)
		base = append(base, "HOME=/root", "USER=root")
	} else {
		c = exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=" + e.u.Uid, "--regid=" + e.u.Gid, "--init-groups", "--", bin}, args...)...)
		base = append(base, "HOME="+e.u.HomeDir, "USER="+e.o.user)
	}
	c.Dir, c.Env = e.dir, base
	return c
}

// rendezvousEmpty says whether t is a user's session rendezvous directory (hpcctl-UID below
// $TMPDIR, kept like /tmp/hpcctl-UID) with no session's socket or lock left in it.
func rendezvousEmpty(t string) bool {
	if _, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(t), "hpcctl-")); err != nil {
		return false
	}
	ents, err := os.ReadDir(t)
	return err == nil && len(ents) == 0
}

// stopSessions ends the user's shared image sessions, which otherwise stay for their idle time
// after the last container (by design): a holder still there after that is a leftover.
func (e *env) stopSessions(as string) error {
	if out, err := e.cmd(context.Background(), as, "session", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("%s: hpcctl session stop: %v: %s", as, err, out)
	}
	return nil
}

// concurrent runs n launches at once; every one must succeed.
func (e *env) concurrent(as, profile string) error {
	var wg sync.WaitGroup
	errs := make(chan error, e.o.n)
	for i := 0; i < e.o.n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out, err := e.cmd(ctx, as, "exec", "--profile", profile, e.image, "true").CombinedOutput()
			if err != nil {
				errs <- fmt.Errorf("%s %s: %v: %s", as, profile, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// killed starts a launch per delay and kills hpcctl with SIGKILL after it: the early ones die
// reading the configuration or the image, later ones while the setup process mounts, the last
// ones with the program running. setpriv execs hpcctl, so the process started is hpcctl.
func (e *env) killed(as, profile string) error {
	var wg sync.WaitGroup
	for _, d := range e.o.kills {
		c := e.cmd(context.Background(), as, "exec", "--profile", profile, e.image, "sleep", "0.3")
		if err := c.Start(); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(d)
			c.Process.Kill() //nolint:errcheck // it may have finished
			c.Wait()         //nolint:errcheck // killed on purpose
		}()
	}
	wg.Wait()
	return nil
}

type state struct {
	mounts string
}

func snapshot() (state, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	return state{mounts: string(b)}, err
}

// leftovers waits up to 10 seconds (an orphaned program may still run its last moments, and the
// kernel tears a mount namespace down after its last process) for the machine to be as before.
func (e *env) leftovers(before state) error {
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left = e.whatsLeft(before)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("left behind:\n  %s", strings.Join(left, "\n  "))
		}
	}
}

func (e *env) whatsLeft(before state) []string {
	var left []string
	now, err := snapshot()
	if err != nil {
		return []string{err.Error()}
	}
	if now.mounts != before.mounts {
		left = append(left, "the host's mounts changed")
	}
	if out, _ := exec.Command("losetup", "-j", e.image).Output(); len(bytes.TrimSpace(out)) > 0 {
		left = append(left, "loop device: "+strings.TrimSpace(string(out)))
	}
	tmp, _ := filepath.Glob(filepath.Join(e.dir, "hpcctl-*"))
	for _, t := range tmp {
		if rendezvousEmpty(t) {
			continue
		}
		left = append(left, "temporary: "+t)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		b, err := os.ReadFile(filepath.Join(p, "environ"))
		if err != nil || !bytes.Contains(b, []byte("HPCCTL_STRESS_TOKEN="+e.token)) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join(p, "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		left = append(left, fmt.Sprintf("process %s: %s", filepath.Base(p), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	}
	return append(left, e.startersLeft()...)
}

// startersLeft lists the processes of this run's setuid starter still alive: it clears its
// environment, so the token does not find them. (A starter that dropped its privileges execs the
// program, so any process still running the starter's file is one that never ran a program.)
func (e *env) startersLeft() []string {
	if e.o.suid == "" {
		return nil
	}
	starter := filepath.Join(e.o.suid, "libexec", "hpcctl", "hpcctl-starter")
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if exe, err := os.Readlink(filepath.Join(p, "exe")); err == nil && exe == starter {
			status, _ := os.ReadFile(filepath.Join(p, "status"))
			uid := ""
			for _, l := range strings.Split(string(status), "\n") {
				if strings.HasPrefix(l, "Uid:") {
					uid = strings.Join(strings.Fields(l)[1:], "/")
				}
			}
			left = append(left, fmt.Sprintf("starter process %s (UIDs %s)", filepath.Base(p), uid))
		}
	}
	return left
}
