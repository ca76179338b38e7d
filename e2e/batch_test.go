package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// handlerPy is a program with a SIGTERM handler that needs the image in its grace period: it
// imports a module not yet loaded and reads a file of the image, then says so in /data/result.
// Without a container it always ends with "clean exit"; in one, it did not when the FUSE server
// died of the same SIGTERM. It ignores a repeated SIGTERM, as a handler must when the scheduler
// signals every process of the job: the program then gets the signal directly and again through
// hpcctl (docs/batch.md), and a nested handler would find its imports half done.
const handlerPy = `import os, signal, sys, time
def on_term(sig, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import json, email.mime.text
    data = open(os.__file__).read()
    time.sleep(1)
    with open("/data/result", "a") as f:
        f.write("clean exit %d\n" % len(data))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open("/data/ready", "w").close()
while True:
    time.sleep(0.1)
`

// gracefulJob writes the handler into a fresh directory of u and returns it.
func gracefulDir(t *testing.T, u testUser) string {
	t.Helper()
	dir := workDir(t, u)
	writeFile(t, u, filepath.Join(dir, "handler.py"), handlerPy, 0o644)
	return dir
}

// checkCleanExit checks the program's handler ran to its end and the job left nothing running.
func checkCleanExit(t *testing.T, u testUser, job slurmJob, dir string) {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "result"))
	if !strings.Contains(string(b), "clean exit") {
		out, _ := os.ReadFile(job.Output)
		t.Errorf("the program's SIGTERM handler did not finish (result %q); job output:\n%s", b, out)
	}
	nothingLeftOf(t, u, job.ID)
}

// TestBatchGracefulStop: scancel and a time limit signal the job; the program's handler keeps the
// image until it is done, under both of Slurm's process tracking modes.
func TestBatchGracefulStop(t *testing.T) {
	u, img := batchSetup(t)
	for _, mode := range proctrackModes {
		inProctrack(t, mode, func(t *testing.T) {
			for _, profile := range []string{"default", "containall"} {
				t.Run("scancel/"+profile, func(t *testing.T) {
					dir := gracefulDir(t, u)
					script := fmt.Sprintf("#!/bin/sh\nsrun --ntasks=1 %s exec --profile %s -B %s:/data %s python3 /data/handler.py\n",
						bins.hpcctl, profile, dir, img.debian)
					job := submitWith(t, u, script)
					job.waitFile(t, filepath.Join(dir, "ready"))
					job.cancel(t)
					if res := job.wait(t); res.State != "CANCELLED" {
						t.Errorf("state %s, want CANCELLED", res.State)
					}
					checkCleanExit(t, u, job, dir)
				})
			}
			t.Run("time-limit", func(t *testing.T) {
				dir := gracefulDir(t, u)
				script := fmt.Sprintf("#!/bin/sh\nexec %s exec --containall -B %s:/data %s python3 /data/handler.py\n", bins.hpcctl, dir, img.debian)
				job := submitWith(t, u, script, "--time=1")
				job.waitFile(t, filepath.Join(dir, "ready"))
				if res := job.wait(t); res.State != "TIMEOUT" {
					t.Errorf("state %s, want TIMEOUT", res.State)
				}
				checkCleanExit(t, u, job, dir)
			})
		})
	}
}

// TestPBSJob runs a PBS job script (#PBS directives, $PBS_O_WORKDIR) through the Torque-style
// qsub of slurm-wlm-torque, then sends SIGTERM to every process of the job's session, as PBS
// does on qdel.
func TestPBSJob(t *testing.T) {
	u, img := batchSetup(t)
	testutil.NeedCommands(t, "qsub", "qdel")
	dir := gracefulDir(t, u)
	script := fmt.Sprintf(`#!/bin/sh
#PBS -N hpcctl-pbs
#PBS -l nodes=1:ppn=1
#PBS -l walltime=00:05:00
cd "${PBS_O_WORKDIR:-$SLURM_SUBMIT_DIR}"
exec %s exec --containall -B "$PWD":/data %s python3 /data/handler.py
`, bins.hpcctl, img.debian)
	writeFile(t, u, filepath.Join(dir, "job.pbs"), script, 0o644)
	out := filepath.Join(dir, "job.out")
	r := runCmd(t, userCmd(t, u, dir, "qsub", "-o", out, "-e", out, "job.pbs"))
	r.mustSucceed(t, "qsub")
	fields := strings.Fields(r.Stdout)
	if len(fields) == 0 {
		t.Fatalf("qsub printed no job id: %q", r.Stdout)
	}
	job := slurmJob{ID: strings.SplitN(fields[len(fields)-1], ".", 2)[0], User: u, Dir: dir, Output: out}
	t.Cleanup(func() { runCmd(t, userCmd(t, u, dir, "qdel", job.ID)) })
	job.waitFile(t, filepath.Join(dir, "ready"))
	if got := termSessions(t, u, job.ID); len(got) < 3 {
		t.Errorf("signalled %q: want hpcctl, its helpers and the program", got)
	}
	res := job.wait(t)
	if res.State != "COMPLETED" {
		t.Errorf("state %s exit %d:%d, want COMPLETED (the handler exits 0)", res.State, res.ExitCode, res.Signal)
	}
	checkCleanExit(t, u, job, dir)
}

// TestBatchJobVariables: the strict profiles keep the job's variables (each task sees its own
// SLURM_PROCID) and --no-job-env drops them.
func TestBatchJobVariables(t *testing.T) {
	u, img := batchSetup(t)
	script := fmt.Sprintf(`#!/bin/sh
srun -n 2 %[1]s exec --containall %[2]s sh -c 'echo "task ${SLURM_PROCID:-none} of ${SLURM_NTASKS:-none}"' | sort
srun -n 1 %[1]s exec --isolate --no-job-env %[2]s sh -c 'echo "dropped ${SLURM_PROCID:-none}"'
`, bins.hpcctl, img.debian)
	res := runInSlurmWith(t, u, script, "--ntasks=2")
	want := "task 0 of 2\ntask 1 of 2\ndropped none\n"
	if res.State != "COMPLETED" || res.Output != want {
		t.Errorf("state %s; output:\n%s\nwant:\n%s", res.State, res.Output, want)
	}
}

// TestBatchKilledBySignal: a program killed by SIGKILL shows as killed by signal 9 to Slurm, not
// as an exit code of 137, as it would without a container.
func TestBatchKilledBySignal(t *testing.T) {
	u, img := batchSetup(t)
	for _, profile := range []string{"default", "containall"} {
		t.Run(profile, func(t *testing.T) {
			script := fmt.Sprintf("#!/bin/sh\nsrun %[1]s exec --profile %[2]s %[3]s sh -c 'kill -9 $$'\necho \"srun status $?\"\nexec %[1]s exec --profile %[2]s %[3]s sh -c 'kill -9 $$'\n",
				bins.hpcctl, profile, img.debian)
			job := submitWith(t, u, script)
			res := job.wait(t)
			if res.State != "FAILED" || res.ExitCode != 0 || res.Signal != 9 {
				t.Errorf("state %s exit %d:%d, want FAILED 0:9; output:\n%s", res.State, res.ExitCode, res.Signal, res.Output)
			}
			// sacct reads the job completion records (-c: there is no slurmdbd here), which only
			// root may open.
			out := run(t, "sacct", "-c", "-n", "-P", "-j", job.ID, "-o", "State,ExitCode").mustSucceed(t, "sacct")
			if got := strings.TrimSpace(out.Stdout); got != "FAILED|0:9" {
				t.Errorf("sacct says %q, want FAILED|0:9 (killed by signal 9)", got)
			}
			if !strings.Contains(res.Output, "task 0: Killed") {
				t.Errorf("srun did not report the task as killed; output:\n%s", res.Output)
			}
		})
	}
}

// mpiProgram sums the ranks' numbers with mpi4py; rank 0 prints the size and the sum.
const mpiProgram = `from mpi4py import MPI
c = MPI.COMM_WORLD
s = c.allreduce(c.Get_rank() + 1)
if c.Get_rank() == 0:
    print("size %d sum %d" % (c.Get_size(), s))
`

var mpiProfiles = []string{"default", "containall", "isolate"}

// checkMPIOutputs reads out.N.PROFILE and err.N.PROFILE in dir for each size and profile.
func checkMPIOutputs(t *testing.T, dir string, sizes []int) {
	t.Helper()
	for _, n := range sizes {
		for _, p := range mpiProfiles {
			out, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out.%d.%s", n, p)))
			errText, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("err.%d.%s", n, p)))
			if want := fmt.Sprintf("size %d sum %d\n", n, n*(n+1)/2); string(out) != want {
				t.Errorf("%d ranks, %s: printed %q, want %q; stderr:\n%s", n, p, out, want, errText)
			} else if len(errText) > 0 {
				t.Errorf("%d ranks, %s: stderr is not empty:\n%s", n, p, errText)
			}
		}
	}
}

// TestMPIRun: host mpirun starts ranks that each run hpcctl exec (the hybrid model); under every
// profile they find each other, share memory and print nothing on stderr.
func TestMPIRun(t *testing.T) {
	u, img := batchSetup(t)
	dir := workDir(t, u)
	writeFile(t, u, filepath.Join(dir, "allreduce.py"), mpiProgram, 0o644)
	for _, n := range []int{2, 4} {
		for _, p := range mpiProfiles {
			cmd := fmt.Sprintf("mpirun --oversubscribe -np %d %s exec --profile %s -B %s:/data %s python3 /data/allreduce.py >out.%d.%s 2>err.%d.%s",
				n, bins.hpcctl, p, dir, img.mpi, n, p, n, p)
			runCmd(t, userCmd(t, u, dir, "sh", "-c", cmd))
		}
	}
	checkMPIOutputs(t, dir, []int{2, 4})
}

// TestMPISrunPMIx: srun --mpi=pmix starts the ranks, under every profile.
func TestMPISrunPMIx(t *testing.T) {
	u, img := batchSetup(t)
	dir := workDir(t, u)
	writeFile(t, u, filepath.Join(dir, "allreduce.py"), mpiProgram, 0o644)
	script := fmt.Sprintf(`#!/bin/sh
cd %[1]s
for n in 2 4; do
	for p in %[4]s; do
		srun -n $n --overcommit --mpi=pmix %[2]s exec --profile $p -B %[1]s:/data %[3]s python3 /data/allreduce.py >out.$n.$p 2>err.$n.$p
	done
done
`, dir, bins.hpcctl, img.mpi, strings.Join(mpiProfiles, " "))
	res := runInSlurmWith(t, u, script, "--ntasks=4", "--overcommit")
	if res.State != "COMPLETED" {
		t.Errorf("state %s exit %d:%d; output:\n%s", res.State, res.ExitCode, res.Signal, res.Output)
	}
	checkMPIOutputs(t, dir, []int{2, 4})
}

// runInSlurmWith submits script with more sbatch options and waits for the job to end.
func runInSlurmWith(t testing.TB, u testUser, script string, opts ...string) jobResult {
	t.Helper()
	return submitWith(t, u, script, opts...).wait(t)
}
