package isolation

import (
	"path"
	"strings"
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
// ranks and from its launcher come down, and nothing else changes. The host network stays
// (PMIx and Open MPI's runtime reach their server over TCP on the host's loopback, and ranks on
// other nodes over the host's interfaces), and /dev/shm is the host's (Open MPI's and MPICH's
// shared-memory transports put the segments ranks of a node share there). A single wall the
// user asks for explicitly (--net) still applies after this.
func (p Profile) ForMPI() Profile {
	p.Net = false
	p.HostShm = true
	return p
}
