// Command execbench measures how long `hpcctl exec IMAGE /bin/true` takes from start to exit, as
// root and as a plain user, against the same work done by hand in the same run (unshare, mount,
// chroot), and prints medians and ratios. It needs root, and a plain user for the unprivileged half.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/sif/siftest"
	"github.com/hpcctl/hpcctl/tools/internal/benchutil"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "execbench:", err)
		os.Exit(1)
	}
}

type config struct {
	hpcctl, image, user string
	n                   int
	// suid is a make install-suid prefix: its hpcctl, run by the plain user, goes through the
	// setuid starter, measured against root's own kernel-mount start.
	suid string
}

func run() error {
	var c config
	flag.StringVar(&c.hpcctl, "hpcctl", "bin/hpcctl", "hpcctl binary")
	flag.StringVar(&c.image, "image", "", "SIF image (default: a busybox image made with mksquashfs)")
	flag.StringVar(&c.user, "user", "hpcuser", "plain user for the unprivileged runs (\"\" to skip them)")
	flag.IntVar(&c.n, "n", 50, "runs per measurement")
	flag.StringVar(&c.suid, "suid", "", "a `prefix` of make install-suid: also time the plain user's exec through the setuid starter against root's")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("run as root (it measures root and, through -user, a plain user)")
	}
	dir, err := os.MkdirTemp("", "execbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err = os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if c.hpcctl, err = filepath.Abs(c.hpcctl); err != nil {
		return err
	}
	if c.image == "" {
		if c.image, err = busyboxImage(dir); err != nil {
			return err
		}
	}
	img, err := sif.Open(c.image)
	if err != nil {
		return err
	}
	off := strconv.FormatInt(img.Offset, 10)
	fmt.Printf("image %s (partition at %d, %d bytes), %d runs each, median [p10 p90]\n", c.image, img.Offset, img.Size, c.n)

	mnt := filepath.Join(dir, "mnt")
	if err = os.Mkdir(mnt, 0o755); err != nil {
		return err
	}
	rootBase := []string{"unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -o loop,ro,offset=" + off + " \"$0\" \"$1\" && exec chroot \"$1\" /bin/true", c.image, mnt}
	if err = compare("root", nil, []string{c.hpcctl, "exec", c.image, "/bin/true"}, rootBase, c.n); err != nil {
		return err
	}
	if c.user == "" {
		return nil
	}
	cred, err := benchutil.Credential(c.user)
	if err != nil {
		return err
	}
	if err := os.Chown(mnt, int(cred.Uid), int(cred.Gid)); err != nil {
		return err
	}
	if err := os.Chmod("/dev/fuse", 0o666); err != nil {
		return err
	}
	// The baseline unmounts at the end, as hpcctl does: a FUSE daemon left mounted would keep its
	// mount namespace (and itself) alive after the run.
	userBase := []string{"unshare", "-Urm", "sh", "-c",
		"squashfuse_ll -o ro,offset=" + off + " \"$0\" \"$1\" || exit 1; chroot \"$1\" /bin/true; s=$?; umount \"$1\"; exit $s", c.image, mnt}
	if err := compare("user "+c.user, cred, []string{c.hpcctl, "exec", c.image, "/bin/true"}, userBase, c.n); err != nil {
		return err
	}
	if c.suid == "" {
		return nil
	}
	// The baseline here is root's own hpcctl start (kernel squashfs, no user namespace), which
	// the starter should match.
	return compareAs("user (starter)", cred, []string{filepath.Join(c.suid, "bin", "hpcctl"), "exec", c.image, "/bin/true"},
		nil, []string{c.hpcctl, "exec", c.image, "/bin/true"}, c.n, "root hpcctl")
}

// compare times both commands n times, interleaved so that both see the same machine load.
func compare(label string, cred *syscall.Credential, hpcctl, baseline []string, n int) error {
	return compareAs(label, cred, hpcctl, cred, baseline, n, "by hand")
}

// compareAs is compare with the baseline run as credB and called what in the output.
func compareAs(label string, cred *syscall.Credential, hpcctl []string, credB *syscall.Credential, baseline []string, n int, what string) error {
	var a, b []time.Duration
	for i := 0; i < n+2; i++ {
		da, err := timeOnce(cred, hpcctl)
		if err != nil {
			return fmt.Errorf("%s: hpcctl: %w", label, err)
		}
		db, err := timeOnce(credB, baseline)
		if err != nil {
			return fmt.Errorf("%s: baseline: %w", label, err)
		}
		if i >= 2 { // the first runs warm the caches
			a, b = append(a, da), append(b, db)
		}
	}
	ma, mb := benchutil.Median(a), benchutil.Median(b)
	fmt.Printf("%-14s hpcctl exec %8s [%s %s]   %s %8s [%s %s]   ratio %.2f\n", label,
		ms(ma), ms(benchutil.Percentile(a, 10)), ms(benchutil.Percentile(a, 90)), what, ms(mb), ms(benchutil.Percentile(b, 10)), ms(benchutil.Percentile(b, 90)), float64(ma)/float64(mb))
	return nil
}

func timeOnce(cred *syscall.Credential, argv []string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	start := time.Now()
	err := cmd.Run()
	return time.Since(start), err
}

func busyboxImage(dir string) (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("needs busybox to make the image (or pass -image): %w", err)
	}
	tree, out := filepath.Join(dir, "tree"), filepath.Join(dir, "busybox.sif")
	if err := siftest.BusyboxTree(tree, bb); err != nil {
		return "", err
	}
	return out, siftest.Make(out, tree, &v1.ImageConfig{Env: []string{"PATH=/bin"}})
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
