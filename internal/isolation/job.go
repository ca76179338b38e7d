package isolation

import (
	"path"
	"slices"
	"strings"

	"github.com/hpcctl/hpcctl/internal/spec"
)

// JobVariables matches variable names against patterns: a name, or a prefix ending in "*"
// (shell-style patterns, as path.Match takes them).
type JobVariables []string

// Match reports whether name is a job variable.
func (j JobVariables) Match(name string) bool {
	for _, p := range j {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// mpiRankVariables are set by MPI launchers (and Slurm's MPI plugins) in every rank they start,
// and only there: Open MPI's mpirun, PMIx (srun --mpi=pmix, prterun), PMI-1/PMI-2 (MPICH's Hydra,
// Intel MPI, srun --mpi=pmi2).
var mpiRankVariables = []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "PMI_FD", "MPI_LOCALRANKID"}

// IsMPIRank reports whether env (the host environment) is that of an MPI rank started by a
// launcher: its ranks must reach each other and the launcher.
func IsMPIRank(env []string) bool {
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		for _, v := range mpiRankVariables {
			if name == v {
				return true
			}
		}
	}
	return false
}

// ForMPI is the profile an MPI rank runs with: the walls that would cut it off from the other
// ranks and from its launcher come down, and nothing else changes.
//   - The host network stays: PMIx and Open MPI's runtime reach their server over TCP on the
//     host's loopback, and ranks on other nodes over the host's interfaces.
//   - The host PID namespace stays: ranks tell each other their PIDs (Open MPI's shared-memory
//     segments record their creator's PID, and a rank that finds its own PID there takes the
//     segment for its own mapping). In PID namespaces of their own every rank's program is PID 2,
//     and four ranks of mpi4py crashed in Open MPI's vader transport.
//   - /dev/shm is the host's: Open MPI's and MPICH's shared-memory transports put the segments
//     the ranks of a node share there.
//
// A single wall the user asks for explicitly (--net, --pid) still applies after this.
func (p Profile) ForMPI() Profile {
	p.Net = false
	p.PID = false
	p.HostShm = true
	return p
}

// JobDirCandidates are the directories an MPI rank's environment names as its launcher's
// session: PMIx keeps its shared-memory store and lock files there (PMIX_SERVER_TMPDIR, under
// /tmp for mpirun and under slurmd's spool for srun --mpi=pmix), and a rank that cannot open them
// prints "PMIX ERROR ... gds_ds12_lock" and falls back to slower messages.
func JobDirCandidates(env []string) []string {
	var dirs []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if (name == "PMIX_SERVER_TMPDIR" || name == "OMPI_MCA_orte_jobfam_session_dir") && path.IsAbs(value) && !slices.Contains(dirs, path.Clean(value)) {
			dirs = append(dirs, path.Clean(value))
		}
	}
	return dirs
}

func jobDirMounts(dirs []string) []spec.Mount {
	var ms []spec.Mount
	for _, d := range dirs {
		ms = append(ms, spec.Mount{Kind: spec.KindBind, Source: d, Destination: d, Recursive: true, Optional: true})
	}
	return ms
}

// singleCopy is Open MPI's setting for its shared-memory transport's single-copy mechanism.
const singleCopy = "OMPI_MCA_btl_vader_single_copy_mechanism"

// mpiSettings are the variables hpcctl sets for an MPI rank. Open MPI's single-copy transfers
// (CMA, process_vm_readv) need the ranks in one user namespace, or in the init user namespace
// and one PID namespace: a rank in its own user namespace is refused (the kernel asks for
// CAP_SYS_PTRACE in the peer's namespace) and Open MPI prints a warning at every start; in its own
// PID namespace a rank's PID means another process to its peers. Copying through the shared
// memory segment is what Open MPI falls back to anyway; saying so up front removes the warning.
// A value the host or the image sets wins.
func mpiSettings(ns spec.Namespaces, hostEnv, imageEnv []string) []string {
	if !ns.User && !ns.PID {
		return nil
	}
	for _, env := range [][]string{hostEnv, imageEnv} {
		for _, kv := range env {
			if strings.HasPrefix(kv, singleCopy+"=") {
				return nil
			}
		}
	}
	return []string{singleCopy + "=none"}
}
