// Command sessionbench measures shared image sessions (issue 14), in one run, as root with a plain
// user: a warm import-heavy Python start in the container, its image served by hpcctl's own FUSE
// server and by squashfuse_ll, against the same command chrooted into the unpacked tree, for a set
// of standard library modules and for `import numpy` (the MPI fixture, which has numpy), with the
// FUSE requests one warm run sends to hpcctl's server; a warm `exec IMAGE /bin/true`; and the
// page cache that 16 concurrent containers reading the whole image add, against one container's. The machine may be busy with
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
	// The plain user's half of the request count: its sessions answer only their own user.
	if len(os.Args) == 3 && os.Args[1] == requestsArg {
		os.Exit(printRequests(os.Args[2]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sessionbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	hpcctl, image, tree, conf, floor string
	// mpiImage and mpiTree are the numpy workload's; confSqfs selects squashfuse_ll.
	mpiImage, mpiTree, confSqfs string
	cred                        *syscall.Credential
	n, rounds                   int
}

func run() error {
	var b bench
	var name string
	flag.StringVar(&b.hpcctl, "hpcctl", "bin/hpcctl", "hpcctl binary")
	flag.StringVar(&b.tree, "tree", os.Getenv("HPCCTL_TEST_DEBIAN_ROOTFS"), "the unpacked Debian+python3 tree (scripts/fixtures.sh)")
	flag.StringVar(&b.mpiTree, "mpi-tree", os.Getenv("HPCCTL_TEST_MPI_ROOTFS"), "the unpacked tree with numpy (scripts/fixtures.sh); \"\" skips import numpy")
	flag.StringVar(&name, "user", "hpcuser", "plain user who runs the containers")
	flag.IntVar(&b.n, "n", 20, "runs of each command per timing, alternating")
	flag.IntVar(&b.rounds, "rounds", 3, "rounds of the page cache measurement")
	only := ""
	flag.StringVar(&only, "only", "", "run only these parts, comma-separated: python, numpy, start, machine, cache (default all)")
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
	b.mpiImage, b.confSqfs = filepath.Join(dir, "mpi.sif"), filepath.Join(dir, "squashfuse.conf")
	for img, tree := range map[string]string{b.image: b.tree, b.mpiImage: b.mpiTree} {
		if tree == "" {
			continue
		}
		if out, err := exec.Command(b.hpcctl, "build", "-q", img, tree).CombinedOutput(); err != nil {
			return fmt.Errorf("build the image of %s: %v: %s", tree, err, out)
		}
	}
	for conf, server := range map[string]string{b.conf: "hpcctl", b.confSqfs: "squashfuse_ll"} {
		if err := os.WriteFile(conf, []byte("[session]\nidle_timeout = \"60s\"\nfuse_server = \""+server+"\"\n"), 0o644); err != nil {
			return err
		}
	}
	b.floor = filepath.Join(dir, "startfloor")
	build := exec.Command("go", "build", "-o", b.floor, "./tools/startfloor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build tools/startfloor (run from the source tree): %v: %s", err, out)
	}
	defer b.endSessions()
	parts := []struct {
		name string
		run  func() error
	}{{"python", b.python}, {"numpy", b.numpy}, {"start", b.trueStart}, {"machine", b.machine}, {"cache", b.pageCache}}
	for _, p := range parts {
		if only != "" && !slices.Contains(strings.Split(only, ","), p.name) {
			continue
		}
		if err := p.run(); err != nil {
			return err
		}
	}
	return nil
}

// python compares the warm import in the container (joining a warm session of each FUSE server,
// and root's on the kernel's squashfs) with the chroot, and times a warm `exec IMAGE /bin/true` in the same runs: the container's
// start is in its time.
func (b *bench) python() error {
	return b.imports("python3 import set", b.image, b.tree, pyImports, "target <= 1.15")
}

// numpy is the issue's own workload, on the MPI fixture.
func (b *bench) numpy() error {
	if b.mpiTree == "" {
		return nil
	}
	return b.imports("python3 -c 'import numpy'", b.mpiImage, b.mpiTree, "import numpy", "")
}

func (b *bench) imports(label, image, tree, code, target string) error {
	py := []string{"/usr/bin/python3", "-c", code}
	// Root's kernel mount is warm only while a container holds its autoclear loop device: each
	// launch would otherwise attach a new one, a new superblock with an empty page cache.
	holdArgs := b.execImage(b.conf, image, false, "sleep", "infinity")
	hold := exec.Command(holdArgs[0], holdArgs[1:]...)
	if err := hold.Start(); err != nil {
		return fmt.Errorf("hold root's mount: %w", err)
	}
	defer func() { hold.Process.Kill(); hold.Wait() }() //nolint:errcheck // ending it
	d, err := b.alternate([]*syscall.Credential{b.cred, b.cred, nil, nil, b.cred}, [][]string{
		b.execImage(b.conf, image, true, py...),
		b.execImage(b.confSqfs, image, true, py...),
		b.execImage(b.conf, image, false, py...),
		append([]string{"chroot", tree}, py...),
		b.execImage(b.conf, image, true, "/bin/true"),
	})
	if err != nil {
		return err
	}
	own, sqfs, root, host, start := d[0], d[1], d[2], d[3], d[4]
	fmt.Printf("%s, warm (median of %d paired runs%s): chroot %s; container with hpcctl's FUSE server %s, ratio %.2f; with squashfuse_ll %s, ratio %.2f; root's (kernel squashfs) %s, ratio %.2f; hpcctl's server / root's %.2f; container start (/bin/true) %s\n",
		label, len(own), map[bool]string{true: "; " + target}[target != ""], ms(median(host)), ms(median(own)), medianRatio(own, host),
		ms(median(sqfs)), medianRatio(sqfs, host), ms(median(root)), medianRatio(root, host), medianRatio(own, root), ms(median(start)))
	reqs, err := b.warmRequests(image, py)
	if err != nil {
		return err
	}
	fmt.Printf("  FUSE requests of one more warm run to hpcctl's server: %s\n", reqs)
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
	return b.execImage(b.conf, b.image, session, argv...)
}

func (b *bench) execImage(conf, image string, session bool, argv ...string) []string {
	args := []string{b.hpcctl, "exec", "--config", conf}
	if !session {
		args = append(args, "--no-session")
	}
	return append(append(args, image), argv...)
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
	d, _, err := b.runIn(dir, cred, argv)
	return d, err
}

// runIn runs argv in dir as cred (nil: root) and returns how long it took and its resource use
// with that of the children it waited for.
func (b *bench) runIn(dir string, cred *syscall.Credential, argv []string) (time.Duration, *syscall.Rusage, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/", "LANG=C"}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, nil, fmt.Errorf("%q: %w", argv, err)
	}
	d := time.Since(start)
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return d, ru, nil
}

// endSessions kills the session holders of the benchmark's images (found by their paths on their
// command lines): a squashfuse_ll dies with its holder.
func (b *bench) endSessions() {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), "__hpcctl_session__\x00") {
			continue
		}
		for _, img := range []string{b.image, b.mpiImage} {
			if strings.Contains(string(cmdline), "__hpcctl_session__\x00"+img+"\x00") {
				if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
					syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // it may have ended
				}
			}
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
