// Command recipebench measures `hpcctl build` of a definition file (the Debian fixture as base,
// a %post that writes a few thousand files, %files, %environment, %runscript) against
// `apptainer build` of the same recipe in the same run, where Apptainer is installed. Without
// Apptainer it reports hpcctl's figure alone and says so: a ratio needs both in one run.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

const recipe = `Bootstrap: oci-archive
From: %s

%%files
    %s /opt/bench/input.txt

%%post
    python3 -c 'import os
os.makedirs("/opt/bench/data", exist_ok=True)
for i in range(3000):
    open("/opt/bench/data/f%%d" %% i, "w").write(str(i) * (i %% 200))'

%%environment
    export BENCH=1

%%runscript
    ls /opt/bench/data | wc -l
`

func main() {
	archive := flag.String("archive", os.Getenv("HPCCTL_TEST_DEBIAN_OCI_ARCHIVE"), "oci-archive of the base image")
	hpcctl := flag.String("hpcctl", "bin/hpcctl", "hpcctl binary")
	runs := flag.Int("runs", 3, "repetitions (the median is reported)")
	flag.Parse()
	if *archive == "" {
		fmt.Fprintln(os.Stderr, "recipebench: give -archive FILE or set HPCCTL_TEST_DEBIAN_OCI_ARCHIVE (make fixtures)")
		os.Exit(2)
	}
	work, err := os.MkdirTemp("", "recipebench-")
	check(err)
	defer os.RemoveAll(work)
	input := filepath.Join(work, "input.txt")
	check(os.WriteFile(input, []byte("bench input\n"), 0o644))
	def := filepath.Join(work, "bench.def")
	check(os.WriteFile(def, []byte(fmt.Sprintf(recipe, *archive, input)), 0o644))
	apptainer, aerr := exec.LookPath("apptainer")
	var ours, theirs []float64
	for i := 0; i < *runs; i++ {
		ours = append(ours, timed(exec.Command(*hpcctl, "build", "-q", "--force", filepath.Join(work, "ours.sif"), def),
			"HPCCTL_CACHEDIR="+filepath.Join(work, "cache")))
		if aerr == nil {
			theirs = append(theirs, timed(exec.Command(apptainer, "build", "--force", filepath.Join(work, "theirs.sif"), def)))
		}
	}
	fmt.Printf("recipe build (%s base, %%post writes 3000 files), median of %d:\n", filepath.Base(*archive), *runs)
	fmt.Printf("  hpcctl build     %6.2f s  %s\n", median(ours), sizeOf(filepath.Join(work, "ours.sif")))
	if aerr != nil {
		fmt.Println("  apptainer build  not installed here: no ratio (install Apptainer to compare; target <= 0.5)")
		return
	}
	fmt.Printf("  apptainer build  %6.2f s  %s\n", median(theirs), sizeOf(filepath.Join(work, "theirs.sif")))
	fmt.Printf("  ratio            %6.3f (target <= 0.5)\n", median(ours)/median(theirs))
}

func timed(cmd *exec.Cmd, env ...string) float64 {
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "recipebench: %s: %v\n%s", cmd, err, out)
		os.Exit(1)
	}
	return time.Since(start).Seconds()
}

func median(s []float64) float64 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s[len(s)/2]
}

func sizeOf(p string) string {
	st, err := os.Stat(p)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%.1f MB", float64(st.Size())/1e6)
}

func check(err error) {
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "recipebench:", err)
		os.Exit(1)
	}
}
