package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func testHost() Host {
	return Host{
		Env:        map[string]string{"FOO": "host-foo", "PYTHONPATH": "/home/u/lib", "LANG": "de_DE.UTF-8", "PWD": "/x", "HOME": "/home/u"},
		Namespaces: map[string]string{"net": "net:[1]", "pid": "pid:[2]"},
		Devices:    map[string]string{"254:0": "ext4", "0:40": "tmpfs"},
		Hostname:   "node1", Kernel: "Linux 6.18 x86_64", CPUModel: "EPYC", CPUFlags: "sse avx",
	}
}

// leakyProbe is what the default profile sees; strictProbe what isolate sees.
func leakyProbe() Probe {
	return Probe{
		"env.FOO": "host-foo", "env.PYTHONPATH": "/home/u/lib", "env.LANG": "de_DE.UTF-8", "env.PWD": "/x",
		"env.PATH": "/bin", "home": "/home/u", "cwd": "/home/u/w",
		"mount./": "squashfs 7:0 /", "mount./home/u": "ext4 254:0 /home/u", "mount./tmp": "tmpfs 0:40 /",
		"mount./proc": "proc 0:5 /", "ns.net": "net:[1]", "ns.pid": "pid:[9]", "ns.pid_for_children": "pid:[2]",
		"hostname": "node1", "net": "eth0 lo",
		"usersite./home/u/.local/lib/python3.11/site-packages": "shadowme",
	}
}

func strictProbe() Probe {
	return Probe{"env.PATH": "/bin", "home": "/home/u", "cwd": "/", "mount./": "squashfs 7:0 /",
		"mount./tmp": "tmpfs 0:99 /", "ns.net": "net:[5]", "ns.pid": "pid:[9]", "hostname": "hpcctl", "net": "lo"}
}

func leakNames(ls []Leak) []string {
	var n []string
	for _, l := range ls {
		n = append(n, string(l.Kind)+":"+l.Name)
	}
	return n
}

func TestLeaks(t *testing.T) {
	all := []string{"env:FOO", "locale:LANG", "searchpath:PYTHONPATH", "mount:/home/u", "mount:/tmp",
		"usersite:~/.local/lib/python3.11/site-packages", "namespace:net", "hostname:hostname", "network:net"}
	for _, tt := range []struct {
		name  string
		p     Probe
		image []string
		want  []string
	}{
		{"default", leakyProbe(), nil, all},
		// The image sets FOO and LANG to what the host has: the container's values are the image's.
		{"image sets the same values", leakyProbe(), []string{"FOO=host-foo", "LANG=de_DE.UTF-8", "PATH=/bin"}, all[2:]},
		{"image sets other values", leakyProbe(), []string{"FOO=image-foo"}, all},
		{"isolate", strictProbe(), nil, nil},
		{"no probe", nil, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := leakNames(Leaks(tt.p, testHost(), tt.image)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("leaks %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLeakTexts(t *testing.T) {
	ls := Leaks(leakyProbe(), testHost(), nil)
	var texts []string
	for _, l := range ls {
		texts = append(texts, l.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"host variable FOO passed through", "PYTHONPATH from the host",
		"~/.local/lib/python3.11/site-packages visible (home bound): shadowme", "host path /home/u visible at /home/u (home)", "shares the host's net namespace"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in\n%s", want, all)
		}
	}
}

func TestParseProbe(t *testing.T) {
	for _, tt := range []struct {
		name, out string
		want      Probe
	}{
		{"complete", "env.A=1=2\nhostname=h\nnot a line\nprobe=done\n", Probe{"env.A": "1=2", "hostname": "h"}},
		{"cut short", "env.A=1\n", nil},
		{"nothing", "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseProbe(tt.out); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func mkRun(profile string, p Probe, stdout, text string, status int) Run {
	r := Run{Profile: profile, Outcome: OutcomeExited, Status: status, Probe: p, Leaks: Leaks(p, testHost(), nil),
		Stdout: Stream{Digest: "sha256:" + stdout}, Stderr: Stream{Digest: "sha256:e3b0"}}
	r.SetText(text)
	return r
}

func TestCompareAttribution(t *testing.T) {
	for _, tt := range []struct {
		name       string
		def, iso   Run
		wantItems  []string
		wantLikely []string
	}{
		{"same", mkRun("default", leakyProbe(), "aa", "x", 0), mkRun("isolate", strictProbe(), "aa", "x", 0), nil, nil},
		{"variable in output", mkRun("default", Probe{"env.FOO": "host-foo"}, "aa", "value host-foo\n", 0),
			mkRun("isolate", strictProbe(), "bb", "value \n", 0), []string{"stdout"}, []string{"FOO"}},
		{"user site", mkRun("default", leakyProbe(), "aa", "host-home\n", 0), mkRun("isolate", strictProbe(), "bb", "image\n", 0),
			[]string{"stdout"}, []string{"~/.local/lib/python3.11/site-packages", "PYTHONPATH"}},
		{"status", mkRun("default", Probe{"env.FOO": "host-foo"}, "aa", "", 1), mkRun("isolate", strictProbe(), "aa", "", 0),
			[]string{"status"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			diffs := Compare([]Run{tt.def, tt.iso}, tt.iso)
			var items []string
			for _, d := range diffs {
				items = append(items, d.Item)
				if d.Profile != "default" || d.Reference != "isolate" {
					t.Errorf("difference %+v: want default against isolate", d)
				}
			}
			if !reflect.DeepEqual(items, tt.wantItems) {
				t.Fatalf("items %q, want %q", items, tt.wantItems)
			}
			if len(diffs) == 0 {
				return
			}
			var likely []string
			for _, c := range diffs[0].Causes {
				if c.Likely {
					likely = append(likely, c.Name)
				}
			}
			if !reflect.DeepEqual(likely, tt.wantLikely) {
				t.Errorf("likely causes %q, want %q (all: %+v)", likely, tt.wantLikely, diffs[0].Causes)
			}
		})
	}
}

func TestCompareFiles(t *testing.T) {
	a := mkRun("default", nil, "aa", "", 0)
	a.Outputs = map[string]string{"r.txt": "sha256:1", "only-default": "sha256:2"}
	b := mkRun("isolate", nil, "aa", "", 0)
	b.Outputs = map[string]string{"r.txt": "sha256:3"}
	diffs := Compare([]Run{a, b}, b)
	var got []string
	for _, d := range diffs {
		got = append(got, d.Item+"="+d.Got+"/"+d.Want)
	}
	want := []string{"file only-default=sha256:2/absent", "file r.txt=sha256:1/sha256:3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReportText(t *testing.T) {
	for _, tt := range []struct {
		name string
		runs []Run
		want []string
	}{
		{"differs", []Run{mkRun("default", Probe{"env.FOO": "host-foo"}, "aaaaaaaaaaaaaaaa", "host-foo", 0), mkRun("isolate", strictProbe(), "bbbbbbbbbbbbbbbb", "", 0)},
			[]string{"default", "isolate", "exit 0", "default: stdout differs (aaaaaaaaaaaa, isolate has bbbbbbbbbbbb)", "likely cause: host variable FOO passed through"}},
		{"same", []Run{mkRun("default", nil, "aa", "", 0), mkRun("isolate", nil, "aa", "", 0)}, []string{"not probed", "same: every profile gave the same results"}},
		{"outcomes", []Run{{Profile: "default", Outcome: OutcomeTimedOut, Status: 137}, {Profile: "isolate", Outcome: OutcomeExited, Status: 2, Outputs: map[string]string{}}},
			[]string{"timed out", "failed, exit 2", "none written", "default: status differs (timed out, isolate has failed, exit 2)", "no host leak explains it"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := NewReport("img.sif", []string{"prog", "arg"}, "/out", tt.runs)
			var b bytes.Buffer
			if err := rep.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("no %q in\n%s", w, b.String())
				}
			}
		})
	}
}

func TestReportJSON(t *testing.T) {
	rep := NewReport("img.sif", []string{"prog"}, "", []Run{mkRun("default", leakyProbe(), "aa", "host-foo", 0), mkRun("isolate", strictProbe(), "bb", "", 0)})
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Same || len(back.Differences) != 1 || back.Reference != "isolate" || back.Differences[0].Item != "stdout" {
		t.Errorf("decoded %+v", back)
	}
	if strings.Contains(b.String(), "host-foo\"") && !strings.Contains(b.String(), "\"env.FOO\": \"host-foo\"") {
		t.Errorf("a leaked value shows outside the probe: %s", b.String())
	}
}

func TestRedact(t *testing.T) {
	p := Redact(Probe{"env.SECRET": "hunter2", "hostname": "h"})
	if p["hostname"] != "h" || strings.Contains(p["env.SECRET"], "hunter2") || p["env.SECRET"] != RedactValue("hunter2") {
		t.Errorf("redacted %v", p)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rec.json")
	runs := []Run{mkRun("default", Redact(leakyProbe()), "aa", "", 0), mkRun("isolate", strictProbe(), "bb", "", 0)}
	runs[0].Leaks = Leaks(leakyProbe(), testHost(), nil)
	runs[0].Outputs = map[string]string{"f": "sha256:1"}
	runs[0].Spec = json.RawMessage(`{"args":["prog"]}`)
	rec := Record{Version: "1.2.3", Image: ImageFacts{Path: "/i.sif", Digest: "sha256:ff", Signature: "verified"},
		Command: []string{"prog"}, Outputs: "/out", Timeout: "2s", Host: testHost(), Runs: runs}
	if err := WriteRecord(path, rec); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := ReadRecord(f, path)
	if err != nil {
		t.Fatal(err)
	}
	var spec bytes.Buffer
	if err := json.Compact(&spec, back.Runs[0].Spec); err != nil {
		t.Fatal(err)
	}
	if back.Format != RecordFormat || back.Version != "1.2.3" || back.Image != rec.Image || back.Timeout != "2s" ||
		back.Host.Kernel != rec.Host.Kernel || len(back.Runs) != 2 || back.Runs[0].Outputs["f"] != "sha256:1" || spec.String() != `{"args":["prog"]}` {
		t.Errorf("read back %+v", back)
	}
	// The same runs replayed on the same machine: same.
	if d := Replay(back, rec.Image, rec.Host, runs); len(d) != 0 {
		t.Errorf("replay of the same runs: %+v", d)
	}
	// Another stdout on a machine with another CPU: the CPU is named.
	other := append([]Run(nil), runs...)
	other[1].Stdout.Digest = "sha256:cc"
	h := rec.Host
	h.CPUModel = "Xeon"
	d := Replay(back, rec.Image, h, other)
	if len(d) != 1 || d[0].Profile != "isolate" || len(d[0].Causes) == 0 || !strings.Contains(d[0].Causes[0].Text, "CPU model changed: Xeon, was EPYC") {
		t.Errorf("replay on another CPU: %+v", d)
	}
}

func TestReadRecordErrors(t *testing.T) {
	for _, tt := range []struct{ name, text, want string }{
		{"not json", "hello", "give a file written by"},
		{"other format", `{"format":"x"}`, `format "x"`},
		{"empty", `{"format":"` + RecordFormat + `"}`, "no command or no runs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadRecord(strings.NewReader(tt.text), "r.json")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDigestTree(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "a"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(dir, "sub", "l")); err != nil {
		t.Fatal(err)
	}
	got, err := digestTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"sub/a": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sub/l": "symlink:a"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestPrepareOutputs(t *testing.T) {
	dir := t.TempDir()
	if err := PrepareOutputs(dir, []string{"default", "isolate"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "isolate", "old"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := PrepareOutputs(dir, []string{"default", "isolate"}); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("error %v, want one about the non-empty directory", err)
	}
}

func TestShows(t *testing.T) {
	for _, tt := range []struct {
		text, value string
		want        bool
	}{
		{"16.0\n", "8", false}, {"8.0\n", "8", true}, {"threads=8\n", "8", true}, {"x\n", "", false},
		{"greeting=hello-from-host\n", "hello-from-host", true}, {"abc", "abcd", false}, {"", "abc", false},
	} {
		if got := shows(tt.text, tt.value); got != tt.want {
			t.Errorf("shows(%q, %q) = %v, want %v", tt.text, tt.value, got, tt.want)
		}
	}
}

// fakeLaunch answers like a container would: the probe prints a shell-less image's error or a
// probe; the command prints per profile, fails, hangs or cannot start.
func fakeLaunch(hasShell bool) Launch {
	return func(_ context.Context, profile string, argv []string, stdout, stderr *os.File, outputs string) (int, error) {
		if argv[0] == "/bin/sh" && len(argv) == 3 && argv[2] == ProbeScript {
			if !hasShell {
				return 127, fmt.Errorf("%w: /bin/sh: no such file", ErrNotStarted)
			}
			fmt.Fprintf(stdout, "env.FOO=host-foo\nhostname=%s\nprobe=done\n", profile)
			return 0, nil
		}
		switch argv[0] {
		case "hang":
			return 137, ErrTimedOut
		case "missing":
			return 127, fmt.Errorf("%w: missing: not found", ErrNotStarted)
		case "fail":
			fmt.Fprintln(stderr, "oops")
			return 3, nil
		}
		fmt.Fprintln(stdout, "hello from", profile)
		if outputs != "" && profile == "default" {
			return 0, os.WriteFile(filepath.Join(outputs, "r.txt"), []byte(profile), 0o644)
		}
		return 0, nil
	}
}

func TestRunAll(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cmd      string
		shell    bool
		outcome  string
		status   int
		probed   bool
		outputs  int
		sameDiff bool
	}{
		{"ok", "echo", true, OutcomeExited, 0, true, 1, false},
		{"no shell in the image", "echo", false, OutcomeExited, 0, false, 1, false},
		{"fails", "fail", true, OutcomeExited, 3, true, 0, true},
		{"hangs", "hang", true, OutcomeTimedOut, 137, true, 0, true},
		{"not found", "missing", true, OutcomeNoStart, 127, true, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{Profiles: []string{"default", "isolate"}, Command: []string{tt.cmd}, OutputsDir: dir, OutputsAt: "/out"}
			if err := PrepareOutputs(dir, o.Profiles); err != nil {
				t.Fatal(err)
			}
			runs, err := RunAll(context.Background(), o, testHost(), fakeLaunch(tt.shell))
			if err != nil {
				t.Fatal(err)
			}
			def := runs[0]
			if def.Outcome != tt.outcome || def.Status != tt.status || (def.Probe != nil) != tt.probed || len(def.Outputs) != tt.outputs {
				t.Errorf("default run %+v", def)
			}
			if tt.probed && def.Probe["env.FOO"] != RedactValue("host-foo") {
				t.Errorf("probe not redacted: %v", def.Probe)
			}
			if rep := NewReport("i", o.Command, "/out", runs); rep.Same != tt.sameDiff {
				t.Errorf("same %v, want %v: %+v", rep.Same, tt.sameDiff, rep.Differences)
			}
		})
	}
}

// The batch job's variables are reported as job variables, not as host leaks.
func TestJobVariablesAreNotLeaks(t *testing.T) {
	h := testHost()
	h.Env["SLURM_PROCID"] = "1"
	h.JobVariable = func(name string) bool { return strings.HasPrefix(name, "SLURM_") }
	p := strictProbe()
	p["env.SLURM_PROCID"] = "1"
	if got, want := leakNames(Leaks(p, h, nil)), []string{"job:SLURM_PROCID"}; !reflect.DeepEqual(got, want) {
		t.Errorf("leaks %q, want %q", got, want)
	}
	h.JobVariable = nil
	if got, want := leakNames(Leaks(p, h, nil)), []string{"env:SLURM_PROCID"}; !reflect.DeepEqual(got, want) {
		t.Errorf("without job variables: leaks %q, want %q", got, want)
	}
}

// TestLeakKindOrders fails when the report's order of leak kinds and the order of causes drift
// apart: every kind a run's leak can have is in both, and the replay's kinds rank first.
func TestLeakKindOrders(t *testing.T) {
	replay := []LeakKind{LeakImage, LeakHost}
	want := append(slices.Clone(replay), reportOrder...)
	if len(causeOrder) != len(want) {
		t.Fatalf("causeOrder %q, reportOrder %q: want the same kinds, plus %q first", causeOrder, reportOrder, replay)
	}
	for _, k := range want {
		if !slices.Contains(causeOrder, k) {
			t.Errorf("%q is in reportOrder but not causeOrder", k)
		}
	}
	for i, k := range replay {
		if causeOrder[i] != k {
			t.Errorf("causeOrder[%d] = %q, want %q", i, causeOrder[i], k)
		}
	}
}
