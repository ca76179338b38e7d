package isolation

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/compat"
)

func TestEnvironmentApptainerNames(t *testing.T) {
	tests := []struct {
		name string
		in   EnvInput
		want map[string]string // variables checked; "" means absent
	}{
		{"prefix precedence", EnvInput{Host: []string{"SINGULARITYENV_A=s", "APPTAINERENV_A=a", "HPCCTLENV_B=h", "APPTAINERENV_B=a", "SINGULARITYENV_C=s"}},
			map[string]string{"A": "a", "B": "h", "C": "s", "APPTAINERENV_A": "", "SINGULARITYENV_C": ""}},
		{"apptainer settings not passed", EnvInput{Host: []string{"APPTAINER_BIND=/x", "SINGULARITY_CONTAIN=1", "KEEP=1"}},
			map[string]string{"APPTAINER_BIND": "", "SINGULARITY_CONTAIN": "", "KEEP": "1"}},
		{"no HOME through apptainer's prefix", EnvInput{Host: []string{"APPTAINERENV_HOME=/evil"}}, map[string]string{"HOME": "/h"}},
		{"prepend and append", EnvInput{Image: []string{"PATH=/img"}, Set: []string{"PREPEND_PATH=/pre", "APPEND_PATH=/app"}},
			map[string]string{"PATH": "/pre:/img:/app", "PREPEND_PATH": "", "APPEND_PATH": ""}},
		{"prefixed prepend", EnvInput{Host: []string{"APPTAINERENV_PREPEND_PATH=/p"}}, map[string]string{"PATH": "/p:" + DefaultPath}},
		{"path replaced", EnvInput{Host: []string{"APPTAINERENV_PATH=/only"}}, map[string]string{"PATH": "/only"}},
		{"evaluated", EnvInput{Image: []string{"BASE=/opt"}, Set: []string{"X=$BASE/bin:${HOME}"}}, map[string]string{"X": "/opt/bin:/h"}},
		{"no-eval", EnvInput{Image: []string{"BASE=/opt"}, Set: []string{"X=$BASE"}, NoEval: true}, map[string]string{"X": "$BASE"}},
		{"no-env", EnvInput{Host: []string{"DROP=1", "KEEP=1"}, NoEnv: []string{"DROP"}}, map[string]string{"DROP": "", "KEEP": "1"}},
		{"allowlist takes no prefix", EnvInput{Host: []string{"APPTAINERENV_A=a"}, Mode: EnvAllowList}, map[string]string{"A": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Home = "/h"
			env, err := Environment(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				got[k] = v
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s=%q, want %q (env %q)", k, got[k], v, env)
				}
			}
		})
	}
}

func TestEvalEnvFile(t *testing.T) {
	host := compat.EnvLookup([]string{"PATH=/usr/bin", "USER=ann"})
	content := "P=$PATH:/x\nQ=\"${NOPE:-dflt} $USER\"\nR='$USER'\nS=$Q\nT=\"a\\$b\"\n"
	got, err := EvalEnvFile("f", content, host)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"P=/usr/bin:/x", "Q=dflt ann", "R=$USER", "S=dflt ann", "T=a$b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := EvalEnvFile("f", "A=${B/x}\n", host); err == nil || !strings.Contains(err.Error(), "f:1") {
		t.Errorf("bad substitution: %v, want an error naming f:1", err)
	}
}

func TestParseBindsApptainerSyntax(t *testing.T) {
	tests := []struct {
		in   string
		want []Bind
	}{
		{"/a,/b:/c:ro", []Bind{{"/a", "/a", false, nil}, {"/b", "/c", true, nil}}},
		{"/a:/b:rw,ro,/c", []Bind{{"/a", "/b", true, nil}, {"/c", "/c", false, nil}}},
		{`/d\,e:/f\:g`, []Bind{{"/d,e", "/f:g", false, nil}}},
		{"rel:/x", []Bind{{"/cwd/rel", "/x", false, nil}}},
	}
	for _, tt := range tests {
		got, err := ParseBinds([]string{tt.in}, "/cwd")
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseBinds(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"/a:/b:image-src=x", "/a:/b:id=0", "/a:/b:id=x", "/a:/b:image-src=/,rw", "/a:/b:wx", "/a:/", "/a:b"} {
		if _, err := ParseBinds([]string{bad}, "/"); err == nil {
			t.Errorf("ParseBinds(%q): no error", bad)
		}
	}
}

func TestParseMounts(t *testing.T) {
	got, err := ParseMounts([]string{"type=bind,source=/a,destination=/b,ro", "src=/c,dst=/d\n\"src=/e,f\",target=/g,readonly"}, "/")
	want := []Bind{{"/a", "/b", true, nil}, {"/c", "/d", false, nil}, {"/e,f", "/g", true, nil}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"type=volume,src=/a,dst=/b", "src=/a", "src=/a,dst=/b,bind-propagation=shared", "src=/a,dst=/b,colour=red", "src=/a,dst=/b,image-src=rel"} {
		if _, err := ParseMounts([]string{bad}, "/"); err == nil {
			t.Errorf("ParseMounts(%q): no error", bad)
		}
	}
}

// TestApptainerScript runs the wrapper with the host's /bin/sh: the explicit settings override
// what the environment scripts set, PATH is extended after them, and the timeout stops scripts
// that hang.
func TestApptainerScript(t *testing.T) {
	if apptainerScript(EnvResult{}, 0, "") != apptainerEnv {
		t.Fatal("the wrapper without settings differs from apptainerEnv, which Build looks for")
	}
	script := apptainerScript(EnvResult{Explicit: []string{"A=it's $set", "bad-name=x"}, Prepend: "/pre", Append: "/app"}, time.Minute, "")
	script = strings.ReplaceAll(script, "/.singularity.d/env/*.sh", "/nonexistent/*.sh")
	out, err := exec.Command("/bin/sh", "-c", script+"", "sh", "sh", "-c", `echo "$A|$PATH"`).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "it's $set|/pre:") || !strings.HasSuffix(got, ":/app") {
		t.Errorf("got %q", got)
	}
	hang := strings.ReplaceAll(apptainerScript(EnvResult{}, 200*time.Millisecond, ""), `for f in /.singularity.d/env/*.sh; do if [ -f "$f" ]; then . "$f"; fi; done; `, "sleep 5; ")
	start := time.Now()
	err = exec.Command("/bin/sh", "-c", hang, "sh", "true").Run()
	if err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("a hanging script: %v after %v, want killed after 200ms", err, time.Since(start))
	}
}
