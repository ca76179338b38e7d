package e2e

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slurmPoll is how often the harness asks squeue about a job: `sbatch --wait` polls after 2 s,
// 8 s, then 32 s, which would make every Slurm test slow.
const slurmPoll = 200 * time.Millisecond

// slurmTimeout bounds one job's life in a test.
const slurmTimeout = 2 * time.Minute

// slurmJob is a batch job a test submitted as the test user.
type slurmJob struct {
	ID     string
	User   testUser
	Dir    string // the job's working directory, owned by User
	Output string // the path of its combined stdout and stderr
}

// jobResult is what the controller and the output file say about a finished job.
type jobResult struct {
	State    string // JobState: COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
	ExitCode int    // the batch script's exit status
	Signal   int    // the signal that ended it, or 0
	Output   string
}

// runInSlurm submits script as u, waits for the job to end and returns what it left.
func runInSlurm(t testing.TB, u testUser, script string) jobResult {
	t.Helper()
	job := submitJob(t, u, script)
	return job.wait(t)
}

// submitJob writes script into a fresh work directory and submits it with sbatch as u.
func submitJob(t testing.TB, u testUser, script string) slurmJob {
	t.Helper()
	return submitWith(t, u, script)
}

// wait polls squeue until the job has left the queue, then reads its state and output.
func (j slurmJob) wait(t testing.TB) jobResult {
	t.Helper()
	deadline := time.Now().Add(slurmTimeout)
	for j.queued(t) {
		if time.Now().After(deadline) {
			t.Fatalf("job %s still queued after %v:\n%s", j.ID, slurmTimeout, j.describe())
		}
		time.Sleep(slurmPoll)
	}
	return j.result(t)
}

// queued tells whether squeue still lists the job (pending, running or completing).
func (j slurmJob) queued(t testing.TB) bool {
	t.Helper()
	out, err := exec.Command("squeue", "-h", "-j", j.ID, "-o", "%T").CombinedOutput()
	text := strings.TrimSpace(string(out))
	switch {
	case err == nil:
		return text != ""
	case strings.Contains(text, "Invalid job id"):
		return false // purged already
	default:
		// The controller can be briefly busy; the deadline in wait bounds the retries.
		t.Logf("squeue -j %s: %v: %s", j.ID, err, text)
		return true
	}
}

// result reads JobState and ExitCode from scontrol (there is no slurmdbd, so no sacct) and the
// output file.
func (j slurmJob) result(t testing.TB) jobResult {
	t.Helper()
	fields := j.fields(t)
	res := jobResult{State: fields["JobState"]}
	code, sig, ok := strings.Cut(fields["ExitCode"], ":")
	if !ok {
		t.Fatalf("job %s: no ExitCode=status:signal in scontrol's answer: %v", j.ID, fields)
	}
	res.ExitCode, _ = strconv.Atoi(code)
	res.Signal, _ = strconv.Atoi(sig)
	out, err := os.ReadFile(j.Output)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	res.Output = string(out)
	return res
}

// fields parses `scontrol -o show job`: one line of Key=Value words.
func (j slurmJob) fields(t testing.TB) map[string]string {
	t.Helper()
	out, err := exec.Command("scontrol", "-o", "show", "job", j.ID).CombinedOutput()
	if err != nil {
		t.Fatalf("scontrol show job %s: %v: %s", j.ID, err, out)
	}
	fields := map[string]string{}
	for _, word := range strings.Fields(string(out)) {
		if k, v, ok := strings.Cut(word, "="); ok {
			fields[k] = v
		}
	}
	return fields
}

func (j slurmJob) describe() string {
	out, _ := exec.Command("scontrol", "show", "job", j.ID).CombinedOutput()
	return string(out)
}

// waitOutput polls the job's output file until it contains want, and fails the test if the job
// ends or the time runs out first.
func (j slurmJob) waitOutput(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(slurmTimeout)
	for {
		out, _ := os.ReadFile(j.Output)
		if strings.Contains(string(out), want) {
			return
		}
		if !j.queued(t) {
			t.Fatalf("job %s ended before printing %q; output:\n%s", j.ID, want, out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not print %q within %v; output:\n%s", j.ID, want, slurmTimeout, out)
		}
		time.Sleep(slurmPoll)
	}
}

// cancel runs scancel as the job's owner, as a user would.
func (j slurmJob) cancel(t testing.TB) {
	t.Helper()
	runCmd(t, userCmd(t, j.User, j.Dir, "scancel", j.ID)).mustSucceed(t, "scancel "+j.ID)
}
