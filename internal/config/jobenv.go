package config

import (
	"path"
	"strings"
)

// DefaultJobVariables are the host variables that pass into the container under every profile
// ([environment] job_variables replaces the list): what ties a program to its batch
// job and to the other ranks of its MPI job, and the proxies Apptainer also keeps. Without them
// --containall and --isolate made every MPI rank rank 0 of 1 and hid the task ID from the script.
var DefaultJobVariables = []string{
	// Slurm (SLURM_*; SLURMD_NODENAME), PBS and Torque, LSF, Flux.
	"SLURM_*", "SLURMD_*", "PBS_*", "LSB_*", "LSF_*", "FLUX_*",
	// Process management interfaces: PMI-1/PMI-2 (MPICH, Intel MPI, Slurm's pmi2) and PMIx.
	"PMI_*", "PMIX_*",
	// MPI launchers' variables: Open MPI and its runtime, MPICH/Hydra, Intel MPI, MVAPICH.
	"OMPI_*", "ORTE_*", "PRTE_*", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "HYDRA_*",
	"I_MPI_*", "MPIR_*", "MV2_*",
	// The devices the scheduler gave the job.
	"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL",
	// Proxies, in both cases, as Apptainer keeps them under --cleanenv.
	"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "ALL_PROXY", "NO_PROXY",
	"http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy",
}

// validJobPattern reports whether p is a variable name or a shell-style pattern of names.
func validJobPattern(p string) bool {
	if p == "" || strings.ContainsAny(p, "=/ \t") {
		return false
	}
	_, err := path.Match(p, "")
	return err == nil
}
