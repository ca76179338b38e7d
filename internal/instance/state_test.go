package instance

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"a", true},
		{"Web-1.test_2", true},
		{"9lives", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{".hidden", false},
		{"-flag", false},
		{"_x", false},
		{"a/b", false},
		{"..", false},
		{"a b", false},
		{"a\x00b", false},
		{"tab\t", false},
		{"name\n", false},
		{"ünicode", false},
	} {
		err := CheckName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "letters, digits") {
			t.Errorf("CheckName(%q): %v does not say what a name may be", tc.name, err)
		}
	}
}

func newDir(t *testing.T) (Dir, string) {
	t.Helper()
	base := filepath.Join(t.TempDir(), "state")
	d, err := OpenDir(base)
	if err != nil {
		t.Fatal(err)
	}
	return d, base
}

func TestOpenDirMakesPrivateDirectories(t *testing.T) {
	d, base := newDir(t)
	host, _ := os.Hostname()
	if want := filepath.Join(base, "instances", host); d.path != want {
		t.Fatalf("OpenDir: %s, want %s", d.path, want)
	}
	for _, p := range []string{base, filepath.Join(base, "instances"), d.path} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %o, want 0700", p, st.Mode().Perm())
		}
	}
	// Opening again accepts what it made.
	if _, err := OpenDir(base); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDirRefusesOpenDirectories(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(base string) error
	}{
		{"group-readable host directory", func(base string) error {
			host, _ := os.Hostname()
			return os.Chmod(filepath.Join(base, "instances", host), 0o750)
		}},
		{"world-writable instances directory", func(base string) error {
			return os.Chmod(filepath.Join(base, "instances"), 0o777)
		}},
		{"base open to others", func(base string) error { return os.Chmod(base, 0o755) }},
		{"symlink for the host directory", func(base string) error {
			host, _ := os.Hostname()
			p := filepath.Join(base, "instances", host)
			other := filepath.Join(base, "elsewhere")
			if err := os.Mkdir(other, 0o700); err != nil {
				return err
			}
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink(other, p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, base := newDir(t)
			if err := tc.setup(base); err != nil {
				t.Fatal(err)
			}
			_, err := OpenDir(base)
			if err == nil {
				t.Fatal("OpenDir accepted it")
			}
			if !strings.Contains(err.Error(), "mode 0700") {
				t.Errorf("error %q does not say what to fix", err)
			}
		})
	}
}

// self is a record of the test process itself: a live monitor.
func self(t *testing.T, name string) *Record {
	t.Helper()
	st, err := StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return &Record{Name: name, Image: "/img/" + name + ".sif", PID: os.Getpid(), Start: st, InitPID: os.Getpid(),
		Env: []string{"PATH=/bin", "A=b c"}, Cwd: "/work", LogOut: "/logs/" + name + ".log", JobID: "42"}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	d, _ := newDir(t)
	r := self(t, "web")
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(d.Path("web", ".json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("record mode %o, want 0600", st.Mode().Perm())
	}
	if _, err = os.Stat(d.Path("web", ".json.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary record left: %v", err)
	}
	got, err := d.Load("web")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(r)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Errorf("loaded %s, saved %s", b, a)
	}
}

// TestRecordJSON pins the file's field names: Apptainer's where it has one, and every field that
// a join needs.
func TestRecordJSON(t *testing.T) {
	r := &Record{Name: "n", Image: "/i.sif", PID: 7, Start: 99, InitPID: 8, Env: []string{"X=1"}, Cwd: "/c", LogOut: "/l"}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err = json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"instance": "n", "img": "/i.sif", "pid": 7.0, "start": 99.0, "initPid": 8.0,
		"env": []any{"X=1"}, "cwd": "/c", "logOutPath": "/l"}
	if len(m) != len(want) {
		t.Errorf("fields %v, want %v (ip and jobId only when set)", m, want)
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || jsonString(got) != jsonString(v) {
			t.Errorf("field %q = %v, want %v", k, got, v)
		}
	}
	r.JobID, r.IP = "12", "10.0.0.2"
	b, _ = json.Marshal(r)
	if !strings.Contains(string(b), `"jobId":"12"`) || !strings.Contains(string(b), `"ip":"10.0.0.2"`) {
		t.Errorf("jobId/ip missing from %s", b)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// deadRecord is a record whose monitor has exited: a reaped child's PID and start time.
func deadRecord(t *testing.T, name string) *Record {
	t.Helper()
	c := exec.Command("sleep", "60")
	if err := c.Start(); err != nil {
		t.Skipf("needs a child process: %v", err)
	}
	st, err := StartTime(c.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	r := &Record{Name: name, PID: c.Process.Pid, Start: st}
	if !r.Alive() {
		t.Fatal("a running child is not alive")
	}
	c.Process.Kill() //nolint:errcheck // Wait below reports it
	c.Wait()         //nolint:errcheck // killed on purpose
	return r
}

func TestLoadDropsDeadRecords(t *testing.T) {
	d, _ := newDir(t)
	r := deadRecord(t, "gone")
	if r.Alive() {
		t.Fatal("a reaped child is alive")
	}
	if err := d.Save(r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.Path("gone", ".log"), []byte("out\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := d.Load("gone")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "monitor") {
		t.Fatalf("Load of a dead instance: %v, want ErrNotFound naming the monitor", err)
	}
	for _, s := range []string{".json", ".log"} {
		if _, err := os.Stat(d.Path("gone", s)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s of a dead instance kept: %v", s, err)
		}
	}
}

func TestAliveRejectsRecycledPID(t *testing.T) {
	r := self(t, "x")
	if !r.Alive() {
		t.Fatal("the test process is not alive")
	}
	r.Start++ // the same PID, another process
	if r.Alive() {
		t.Error("a record with another start time is alive")
	}
	if (&Record{PID: 0x7ffffff0}).Alive() {
		t.Error("a PID that does not exist is alive")
	}
}

func TestLoadErrors(t *testing.T) {
	d, _ := newDir(t)
	if _, err := d.Load("none"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "instance list") {
		t.Errorf("Load of a missing instance: %v", err)
	}
	if _, err := d.Load("../etc"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Load of a bad name: %v, want a name error", err)
	}
	if err := os.WriteFile(d.Path("bad", ".json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := d.Load("bad")
	if err == nil || !strings.Contains(err.Error(), "damaged record") || !strings.Contains(err.Error(), "remove the file") {
		t.Errorf("Load of a damaged record: %v", err)
	}
}

func TestListLiveSortedMatching(t *testing.T) {
	d, _ := newDir(t)
	for _, n := range []string{"web-b", "web-a", "db"} {
		if err := d.Save(self(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Save(deadRecord(t, "web-dead")); err != nil {
		t.Fatal(err)
	}
	// Not records: ignored.
	for _, f := range []string{"web-c.log", "web-d.json.tmp", ".web.json", "x y.json"} {
		if err := os.WriteFile(filepath.Join(d.path, f), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{"*", []string{"db", "web-a", "web-b"}},
		{"web-*", []string{"web-a", "web-b"}},
		{"db", []string{"db"}},
		{"nomatch*", nil},
	} {
		rs, err := d.List(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.Name)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("List(%q) = %v, want %v", tc.pattern, got, tc.want)
		}
	}
	if _, err := os.Stat(d.Path("web-dead", ".json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("List kept a dead instance's record: %v", err)
	}
}

func TestRemoveKeepsOrDropsLog(t *testing.T) {
	d, _ := newDir(t)
	if err := d.Save(self(t, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.Path("a", ".log"), []byte("why it failed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.RemoveRecord("a")
	if _, err := os.Stat(d.Path("a", ".json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemoveRecord kept the record: %v", err)
	}
	if _, err := os.Stat(d.Path("a", ".log")); err != nil {
		t.Errorf("RemoveRecord dropped the log: %v", err)
	}
	d.Remove("a")
	if _, err := os.Stat(d.Path("a", ".log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Remove kept the log: %v", err)
	}
}

func TestStartTime(t *testing.T) {
	a, err := StartTime(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("StartTime(self) = %d, %v", a, err)
	}
	b, _ := StartTime(os.Getpid())
	if a != b {
		t.Errorf("StartTime changed: %d then %d", a, b)
	}
	if _, err = StartTime(0x7ffffff0); err == nil {
		t.Error("StartTime of a missing process succeeded")
	}
}

func TestJoinCommandArgs(t *testing.T) {
	// Joining one's own process: every namespace is shared, so nsenter enters none of them, and
	// keeps the record's working directory, environment and argv.
	r := &Record{InitPID: os.Getpid(), Cwd: "/data", Env: []string{"A=1"}}
	cmd, err := JoinCommand("/usr/bin/nsenter", r, []string{"ls", "-l"})
	if err != nil {
		t.Fatal(err)
	}
	want := "/usr/bin/nsenter -t " + strconv.Itoa(os.Getpid()) + " --root --wd=/data -- ls -l"
	if got := strings.Join(cmd.Args, " "); got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	if strings.Join(cmd.Env, " ") != "A=1" {
		t.Errorf("env %q", cmd.Env)
	}
	if _, err = JoinCommand("/usr/bin/nsenter", &Record{InitPID: 0x7ffffff0}, []string{"true"}); err == nil || !strings.Contains(err.Error(), "join the instance") {
		t.Errorf("join of a missing container: %v", err)
	}
}

// TestCheckNameMatchesOldRule checks the hand-written name check against the rule it replaced, the regexp
// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`, on fixed names and on every short name over an alphabet
// of each class of byte.
func TestCheckNameMatchesOldRule(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	names := []string{"", "a", "Z9", "job-1.x_y", ".hidden", "-x", "_x", "a/b", "a b", "ä", "a\x00",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("-", 63), "a" + strings.Repeat("-", 64), "../x"}
	alphabet := []string{"a", "Q", "7", ".", "_", "-", "/", " ", "\xff"}
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		names = append(names, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+c, n-1)
		}
	}
	gen("", 3)
	for _, name := range names {
		if got, want := CheckName(name) == nil, rule.MatchString(name); got != want {
			t.Errorf("CheckName(%q) accepts: %v, want %v", name, got, want)
		}
	}
}
