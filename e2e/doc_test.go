// Package e2e runs the built hpcctl binaries for real: as root, as an unprivileged user, with the
// setuid starter, and inside a one-node Slurm cluster. Each test probes for the capability it
// needs and skips with the reason; CI provides them all and fails on any skip (make e2e).
//
// TestMain builds every command under cmd/ once (version "e2e-test") into a world-readable
// temporary directory: bins.hpcctl, and bins.suid, a make install-suid
// prefix whose hpcctl uses the setuid-root starter bins.starter.
// Helpers:
//
//	run(t, args...)                     as the test process (root in CI)
//	runAsUser(t, u, args...)            as the plain user, via setpriv, login-like environment
//	runAsUserEnv(t, u, env, args...)    the same with extra NAME=value variables
//	workDir(t, u)                       a fresh directory the user owns, removed after the test
//	runInSlurm(t, u, script)            sbatch as the user, wait, read state, exit code, output
//	submitJob / job.waitOutput / job.cancel / job.wait   for jobs a test signals
//	submitWith, inProctrack, jobProcesses, termSessions   batch jobs in both proctrack modes (batch_helpers_test.go)
//	needRoot, needUser, needUserNS, needFUSE, needLoop, needSlurm, needRegistry   the probes
//
// Fixtures come from scripts/fixtures.sh through HPCCTL_TEST_* variables (testutil.NeedEnvDir).
package e2e
