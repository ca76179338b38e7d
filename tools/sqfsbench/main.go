// Command sqfsbench compares hpcctl's squashfs writer with mksquashfs on one directory tree: time,
// throughput, output size and peak memory, median of several runs.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hpcctl/hpcctl/internal/squashfs"
)

type config struct {
	tree, work, cpuProfile string
	reps                   int
	child                  bool
	comp                   string
	level                  int
	out                    string
}

type result struct {
	secs       float64
	cpuSecs    float64 // user + system: fairer than wall time on a shared machine
	outBytes   int64
	peakRSSKiB int64
}

func main() {
	var c config
	flag.StringVar(&c.tree, "tree", os.Getenv("HPCCTL_TEST_DEBIAN_ROOTFS"), "directory tree to pack")
	flag.StringVar(&c.work, "work", "", "directory for the images (default: a temporary directory)")
	flag.IntVar(&c.reps, "reps", 3, "runs per tool and compressor; the median is reported")
	flag.BoolVar(&c.child, "child", false, "internal: write one image with hpcctl's writer and exit")
	flag.StringVar(&c.comp, "comp", "", "compressors to compare, comma-separated (default zstd,gzip; -child: the one to write, default zstd)")
	flag.IntVar(&c.level, "level", 0, "internal: level for -child")
	flag.StringVar(&c.out, "o", "", "internal: output for -child")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "internal: CPU profile of -child")
	flag.Parse()
	var err error
	if c.child {
		err = writeImage(c)
	} else {
		err = run(c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqfsbench:", err)
		os.Exit(1)
	}
}

// writeImage is the child side: one image written by internal/squashfs.
func writeImage(c config) error {
	if c.cpuProfile != "" {
		pf, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	comp, err := squashfs.ParseCompression(cmp.Or(c.comp, "zstd"))
	if err != nil {
		return err
	}
	f, err := os.Create(c.out)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := squashfs.NewWriter(f, squashfs.Options{Compression: comp, Level: c.level})
	if err != nil {
		return err
	}
	if err := squashfs.WriteTree(context.Background(), w, c.tree); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Close()
}

func run(c config) error {
	if c.tree == "" {
		return errors.New("no tree: pass -tree DIR or set HPCCTL_TEST_DEBIAN_ROOTFS")
	}
	if c.reps < 1 {
		return fmt.Errorf("-reps %d: use 1 or more", c.reps)
	}
	if c.work == "" {
		dir, err := os.MkdirTemp("", "sqfsbench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.work = dir
	}
	runs, err := comparisons(cmp.Or(c.comp, "zstd,gzip"))
	if err != nil {
		return err
	}
	in, err := inputBytes(c.tree)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(os.Stdout, "tree %s: %.1f MB of file content, %d runs each (median)\n", c.tree, float64(in)/1e6, c.reps)
	fmt.Fprintln(tw, "compressor\ttool\tseconds\tCPU s\tMB/s\toutput MB\tpeak RSS MB\ttime ratio\tCPU ratio\tsize ratio\t")
	for _, cl := range runs {
		out := filepath.Join(c.work, cl.comp+".sqfs")
		mk, ours, err := medians(c.reps, out,
			exec.Command("mksquashfs", c.tree, out, "-comp", cl.comp,
				"-Xcompression-level", fmt.Sprint(cl.level), "-noappend", "-no-progress", "-quiet"),
			exec.Command(self, "-child", "-tree", c.tree, "-comp", cl.comp, "-level", fmt.Sprint(cl.level), "-o", out))
		if err != nil {
			return fmt.Errorf("%s: %w", cl.comp, err)
		}
		row(tw, cl.comp, "mksquashfs", mk, in, "", "", "")
		row(tw, cl.comp, "hpcctl", ours, in, fmt.Sprintf("%.2f", ours.secs/mk.secs),
			fmt.Sprintf("%.2f", ours.cpuSecs/mk.cpuSecs), fmt.Sprintf("%.3f", float64(ours.outBytes)/float64(mk.outBytes)))
	}
	return tw.Flush()
}

// comparison is one compressor and the level both tools use for it.
type comparison struct {
	comp  string
	level int
}

// comparisons parses -comp: zstd runs at level 3 (hpcctl's default), gzip at 9 (both tools').
func comparisons(list string) ([]comparison, error) {
	levels := map[string]int{"zstd": 3, "gzip": 9}
	var out []comparison
	for name := range strings.SplitSeq(list, ",") {
		level, ok := levels[name]
		if !ok {
			return nil, fmt.Errorf("-comp %q: use zstd, gzip or both, comma-separated", name)
		}
		out = append(out, comparison{name, level})
	}
	return out, nil
}

func row(tw *tabwriter.Writer, comp, tool string, r result, in int64, tr, cr, sr string) {
	fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.1f\t%.2f\t%.1f\t%s\t%s\t%s\t\n", comp, tool, r.secs, r.cpuSecs,
		float64(in)/1e6/r.secs, float64(r.outBytes)/1e6, float64(r.peakRSSKiB)/1024, tr, cr, sr)
}

// medians runs the baseline and hpcctl reps times each, alternating so that a burst of load from
// others on a shared machine hits both alike, and returns each one's median run by time.
func medians(reps int, out string, base, ours *exec.Cmd) (result, result, error) {
	var rs [2][]result
	for range reps {
		for i, proto := range []*exec.Cmd{base, ours} {
			r, err := runOnce(proto, out)
			if err != nil {
				return result{}, result{}, fmt.Errorf("%s: %w", filepath.Base(proto.Path), err)
			}
			rs[i] = append(rs[i], r)
		}
	}
	for _, r := range rs {
		slices.SortFunc(r, func(a, b result) int { return cmp.Compare(a.secs, b.secs) })
	}
	return rs[0][reps/2], rs[1][reps/2], nil
}

// runOnce runs a fresh copy of the command, which writes out, and measures it.
func runOnce(proto *exec.Cmd, out string) (result, error) {
	os.Remove(out)
	cmd := exec.Command(proto.Path, proto.Args[1:]...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, err
	}
	secs := time.Since(start).Seconds()
	st, err := os.Stat(out)
	if err != nil {
		return result{}, err
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return result{secs: secs, cpuSecs: cpu, outBytes: st.Size(), peakRSSKiB: ru.Maxrss}, nil
}

// inputBytes sums the sizes of the regular files in the tree.
func inputBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
