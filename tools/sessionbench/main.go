// Command sessionbench measures shared image sessions (issue 14), in one run, as root with a plain
// user: a warm import-heavy Python start in the container against the same command chrooted into
// the unpacked tree; a warm `exec IMAGE /bin/true`; and the page cache that 16 concurrent
// containers reading the whole image add, against one container's. The machine may be busy with
// other work: timings alternate the commands compared, run by run, and report medians and the
// median of the run-by-run ratios; the page cache is counted in a memory cgroup of its own.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pyImports is the import-heavy workload: the Debian fixture has no numpy, so a set of standard
// library packages that loads a comparable number of modules from the image.
const pyImports = "import json, email.parser, http.client, xml.etree.ElementTree, decimal, asyncio, unittest, argparse, logging, csv, ssl, sqlite3, multiprocessing, concurrent.futures, pydoc, difflib, tarfile, zipfile, statistics, fractions"

// readAll reads every regular file of the image once (the root only: binds are other devices),
// says so (read-N in its working directory, a host directory), and keeps its mount until the
// file go appears there: a container's own FUSE mount, and its page cache, go when it ends.
const readAll = `find / -xdev -type f -readable -print0 2>/dev/null | xargs -0 cat > /dev/null 2>&1; : > "read-$1"; while [ ! -e go ]; do sleep 0.1; done`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sessionbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	hpcctl, image, tree, conf, floor string
	cred                      *syscall.Credential
	n, rounds                 int
}

func run() error {
	var b bench
	var name string
	flag.StringVar(&b.hpcctl, "hpcctl", "bin/hpcctl", "hpcctl binary")
	flag.StringVar(&b.tree, "tree", os.Getenv("HPCCTL_TEST_DEBIAN_ROOTFS"), "the unpacked Debian+python3 tree (scripts/fixtures.sh)")
	flag.StringVar(&name, "user", "hpcuser", "plain user who runs the containers")
	flag.IntVar(&b.n, "n", 20, "runs of each command per timing, alternating")
	flag.IntVar(&b.rounds, "rounds", 3, "rounds of the page cache measurement")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("run as root (it chroots, drops the page cache and runs containers as -user)")
	}
	if b.tree == "" {
		return errors.New("no Debian tree: eval \"$(scripts/fixtures.sh env)\" or pass -tree")
	}
	var err error
	if b.hpcctl, err = filepath.Abs(b.hpcctl); err != nil {
		return err
	}
	if b.cred, err = credential(name); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sessionbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err = os.Chmod(dir, 0o755); err != nil {
		return err
	}
	b.image, b.conf = filepath.Join(dir, "debian.sif"), filepath.Join(dir, "hpcctl.conf")
	if out, err := exec.Command(b.hpcctl, "build", "-q", b.image, b.tree).CombinedOutput(); err != nil {
		return fmt.Errorf("build the image: %v: %s", err, out)
	}
	if err := os.WriteFile(b.conf, []byte("[session]\nidle_timeout = \"60s\"\n"), 0o644); err != nil {
		return err
	}
	b.floor = filepath.Join(dir, "startfloor")
	build := exec.Command("go", "build", "-o", b.floor, "./tools/startfloor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build tools/startfloor (run from the source tree): %v: %s", err, out)
	}
	defer b.endSessions()
	for _, f := range []func() error{b.python, b.trueStart, b.pageCache} {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// python compares the warm import in the container (joining a warm session) with the chroot, and
// times a warm `exec IMAGE /bin/true` in the same runs: the container's start is in its time.
func (b *bench) python() error {
	d, err := b.alternate([]*syscall.Credential{b.cred, nil, b.cred}, [][]string{
		b.exec(true, "/usr/bin/python3", "-c", pyImports),
		{"chroot", b.tree, "/usr/bin/python3", "-c", pyImports},
		b.exec(true, "/bin/true"),
	})
	if err != nil {
		return err
	}
	in, host, start := d[0], d[1], d[2]
	fmt.Printf("python3 import set, warm: container %s, chroot %s, ratio %.2f (median of %d paired runs; target <= 1.15); container start (/bin/true) %s\n",
		ms(median(in)), ms(median(host)), medianRatio(in, host), len(in), ms(median(start)))
	return nil
}

// trueStart times a warm `exec IMAGE /bin/true` as the plain user, with and without a session,
// and root's in the same runs: root's kernel mount on a shared loop device is the yardstick of a
// start with nothing to mount. The Go floor (tools/startfloor, as the plain user) is the least a
// launcher of two Go processes can take: namespaces and the exec of the host's /bin/true, no image.
func (b *bench) trueStart() error {
	d, err := b.alternate([]*syscall.Credential{b.cred, b.cred, nil, b.cred},
		[][]string{b.exec(true, "/bin/true"), b.exec(false, "/bin/true"), b.exec(false, "/bin/true"), {b.floor, "/bin/true"}})
	if err != nil {
		return err
	}
	fmt.Printf("exec IMAGE /bin/true as a plain user: median %s with a session (target < 20 ms), %s without; root's %s (ratio to root's %.2f); Go floor %s (ratio to it %.2f)\n",
		ms(median(d[0])), ms(median(d[1])), ms(median(d[2])), medianRatio(d[0], d[2]), ms(median(d[3])), medianRatio(d[0], d[3]))
	return nil
}

// pageCache compares the page cache growth of 16 concurrent containers each reading the whole
// image with that of one, with sessions, and shows 16 without sessions for scale. Each round
// measures all three; the figures are the medians of the rounds. The cgroup's count is the
// measure; /proc/meminfo's Cached, which the rest of the machine moves too, is shown beside it.
func (b *bench) pageCache() error {
	cg, err := newMemCgroup()
	if err != nil {
		return err
	}
	defer cg.remove()
	if err := cg.enter(); err != nil {
		return fmt.Errorf("enter the memory cgroup: %w", err)
	}
	var one, many, alone, mOne, mMany, mAlone []int64
	for range b.rounds {
		for _, m := range []struct {
			n       int
			session bool
			cg, mi  *[]int64
		}{{1, true, &one, &mOne}, {16, true, &many, &mMany}, {16, false, &alone, &mAlone}} {
			c, mi, err := b.cacheGrowth(cg, m.n, m.session)
			if err != nil {
				return err
			}
			*m.cg, *m.mi = append(*m.cg, c), append(*m.mi, mi)
		}
	}
	ratio := func(a, b []int64) float64 { return float64(medianInt(a)) / float64(max(medianInt(b), 1)) }
	fmt.Printf("page cache growth reading the whole image (memory cgroup, median of %d rounds): 1 container %d MiB, 16 with a session %d MiB (ratio %.2f, target <= 1.2), 16 without %d MiB (ratio %.2f)\n",
		b.rounds, medianInt(one)>>20, medianInt(many)>>20, ratio(many, one), medianInt(alone)>>20, ratio(alone, one))
	fmt.Printf("  the same runs by /proc/meminfo Cached: 1 container %d MiB, 16 with a session %d MiB (ratio %.2f), 16 without %d MiB\n",
		medianInt(mOne)>>20, medianInt(mMany)>>20, ratio(mMany, mOne), medianInt(mAlone)>>20)
	return nil
}

// cacheGrowth drops the page cache (and the sessions, whose FUSE cache it would keep), runs n
// containers at once that each read the whole image, and returns how much the page cache
// charged to the cgroup grew, and how much /proc/meminfo's Cached did.
func (b *bench) cacheGrowth(cg *memCgroup, n int, session bool) (int64, int64, error) {
	b.endSessions()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return 0, 0, fmt.Errorf("drop the page cache: %w", err)
	}
	before, err := cg.cached()
	if err != nil {
		return 0, 0, err
	}
	mBefore, err := meminfoCached()
	if err != nil {
		return 0, 0, err
	}
	work, err := b.workDir()
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(work)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.timeIn(work, b.cred, b.exec(session, "/bin/sh", "-c", readAll, "sh", strconv.Itoa(i)))
		}()
	}
	// Counted while every container still has its mount, then they are let go.
	after, mAfter, err := cg.cachedOnce(work, n)
	os.WriteFile(filepath.Join(work, "go"), nil, 0o644) //nolint:errcheck // a failure shows as containers that never end
	wg.Wait()
	if err != nil {
		return 0, 0, err
	}
	if err = errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	return after - before, mAfter - mBefore, nil
}

// cachedOnce waits until the n containers working in work have read the image (read-N files),
// then returns the cgroup's and /proc/meminfo's page cache.
func (cg *memCgroup) cachedOnce(work string, n int) (int64, int64, error) {
	deadline := time.Now().Add(30 * time.Minute)
	for {
		done, _ := filepath.Glob(filepath.Join(work, "read-*"))
		if len(done) == n {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%d of %d containers read the image in 30 minutes", len(done), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, err := cg.cached()
	if err != nil {
		return 0, 0, err
	}
	m, err := meminfoCached()
	return c, m, err
}

// workDir makes a directory of the plain user's for the containers' marker files.
func (b *bench) workDir() (string, error) {
	d, err := os.MkdirTemp(filepath.Dir(b.image), "work-")
	if err == nil {
		err = os.Chown(d, int(b.cred.Uid), int(b.cred.Gid))
	}
	return d, err
}

// exec is the hpcctl command line that runs argv in the image, in a session or not.
func (b *bench) exec(session bool, argv ...string) []string {
	args := []string{b.hpcctl, "exec", "--config", b.conf}
	if !session {
		args = append(args, "--no-session")
	}
	return append(append(args, b.image), argv...)
}

// alternate runs each command (as creds[i], nil for root) once to warm up, then all of them in
// turn n times, so that a machine whose speed drifts slows them alike; it returns each one's times.
func (b *bench) alternate(creds []*syscall.Credential, cmds [][]string) ([][]time.Duration, error) {
	d := make([][]time.Duration, len(cmds))
	for i := range b.n + 1 {
		for j, argv := range cmds {
			t, err := b.timeAs(creds[j], argv)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				d[j] = append(d[j], t)
			}
		}
	}
	return d, nil
}

func (b *bench) timeAs(cred *syscall.Credential, argv []string) (time.Duration, error) {
	return b.timeIn("/", cred, argv)
}

// timeIn runs argv in dir as cred (nil: root) and returns how long it took.
func (b *bench) timeIn(dir string, cred *syscall.Credential, argv []string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/", "LANG=C"}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%q: %w", argv, err)
	}
	return time.Since(start), nil
}

// endSessions kills the session holders of the benchmark's image (found by its path on their
// command line): their squashfuse_ll dies with them.
func (b *bench) endSessions() {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), "__hpcctl_session__\x00"+b.image+"\x00") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // it may have ended
		}
	}
	time.Sleep(200 * time.Millisecond) // the kernel tears the mounts down after the exits
}

func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w (create it with useradd -m %s)", name, err, name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// medianRatio is the median of the run-by-run ratios a[i]/b[i].
func medianRatio(a, b []time.Duration) float64 {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = float64(a[i]) / float64(b[i])
	}
	slices.Sort(r)
	return r[len(r)/2]
}

func medianInt(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
