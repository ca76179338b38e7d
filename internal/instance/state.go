// Package instance keeps the records of long-running containers (instances) and joins them.
package instance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Record is what `instance list` shows and what joining an instance needs; one JSON file per
// instance in the per-user, per-host state directory.
type Record struct {
	Name  string `json:"instance"`
	Image string `json:"img"`
	// PID is the monitor: the hpcctl process that launched the container and waits for it.
	// Stopping the instance signals it; its death kills the container (Pdeathsig of the setup stage).
	PID int `json:"pid"`
	// Start is the monitor's start time (clock ticks since boot, /proc/PID/stat field 22), so that a
	// recycled PID is not taken for the monitor.
	Start uint64 `json:"start"`
	// InitPID is the container's first process (PID 1 in its PID namespace), whose namespaces a join
	// enters.
	InitPID int      `json:"initPid"`
	IP      string   `json:"ip,omitempty"`
	Env     []string `json:"env"`
	Cwd     string   `json:"cwd"`
	LogOut  string   `json:"logOutPath"`
	// JobID is the Slurm job the instance was started in, if any: it dies with that job.
	JobID string `json:"jobId,omitempty"`
}

// validName reports whether name may name an instance (it becomes a file name): 1-64 letters,
// digits, '.', '_' or '-', starting with a letter or digit. Checked by hand, not by a package-level
// regexp: the compiled {0,63} repetition cost every start of hpcctl, and of each container's setup
// stage (the same binary), about 2 ms of package initialisation (GODEBUG=inittrace=1, issue 14).
func validName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i, c := range []byte(name) {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// CheckName says why name cannot name an instance.
func CheckName(name string) error {
	if !validName(name) {
		return fmt.Errorf("instance name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Dir is one user's instance state directory on one host.
type Dir struct{ path string }

// OpenDir makes (or checks) base/instances/HOST: mode 0700 and owned by the caller, because the
// records name processes that `stop` signals and joins enter. Per host, because a home directory is
// often shared between the nodes of a cluster and PIDs are not.
func OpenDir(base string) (Dir, error) {
	host, err := os.Hostname()
	if err != nil {
		return Dir{}, fmt.Errorf("instance state: host name: %w", err)
	}
	p := filepath.Join(base, "instances", host)
	if err = os.MkdirAll(p, 0o700); err != nil {
		return Dir{}, fmt.Errorf("instance state directory %s: %w", p, err)
	}
	for d := p; d != filepath.Dir(base); d = filepath.Dir(d) {
		if err = checkPrivate(d); err != nil {
			return Dir{}, err
		}
	}
	return Dir{path: p}, nil
}

func checkPrivate(d string) error {
	var st unix.Stat_t
	if err := unix.Lstat(d, &st); err != nil {
		return fmt.Errorf("instance state directory %s: %w", d, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Getuid() || st.Mode&0o077 != 0 {
		return fmt.Errorf("instance state directory %s: must be a directory of yours with mode 0700 (is uid %d mode %o): fix it with chmod 700 or remove it", d, st.Uid, st.Mode&0o7777)
	}
	return nil
}

// Path is where an instance's file of the given suffix lives (".json" record, ".log" output).
func (d Dir) Path(name, suffix string) string { return filepath.Join(d.path, name+suffix) }

// Save writes r atomically.
func (d Dir) Save(r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("instance %s: %w", r.Name, err)
	}
	tmp := d.Path(r.Name, ".json.tmp")
	if err = os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("instance %s: write record: %w", r.Name, err)
	}
	if err = os.Rename(tmp, d.Path(r.Name, ".json")); err != nil {
		return fmt.Errorf("instance %s: write record: %w", r.Name, err)
	}
	return nil
}

// ErrNotFound is an instance with no live record.
var ErrNotFound = errors.New("no such instance")

// Load reads a live instance's record; a record whose monitor has gone is removed and reported as
// ErrNotFound (kill -9 of the monitor leaves only this file behind, and the container is gone).
func (d Dir) Load(name string) (*Record, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.Path(name, ".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("instance %s: %w (see 'hpcctl instance list')", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", name, err)
	}
	var r Record
	if err = json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("instance %s: damaged record %s: %w (stop it or remove the file)", name, d.Path(name, ".json"), err)
	}
	if !r.Alive() {
		d.Remove(name)
		return nil, fmt.Errorf("instance %s: %w: its monitor (PID %d) has exited", name, ErrNotFound, r.PID)
	}
	return &r, nil
}

// Remove deletes an instance's files.
func (d Dir) Remove(name string) {
	for _, s := range []string{".json", ".json.tmp", ".log"} {
		os.Remove(d.Path(name, s)) // best effort: it may not exist
	}
}

// RemoveRecord deletes an instance's record but keeps its log, which `instance start` reads when
// the instance failed to start.
func (d Dir) RemoveRecord(name string) {
	os.Remove(d.Path(name, ".json")) // best effort: it may not exist
}

// List returns the live instances whose names match the shell pattern, sorted by name, removing
// the records of dead ones.
func (d Dir) List(pattern string) ([]*Record, error) {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("instance state directory %s: %w", d.path, err)
	}
	var out []*Record
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || CheckName(name) != nil {
			continue
		}
		if m, _ := filepath.Match(pattern, name); !m {
			continue
		}
		r, err := d.Load(name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Alive says whether the record's monitor still runs (the same process, not a recycled PID).
func (r *Record) Alive() bool {
	st, err := StartTime(r.PID)
	return err == nil && st == r.Start
}

// StartTime is a process's start time in clock ticks since boot (/proc/PID/stat field 22).
func StartTime(pid int) (uint64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	// A zombie has ended; its parent (often init, once `instance start` has exited) may reap it late.
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	// Fields after the command name (field 2), which may hold spaces: f[0] is field 3.
	return strconv.ParseUint(f[19], 10, 64)
}

// statFields returns /proc/PID/stat from field 3 on.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}
