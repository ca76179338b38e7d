// Command buildbench measures `hpcctl build` from an oci-archive against the classic pipeline on
// the same archive in the same run: unpack the archive, `umoci raw unpack` the image to disk, then
// `mksquashfs -comp gzip`. Ratios, not absolute times, are what compare across noisy machines.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

type result struct {
	name    string
	seconds []float64
	size    int64
}

func (r result) median() float64 {
	s := slices.Clone(r.seconds)
	slices.Sort(s)
	return s[len(s)/2]
}

func main() {
	archive := flag.String("archive", os.Getenv("HPCCTL_TEST_DEBIAN_OCI_ARCHIVE"), "oci-archive of the image to build")
	hpcctl := flag.String("hpcctl", "bin/hpcctl", "hpcctl binary")
	runs := flag.Int("runs", 3, "repetitions (the median is reported)")
	flag.Parse()
	if *archive == "" {
		fmt.Fprintln(os.Stderr, "buildbench: give -archive FILE or set HPCCTL_TEST_DEBIAN_OCI_ARCHIVE (make fixtures)")
		os.Exit(2)
	}
	work, err := os.MkdirTemp("", "buildbench-")
	check(err)
	defer os.RemoveAll(work)
	ours := result{name: "hpcctl build (zstd 3, cold cache)"}
	classic := result{name: "tar + umoci raw unpack + mksquashfs -comp gzip"}
	for i := 0; i < *runs; i++ {
		ours.seconds = append(ours.seconds, timeOurs(*hpcctl, *archive, work, &ours.size))
		classic.seconds = append(classic.seconds, timeClassic(*archive, work, &classic.size))
	}
	report(*archive, ours, classic)
}

func timeOurs(hpcctl, archive, work string, size *int64) float64 {
	cache := filepath.Join(work, "cache")
	out := filepath.Join(work, "ours.sif")
	check(os.RemoveAll(cache))
	start := time.Now()
	run(exec.Command(hpcctl, "build", "-q", "--force", out, "oci-archive:"+archive), "HPCCTL_CACHEDIR="+cache)
	secs := time.Since(start).Seconds()
	*size = fileSize(out)
	return secs
}

func timeClassic(archive, work string, size *int64) float64 {
	layout := filepath.Join(work, "layout")
	rootfs := filepath.Join(work, "rootfs")
	out := filepath.Join(work, "classic.sqfs")
	for _, p := range []string{layout, rootfs, out} {
		check(os.RemoveAll(p))
	}
	check(os.MkdirAll(layout, 0o755))
	start := time.Now()
	run(exec.Command("tar", "-xf", archive, "-C", layout))
	run(exec.Command("umoci", "raw", "unpack", "--image", layout+":"+tagOf(layout), rootfs))
	run(exec.Command("mksquashfs", rootfs, out, "-comp", "gzip", "-noappend", "-no-progress", "-quiet"))
	secs := time.Since(start).Seconds()
	*size = fileSize(out)
	return secs
}

// tagOf returns the first tag of the layout's index (umoci needs one).
func tagOf(layout string) string {
	out, err := exec.Command("umoci", "ls", "--layout", layout).Output()
	check(err)
	for i, c := range out {
		if c == '\n' {
			return string(out[:i])
		}
	}
	return string(out)
}

func report(archive string, ours, classic result) {
	fmt.Printf("build of %s (%d runs, median)\n", filepath.Base(archive), len(ours.seconds))
	fmt.Printf("%-50s %8s %10s\n", "pipeline", "seconds", "size MB")
	for _, r := range []result{classic, ours} {
		fmt.Printf("%-50s %8.2f %10.1f\n", r.name, r.median(), float64(r.size)/1e6)
	}
	fmt.Printf("ratio hpcctl/classic: time %.3f, size %.3f\n",
		ours.median()/classic.median(), float64(ours.size)/float64(classic.size))
}

func run(cmd *exec.Cmd, env ...string) {
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "buildbench: %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	check(err)
	return st.Size()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildbench:", err)
		os.Exit(1)
	}
}
