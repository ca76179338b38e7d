// Command sessionbench measures shared image sessions (issue 14), in one run, as root with a plain
// user: a warm import-heavy Python start in the container against the same command chrooted into
// the unpacked tree; a warm `exec IMAGE /bin/true`; and the page cache that 16 concurrent
// containers reading the whole image add, against one container's.
package main

import (
	"bufio"
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

// readAll reads every regular file of the image once (the root only: binds are other devices).
const readAll = "find / -xdev -type f -readable -print0 2>/dev/null | xargs -0 cat > /dev/null 2>&1; true"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sessionbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	hpcctl, image, tree, conf string
	cred                      *syscall.Credential
	n                         int
}

func run() error {
	var b bench
	var name string
	flag.StringVar(&b.hpcctl, "hpcctl", "bin/hpcctl", "hpcctl binary")
	flag.StringVar(&b.tree, "tree", os.Getenv("HPCCTL_TEST_DEBIAN_ROOTFS"), "the unpacked Debian+python3 tree (scripts/fixtures.sh)")
	flag.StringVar(&name, "user", "hpcuser", "plain user who runs the containers")
	flag.IntVar(&b.n, "n", 20, "runs per timing")
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
	defer b.endSessions()
	for _, f := range []func() error{b.python, b.trueStart, b.pageCache} {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// python compares the warm import in the container (joining a warm session) with the chroot.
func (b *bench) python() error {
	in, err := b.times(b.n, b.exec(true, "/usr/bin/python3", "-c", pyImports))
	if err != nil {
		return err
	}
	host, err := b.timesAs(nil, b.n, []string{"chroot", b.tree, "/usr/bin/python3", "-c", pyImports})
	if err != nil {
		return err
	}
	ratio := float64(median(in)) / float64(median(host))
	fmt.Printf("python3 import set, warm: container %s, chroot %s, ratio %.2f (target <= 1.15)\n", ms(median(in)), ms(median(host)), ratio)
	return nil
}

// trueStart times a warm `exec IMAGE /bin/true` as the plain user, with and without a session.
func (b *bench) trueStart() error {
	on, err := b.times(b.n, b.exec(true, "/bin/true"))
	if err != nil {
		return err
	}
	off, err := b.times(b.n, b.exec(false, "/bin/true"))
	if err != nil {
		return err
	}
	fmt.Printf("exec IMAGE /bin/true as a plain user: median %s with a session (target < 20 ms), %s without\n", ms(median(on)), ms(median(off)))
	return nil
}

// pageCache compares the page cache growth of 16 concurrent containers each reading the whole
// image with that of one, with sessions, and shows 16 without sessions for scale.
func (b *bench) pageCache() error {
	one, err := b.cacheGrowth(1, true)
	if err != nil {
		return err
	}
	many, err := b.cacheGrowth(16, true)
	if err != nil {
		return err
	}
	alone, err := b.cacheGrowth(16, false)
	if err != nil {
		return err
	}
	fmt.Printf("page cache growth reading the whole image: 1 container %d MiB, 16 with a session %d MiB (ratio %.2f, target <= 1.2), 16 without %d MiB\n",
		one>>20, many>>20, float64(many)/float64(max(one, 1)), alone>>20)
	return nil
}

// cacheGrowth drops the page cache (and the sessions, whose FUSE cache it would keep), runs n
// containers at once that each read the whole image, and returns how much Cached grew.
func (b *bench) cacheGrowth(n int, session bool) (int64, error) {
	b.endSessions()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return 0, fmt.Errorf("drop the page cache: %w", err)
	}
	before, err := cached()
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.timeAs(b.cred, b.exec(session, "/bin/sh", "-c", readAll))
		}()
	}
	wg.Wait()
	if err = errors.Join(errs...); err != nil {
		return 0, err
	}
	after, err := cached()
	return after - before, err
}

// exec is the hpcctl command line that runs argv in the image, in a session or not.
func (b *bench) exec(session bool, argv ...string) []string {
	args := []string{b.hpcctl, "exec", "--config", b.conf}
	if !session {
		args = append(args, "--no-session")
	}
	return append(append(args, b.image), argv...)
}

// times runs argv as the plain user once to warm up, then n times.
func (b *bench) times(n int, argv []string) ([]time.Duration, error) {
	return b.timesAs(b.cred, n, argv)
}

func (b *bench) timesAs(cred *syscall.Credential, n int, argv []string) ([]time.Duration, error) {
	var d []time.Duration
	for i := range n + 1 {
		t, err := b.timeAs(cred, argv)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			d = append(d, t)
		}
	}
	return d, nil
}

func (b *bench) timeAs(cred *syscall.Credential, argv []string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
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

// cached is /proc/meminfo's Cached, in bytes.
func cached() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) >= 2 && f[0] == "Cached:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no Cached in /proc/meminfo")
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

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
