package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// memCgroup is a memory cgroup of the benchmark's own: the page cache that the processes in it
// bring in is charged to it, so its growth counts the containers' pages and nothing else the
// machine does meanwhile (/proc/meminfo's Cached counts every process's).
type memCgroup struct {
	dir, home string // the cgroup, and the one the benchmark came from
	stat      string // the memory.stat key of page cache: "file" (v2), "cache" (v1)
}

// newMemCgroup makes a memory cgroup beside the benchmark's own (cgroup v1) or under the root
// (v2, where a cgroup with processes cannot give its children controllers).
func newMemCgroup() (*memCgroup, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("sessionbench-%d", os.Getpid())
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				return makeCgroup("/sys/fs/cgroup/"+name, "/sys/fs/cgroup"+f[2], "file")
			}
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				base := "/sys/fs/cgroup/memory" + f[2]
				return makeCgroup(filepath.Join(base, name), base, "cache")
			}
		}
	}
	return nil, errors.New("no memory cgroup controller")
}

func makeCgroup(dir, home, stat string) (*memCgroup, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("make a memory cgroup: %w", err)
	}
	cg := &memCgroup{dir: dir, home: home, stat: stat}
	if _, err := cg.cached(); err != nil {
		os.Remove(dir)
		return nil, err
	}
	return cg, nil
}

// enter moves the benchmark (every thread) into the cgroup: the containers it starts from then
// on, their holders and their FUSE servers are born there.
func (cg *memCgroup) enter() error {
	return os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
}

// remove moves the benchmark back and removes the cgroup once the processes left in it have ended.
func (cg *memCgroup) remove() {
	os.WriteFile(filepath.Join(cg.home, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0) //nolint:errcheck // best effort
	for range 50 {
		if os.Remove(cg.dir) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "sessionbench: could not remove", cg.dir)
}

// cached is the page cache charged to the cgroup, in bytes.
func (cg *memCgroup) cached() (int64, error) {
	return statLine(filepath.Join(cg.dir, "memory.stat"), cg.stat, 1)
}

// meminfoCached is /proc/meminfo's Cached, in bytes.
func meminfoCached() (int64, error) {
	return statLine("/proc/meminfo", "Cached:", 1024)
}

// statLine reads the value of key from a "key value" file, times unit.
func statLine(file, key string, unit int64) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) >= 2 && f[0] == key {
			v, err := strconv.ParseInt(f[1], 10, 64)
			return v * unit, err
		}
	}
	return 0, fmt.Errorf("no %s in %s", key, file)
}
