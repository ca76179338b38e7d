package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/deffile"
)

func TestCheckRecipe(t *testing.T) {
	for _, tt := range []struct{ name, recipe, want string }{
		{"ok", "Bootstrap: docker\nFrom: debian\nStage: b\n%post\n true\nBootstrap: scratch\n%files from b\n /x /y\n", ""},
		{"agent", "Bootstrap: yum\nFrom: c\n", `r.def:1: unknown bootstrap agent "yum"`},
		{"no from", "Bootstrap: docker\n", "r.def:1: Bootstrap: docker needs a From: line"},
		{"apps", "Bootstrap: scratch\n%apprun tool\n echo\n", "r.def:2: %apprun tool: per-app sections"},
		{"pre", "Bootstrap: scratch\n%pre\n echo\n", "r.def:2: section %pre is not supported"},
		{"from later stage", "Bootstrap: scratch\n%files from later\n /a\nBootstrap: scratch\nStage: later\n", "r.def:2: %files from later: no earlier stage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			def, err := deffile.Parse("r.def", []byte(tt.recipe))
			if err != nil {
				t.Fatal(err)
			}
			err = checkRecipe("r.def", def)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("checkRecipe: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestScriptArgs(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"/bin/sh", "-ex", "/s"}},
		{[]string{"-c", "/bin/bash"}, []string{"/bin/sh", "-ex", "-c", "/bin/bash /s"}},
		{[]string{"-c", "/bin/bash", "-l", "#", "comment"}, []string{"/bin/sh", "-ex", "-c", "/bin/bash -l /s"}},
		{[]string{"-u"}, []string{"/bin/sh", "-ex", "-u", "/s"}},
	} {
		got, err := scriptArgs(deffile.Section{Name: "post", Args: tt.args}, "/s")
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("scriptArgs(%q) = %q, %v; want %q", tt.args, got, err, tt.want)
		}
	}
	if _, err := scriptArgs(deffile.Section{Name: "post", Args: []string{"-c"}}, "/s"); err == nil {
		t.Error("-c without a command: no error")
	}
}

func TestRecipeScriptAndLabels(t *testing.T) {
	if got := recipeScript("    echo hi\n", nil); got != "#!/bin/sh\n\n    echo hi\n\n" {
		t.Errorf("runscript %q", got)
	}
	if got := recipeScript("#!/bin/bash\necho hi\n", []string{"-l"}); got != "#!/bin/bash -l\n\necho hi\n\n" {
		t.Errorf("runscript with shebang %q", got)
	}
	got := parseLabels("  Author  A Person\n# no\nVersion\t1.0\n\nEmpty\n")
	if want := map[string]string{"Author": "A Person", "Version": "1.0", "Empty": ""}; !reflect.DeepEqual(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	at := time.Date(2024, 1, 7, 3, 4, 5, 0, time.UTC)
	l := buildLabels(at, "amd64", map[string]string{"bootstrap": "docker"}, true, "v1")
	if l["org.label-schema.build-date"] != "Sunday_7_January_2024_3:4:5_UTC" || l["org.opencontainers.image.created"] != "2024-01-07T03:04:05Z" ||
		l["org.label-schema.usage.singularity.deffile.bootstrap"] != "docker" || l["org.label-schema.usage"] != "/.singularity.d/runscript.help" {
		t.Errorf("build labels %v", l)
	}
}

// TestOCIRunscriptAndEnv runs the generated scripts with sh: the environment script keeps a
// caller's value but sets PATH, and the runscript runs ENTRYPOINT with CMD or the arguments.
func TestOCIRunscriptAndEnv(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh")
	}
	dir := t.TempDir()
	env := filepath.Join(dir, "env.sh")
	script := dockerEnvScript([]string{"PATH=/opt/bin:/usr/bin:/bin", "A=from image", `B=$HOME "q"`, "bad-name=x", "EMPTY"})
	if err := os.WriteFile(env, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", `A=caller; . `+env+`; printf '%s|%s|%s|%s' "$PATH" "$A" "$B" "${EMPTY-unset}"`).Output()
	if err != nil || string(out) != `/opt/bin:/usr/bin:/bin|caller|$HOME "q"|` {
		t.Errorf("environment script gives %q (%v):\n%s", out, err, script)
	}
	run := filepath.Join(dir, "runscript")
	if err := os.WriteFile(run, []byte(ociRunscript([]string{"echo", "it's"}, []string{"default arg"})), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{{nil, "it's default arg\n"}, {[]string{"x", "y z"}, "it's x y z\n"}} {
		out, err := exec.Command(run, tt.args...).Output()
		if err != nil || string(out) != tt.want {
			t.Errorf("runscript %q: %q (%v), want %q", tt.args, out, err, tt.want)
		}
	}
}

func TestIsRecipe(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"yes.def": "# c\n\nbootstrap: docker\n", "no.tar": "ustar\x00", "no2": "From: x\nBootstrap: docker\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := IsRecipe(filepath.Join(dir, name)); got != strings.HasPrefix(name, "yes") {
			t.Errorf("IsRecipe(%s) = %v", name, got)
		}
	}
	if IsRecipe(dir) {
		t.Error("a directory is a recipe")
	}
}

// The parser's corpus (internal/deffile/testdata/corpus): what parses is checked as a build
// would, the per-app recipe refused with one line naming its first %app section, the others
// accepted (those whose agent or sections the build refuses say why).
func TestCheckRecipeCorpus(t *testing.T) {
	want := map[string]string{
		"apps.def": "apps.def:7: %appinstall foo: per-app sections",
	}
	files, _ := filepath.Glob("../deffile/testdata/corpus/*.def")
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "bad-") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data, _, err = deffile.Expand(name, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		def, err := deffile.Parse(name, data)
		if err != nil {
			t.Fatal(err)
		}
		err = checkRecipe(name, def)
		switch w := want[name]; {
		case w == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case w != "" && (err == nil || !strings.HasPrefix(err.Error(), w) || strings.Contains(err.Error(), "\n")):
			t.Errorf("%s: %v, want one line starting %q", name, err, w)
		}
	}
}
