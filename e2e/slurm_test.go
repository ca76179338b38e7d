package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestSlurmJobAsUser runs hpcctl in a batch job submitted by the unprivileged user: the job runs
// as that user, in its working directory, and its exit status reaches the controller.
func TestSlurmJobAsUser(t *testing.T) {
	needSlurm(t)
	u := needUser(t)
	script := fmt.Sprintf("#!/bin/sh\nid -u\npwd\n%s version\nexit 3\n", bins.hpcctl)
	res := runInSlurm(t, u, script)
	if res.State != "FAILED" || res.ExitCode != 3 || res.Signal != 0 {
		t.Errorf("state %s exit %d:%d, want FAILED 3:0 (the script's exit 3); output:\n%s", res.State, res.ExitCode, res.Signal, res.Output)
	}
	lines := strings.Split(strings.TrimSpace(res.Output), "\n")
	if len(lines) != 3 {
		t.Fatalf("output has %d lines, want uid, cwd, version:\n%s", len(lines), res.Output)
	}
	if lines[0] != strconv.Itoa(u.UID) {
		t.Errorf("job ran as uid %s, want %d", lines[0], u.UID)
	}
	if !strings.HasPrefix(lines[1], bins.root) {
		t.Errorf("job ran in %s, want its --chdir under %s", lines[1], bins.root)
	}
	if want := "hpcctl " + testVersion + " ("; !strings.HasPrefix(lines[2], want) {
		t.Errorf("hpcctl version printed %q, want %q...", lines[2], want)
	}
}

// TestSlurmScancel cancels a running job as its owner and checks the batch script got SIGTERM
// before the kill: the signal hpcctl will have to pass on to the program in the container.
func TestSlurmScancel(t *testing.T) {
	needSlurm(t)
	u := needUser(t)
	const script = `#!/bin/bash
trap 'echo got-TERM; exit 143' TERM
echo started
# A background sleep and wait: bash runs a trap only between commands, and wait returns at once
# on a signal.
sleep 300 &
wait $!
echo not-cancelled
`
	job := submitJob(t, u, script)
	job.waitOutput(t, "started")
	job.cancel(t)
	res := job.wait(t)
	if res.State != "CANCELLED" {
		t.Errorf("state %s, want CANCELLED", res.State)
	}
	if !strings.Contains(res.Output, "got-TERM") || strings.Contains(res.Output, "not-cancelled") {
		t.Errorf("the batch script did not get SIGTERM before it was killed; output:\n%s", res.Output)
	}
}

// TestSlurmStepAsUser runs hpcctl as a job step (srun inside the batch script), the way a
// scientist will run `srun hpcctl exec ...`.
func TestSlurmStepAsUser(t *testing.T) {
	needSlurm(t)
	u := needUser(t)
	script := fmt.Sprintf("#!/bin/sh\nsrun --ntasks=1 %s version\n", bins.hpcctl)
	res := runInSlurm(t, u, script)
	if res.State != "COMPLETED" || res.ExitCode != 0 {
		t.Errorf("state %s exit %d:%d, want COMPLETED 0:0; output:\n%s", res.State, res.ExitCode, res.Signal, res.Output)
	}
	if want := "hpcctl " + testVersion + " ("; !strings.HasPrefix(res.Output, want) {
		t.Errorf("the step printed %q, want %q...", res.Output, want)
	}
}
