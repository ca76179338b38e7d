package isolation

import (
	"slices"
	"testing"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// A batch job's variables pass under every profile; --no-job-env drops them where the profile
// cleans the environment.
func TestJobVariablesPassEveryProfile(t *testing.T) {
	h := plainUser()
	h.Env = append(h.Env, "SLURM_PROCID=1", "SLURM_JOB_ID=42", "PMIX_RANK=1", "OMPI_COMM_WORLD_SIZE=2",
		"https_proxy=http://proxy:3128", "NO_PROXY=localhost", "CUDA_VISIBLE_DEVICES=0", "OMP_NUM_THREADS=8", "MYVAR=x")
	pol := Policy{JobVariables: config.DefaultJobVariables}
	job := []string{"SLURM_PROCID=1", "SLURM_JOB_ID=42", "PMIX_RANK=1", "OMPI_COMM_WORLD_SIZE=2",
		"https_proxy=http://proxy:3128", "NO_PROXY=localhost", "CUDA_VISIBLE_DEVICES=0"}
	for _, name := range []string{ProfileDefault, ProfileContain, ProfileContainAll, ProfileIsolate} {
		for _, noJob := range []bool{false, true} {
			s, err := Build(Profiles()[name], pol, h, Options{NoJobEnv: noJob}, img, []string{"true"})
			if err != nil {
				t.Fatal(err)
			}
			clean := name == ProfileContainAll || name == ProfileIsolate
			for _, kv := range job {
				if has := slices.Contains(s.Env, kv); has != (!noJob || !clean) {
					t.Errorf("%s, --no-job-env %v: %s passed %v", name, noJob, kv, has)
				}
			}
			// Only the listed variables: a host variable that is not the job's stays out.
			if clean && (slices.Contains(s.Env, "OMP_NUM_THREADS=8") || slices.Contains(s.Env, "MYVAR=x")) {
				t.Errorf("%s: a host variable that is not a job variable passed: %q", name, s.Env)
			}
		}
	}
}

// An MPI rank keeps the host network and /dev/shm under the strict profiles, unless the user asks
// for --no-job-env or for the network namespace explicitly.
func TestMPIRankProfile(t *testing.T) {
	rank := plainUser()
	rank.Env = append(rank.Env, "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_RANK=0")
	tests := []struct {
		name    string
		h       Host
		o       Options
		net     bool
		shmKind spec.MountKind
	}{
		{"isolated rank", rank, Options{}, false, spec.KindBind},
		{"not a rank", plainUser(), Options{}, true, spec.KindTmpfs},
		{"rank, --no-job-env", rank, Options{NoJobEnv: true}, true, spec.KindTmpfs},
		{"rank, explicit --net --pid", rank, Options{Switches: Switches{Net: true, PID: true}}, true, spec.KindBind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Build(Profiles()[ProfileIsolate], Policy{}, tt.h, tt.o, img, []string{"true"})
			if err != nil {
				t.Fatal(err)
			}
			if s.Namespaces.Net != tt.net {
				t.Errorf("network namespace %v, want %v", s.Namespaces.Net, tt.net)
			}
			if k := kindAt(s, "/dev/shm"); k != tt.shmKind {
				t.Errorf("/dev/shm is %q, want %q", k, tt.shmKind)
			}
			if s.Namespaces.PID != tt.net || !s.Namespaces.IPC || !s.Namespaces.UTS {
				t.Errorf("namespaces %+v: an MPI rank shares the host's network and PIDs, and keeps the other walls", s.Namespaces)
			}
			if sh := ShapeOf(Effective(Profiles()[ProfileIsolate], tt.o, tt.h.Env), tt.h.UID, tt.h.GID); !sh.Equal(s.Shape()) {
				t.Errorf("prestart shape %+v differs from the Spec's %+v", sh, s.Shape())
			}
		})
	}
}

func TestJobVariablesMatch(t *testing.T) {
	j := JobVariables{"SLURM_*", "NO_PROXY"}
	for name, want := range map[string]bool{"SLURM_PROCID": true, "SLURM_": true, "NO_PROXY": true, "no_proxy": false, "XSLURM_A": false, "SLURMX": false} {
		if got := j.Match(name); got != want {
			t.Errorf("Match(%q) = %v, want %v", name, got, want)
		}
	}
}
