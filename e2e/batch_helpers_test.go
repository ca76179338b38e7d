package e2e

// Helpers of the batch-job tests (batch_test.go): the images they run, Slurm's process tracking
// mode, and the processes a job left behind.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// batchImages are the images the batch tests run, readable by the test user and Slurm's jobs.
type batchImages struct {
	debian string // Debian + python3
	mpi    string // Debian + python3-mpi4py and the host's Open MPI (the hybrid model)
}

var (
	mpiOnce sync.Once
	mpiSIF  string
	mpiErr  error
)

// batchSetup returns the test user, able to run containers, and the images, in a Slurm cluster.
func batchSetup(t *testing.T) (testUser, batchImages) {
	t.Helper()
	needSlurm(t)
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	e := ltSetup(t)
	deb, _ := ltDebian(t, e)
	return u, batchImages{debian: deb, mpi: mpiImage(t)}
}

// mpiImage builds the MPI fixture tree into a SIF with hpcctl, once per test binary.
func mpiImage(t *testing.T) string {
	t.Helper()
	tree := testutil.NeedEnvDir(t, "HPCCTL_TEST_MPI_ROOTFS")
	testutil.NeedCommands(t, "mpirun", "srun")
	mpiOnce.Do(func() {
		mpiSIF = filepath.Join(bins.root, "mpi.sif")
		out, err := exec.Command(bins.hpcctl, "build", "-q", mpiSIF, tree).CombinedOutput()
		if err != nil {
			mpiErr = fmt.Errorf("hpcctl build %s: %v: %s", tree, err, out)
			return
		}
		mpiErr = os.Chmod(mpiSIF, 0o644)
	})
	if mpiErr != nil {
		t.Fatal(mpiErr)
	}
	return mpiSIF
}

// proctrackModes are Slurm's two ways of finding a job's processes: with cgroup, scancel and time
// limits signal only a step's top process; with linuxproc (like PBS on qdel), every process.
var proctrackModes = []string{"cgroup", "linuxproc"}

// inProctrack runs fn with Slurm restarted in the given process tracking mode, and puts the
// mode the services started with back afterwards.
func inProctrack(t *testing.T, mode string, fn func(t *testing.T)) {
	t.Helper()
	t.Run(mode, func(t *testing.T) {
		before := os.Getenv("HPCCTL_TEST_SLURM_PROCTRACK")
		setProctrack(t, mode)
		if before != "" && before != mode {
			t.Cleanup(func() { setProctrack(t, before) })
		}
		fn(t)
	})
}

func setProctrack(t *testing.T, mode string) {
	t.Helper()
	if os.Getenv("HPCCTL_TEST_SLURM_PROCTRACK") == mode {
		return
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(root, "scripts", "services.sh"), "slurm", mode).CombinedOutput()
	if err != nil {
		t.Fatalf("restart Slurm with proctrack/%s: %v\n%s", mode, err, out)
	}
	t.Setenv("HPCCTL_TEST_SLURM_PROCTRACK", mode)
}

// submitWith writes script into a fresh work directory and submits it with sbatch as u, with
// more sbatch options (later ones win over the defaults here).
func submitWith(t testing.TB, u testUser, script string, opts ...string) slurmJob {
	t.Helper()
	dir := workDir(t, u)
	path := filepath.Join(dir, "job.sh")
	writeFile(t, u, path, script, 0o755)
	job := slurmJob{User: u, Dir: dir, Output: filepath.Join(dir, "job.out")}
	args := append([]string{"sbatch", "--parsable", "--job-name=" + sanitize(t.Name()),
		"--output=" + job.Output, "--chdir=" + dir, "--time=5", "--nodes=1", "--ntasks=1"}, opts...)
	r := runCmd(t, userCmd(t, u, dir, append(args, path)...))
	r.mustSucceed(t, "sbatch")
	// --parsable prints "id" or "id;cluster".
	job.ID = strings.TrimSpace(strings.SplitN(r.Stdout, ";", 2)[0])
	if _, err := strconv.Atoi(job.ID); err != nil {
		t.Fatalf("sbatch --parsable printed %q, not a job id", r.Stdout)
	}
	t.Cleanup(func() { exec.Command("scancel", job.ID).Run() }) //nolint:errcheck // best effort: the job may have ended
	return job
}

// waitFile polls until path exists, failing the test if the job leaves the queue first.
func (j slurmJob) waitFile(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(slurmTimeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if !j.queued(t) {
			out, _ := os.ReadFile(j.Output)
			t.Fatalf("job %s ended before %s appeared; output:\n%s", j.ID, path, out)
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(j.Output)
			t.Fatalf("%s did not appear within %v; output:\n%s", path, slurmTimeout, out)
		}
		time.Sleep(slurmPoll)
	}
}

// jobProcesses lists the live processes of the user that belong to the job (SLURM_JOB_ID in
// their environment), "pid comm" each.
func jobProcesses(t testing.TB, u testUser, jobID string) []string {
	t.Helper()
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		st, err := os.ReadFile(filepath.Join(d, "status"))
		if err != nil || !bytes.Contains(st, []byte(fmt.Sprintf("\nUid:\t%d\t", u.UID))) {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || !bytes.Contains(append([]byte{0}, env...), []byte("\x00SLURM_JOB_ID="+jobID+"\x00")) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(d, "stat")); err == nil && bytes.Contains(stat, []byte(") Z ")) {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(d, "comm"))
		found = append(found, filepath.Base(d)+" "+strings.TrimSpace(string(comm)))
	}
	return found
}

// nothingLeftOf checks that no process of the job (FUSE server, setup stage, program) outlived
// it: by the time squeue no longer lists a job, Slurm has ended it.
func nothingLeftOf(t testing.TB, u testUser, jobID string) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if left = jobProcesses(t, u, jobID); len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("job %s left processes behind: %q", jobID, left)
	}
}

// termSessions sends SIGTERM to every process in the sessions of the job's processes, as PBS
// does on qdel and at the walltime, and as Slurm does with proctrack/linuxproc.
func termSessions(t testing.TB, u testUser, jobID string) []string {
	t.Helper()
	sessions := map[string]bool{}
	for _, p := range jobProcesses(t, u, jobID) {
		pid, _, _ := strings.Cut(p, " ")
		if sid := sessionOf(pid); sid != "" {
			sessions[sid] = true
		}
	}
	var signalled []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid := filepath.Base(d)
		if sessions[sessionOf(pid)] {
			n, _ := strconv.Atoi(pid)
			if exec.Command("kill", "-TERM", strconv.Itoa(n)).Run() == nil {
				comm, _ := os.ReadFile(filepath.Join(d, "comm"))
				signalled = append(signalled, pid+" "+strings.TrimSpace(string(comm)))
			}
		}
	}
	return signalled
}

// sessionOf reads a process's session ID from /proc/PID/stat (field 6), "" if it is gone.
func sessionOf(pid string) string {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces: fields count from its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 {
		return ""
	}
	return f[3]
}
