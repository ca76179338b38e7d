// Package e2e runs the built hpcctl binaries for real: as root, as an unprivileged user, with the
// setuid starter, and inside a one-node Slurm cluster. Each test probes for the capability it
// needs and skips with the reason; CI provides them all and fails on any skip (make e2e).
package e2e
