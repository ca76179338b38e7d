// Command mpibench measures MPI point-to-point bandwidth between two ranks on one node, in
// containers (host mpirun starting `hpcctl exec IMAGE python3 pingpong.py`, the hybrid model) and
// on the host (the same program with the host's python3-mpi4py), alternating the two in the same
// run, and prints the medians and their ratio. It runs as root and, with -user, as a plain user:
// a plain user's ranks each have a user namespace of their own, so Open MPI copies through shared
// memory instead of its single-copy (CMA) transfers.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/hpcctl/hpcctl/tools/internal/benchutil"
)

// pingpong sends a message back and forth between ranks 0 and 1 and prints the bandwidth in MB/s
// (bytes moved both ways over the time taken), after a warm-up.
const pingpong = `import sys, time
from mpi4py import MPI
c = MPI.COMM_WORLD
r = c.Get_rank()
size, iters = int(sys.argv[1]), int(sys.argv[2])
buf = bytearray(size)
def run(n):
    for _ in range(n):
        if r == 0:
            c.Send(buf, 1); c.Recv(buf, 1)
        else:
            c.Recv(buf, 0); c.Send(buf, 0)
run(20)
c.Barrier()
t = time.perf_counter()
run(iters)
t = time.perf_counter() - t
if r == 0:
    print("%.1f" % (2 * iters * size / t / 1e6))
`

type config struct {
	hpcctl, image, user, profiles string
	n, size, iters                int
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mpibench:", err)
		os.Exit(1)
	}
}

func run() error {
	var c config
	flag.StringVar(&c.hpcctl, "hpcctl", "bin/hpcctl", "hpcctl binary")
	flag.StringVar(&c.image, "image", "", "SIF image with python3-mpi4py and the host's Open MPI (default: built from $HPCCTL_TEST_MPI_ROOTFS)")
	flag.StringVar(&c.user, "user", "hpcuser", "plain user for the unprivileged runs (\"\" to skip them)")
	flag.StringVar(&c.profiles, "profiles", "default,containall,isolate", "profiles to measure, comma-separated")
	flag.IntVar(&c.n, "n", 5, "runs of each command")
	flag.IntVar(&c.size, "size", 1<<20, "message size in bytes")
	flag.IntVar(&c.iters, "iters", 500, "round trips per run")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("run as root (it measures root and, through -user, a plain user)")
	}
	dir, err := os.MkdirTemp("", "mpibench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err = setup(&c, dir); err != nil {
		return err
	}
	fmt.Printf("mpi4py ping-pong, 2 ranks on one node, %d-byte messages, %d round trips, %d runs each, median MB/s [min max]\n", c.size, c.iters, c.n)
	if err = measureAll(c, dir, nil, "root"); err != nil {
		return err
	}
	if c.user == "" {
		return nil
	}
	cred, err := benchutil.Credential(c.user)
	if err != nil {
		return err
	}
	return measureAll(c, dir, cred, "user "+c.user)
}

// setup writes the program where every rank can read it and builds the image if none is given.
func setup(c *config, dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "pingpong.py"), []byte(pingpong), 0o644); err != nil {
		return err
	}
	var err error
	if c.hpcctl, err = filepath.Abs(c.hpcctl); err != nil {
		return err
	}
	if c.image != "" {
		return nil
	}
	tree := os.Getenv("HPCCTL_TEST_MPI_ROOTFS")
	if tree == "" {
		return errors.New("pass -image, or set HPCCTL_TEST_MPI_ROOTFS (eval \"$(scripts/fixtures.sh env)\")")
	}
	c.image = filepath.Join(dir, "mpi.sif")
	if out, err := exec.Command(c.hpcctl, "build", "-q", c.image, tree).CombinedOutput(); err != nil {
		return fmt.Errorf("hpcctl build: %v: %s", err, out)
	}
	return os.Chmod(c.image, 0o644)
}

// measureAll compares each profile's containers against the host, as one user.
func measureAll(c config, dir string, cred *syscall.Credential, who string) error {
	mpirun := []string{"mpirun", "--oversubscribe", "-np", "2"}
	if cred == nil {
		mpirun = append(mpirun, "--allow-run-as-root")
	}
	args := []string{"/data/pingpong.py", strconv.Itoa(c.size), strconv.Itoa(c.iters)}
	// The system python3, where python3-mpi4py is: a python3 earlier on PATH (pyenv) lacks it.
	host := append(append(slices.Clone(mpirun), "/usr/bin/python3", filepath.Join(dir, "pingpong.py")), args[1:]...)
	for _, p := range strings.Split(c.profiles, ",") {
		ctr := append(slices.Clone(mpirun), c.hpcctl, "exec", "--profile", p, "-B", dir+":/data", c.image, "python3")
		ctr = append(ctr, args...)
		var a, b []float64
		for i := 0; i < c.n; i++ {
			x, err := bandwidth(cred, ctr)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", who, p, err)
			}
			y, err := bandwidth(cred, host)
			if err != nil {
				return fmt.Errorf("%s, host: %w", who, err)
			}
			a, b = append(a, x), append(b, y)
		}
		ma, mb := benchutil.Median(a), benchutil.Median(b)
		fmt.Printf("%-13s %-11s container %7.0f [%.0f %.0f]   host %7.0f [%.0f %.0f]   ratio %.2f\n",
			who, p, ma, slices.Min(a), slices.Max(a), mb, slices.Min(b), slices.Max(b), ma/mb)
	}
	return nil
}

func bandwidth(cred *syscall.Credential, argv []string) (float64, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, ee.Stderr)
		}
		return 0, err
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0, fmt.Errorf("%s printed %q, not a bandwidth", strings.Join(argv, " "), out)
	}
	return v, nil
}
