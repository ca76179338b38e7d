package deffile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const twoStages = `# a multi-stage recipe
Bootstrap: docker
From: golang:1.22
Stage: build

%files
    main.go /src/main.go
    data/*.csv

%post -c /bin/bash
    cd /src && go build -o /app main.go
    printf '%d\n' 42

Bootstrap: localimage
From: base.sif

%files from build
    /app /usr/local/bin/app

%environment
    export LC_ALL=C

%runscript
    exec /usr/local/bin/app "$@"

%labels
    Author lab

%appinstall tool
    make install
`

func TestParse(t *testing.T) {
	d, err := Parse("r.def", []byte(twoStages))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Stages) != 2 {
		t.Fatalf("%d stages, want 2", len(d.Stages))
	}
	b, img := d.Stages[0], d.Stages[1]
	if want := map[string]string{"bootstrap": "docker", "from": "golang:1.22", "stage": "build"}; !reflect.DeepEqual(b.Header, want) {
		t.Errorf("header %v, want %v", b.Header, want)
	}
	post := b.SectionsNamed("post")
	// A script line starting with % is not a section.
	if len(post) != 1 || !reflect.DeepEqual(post[0].Args, []string{"-c", "/bin/bash"}) || !strings.Contains(post[0].Body, "printf '%d") {
		t.Errorf("%%post: %+v", post)
	}
	files, from, err := b.SectionsNamed("files")[0].Files("r.def")
	if err != nil || from != "" || !reflect.DeepEqual(files, []FileEntry{{"main.go", "/src/main.go", 7}, {"data/*.csv", "", 8}}) {
		t.Errorf("build's %%files: %+v from %q, %v", files, from, err)
	}
	files, from, err = img.SectionsNamed("files")[0].Files("r.def")
	if err != nil || from != "build" || len(files) != 1 || files[0].Destination != "/usr/local/bin/app" {
		t.Errorf("image's %%files: %+v from %q, %v", files, from, err)
	}
	if got := img.Apps(); !reflect.DeepEqual(got, []string{"tool"}) {
		t.Errorf("apps %q", got)
	}
	if rs := img.SectionsNamed("runscript"); len(rs) != 1 || rs[0].Body != "    exec /usr/local/bin/app \"$@\"\n\n" {
		t.Errorf("%%runscript %+v", rs)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ name, text, want string }{
		{"empty", "", "no 'Bootstrap:' header"},
		{"section first", "%post\n echo\n", "r.def:1: section %post before the header"},
		{"key before bootstrap", "From: x\n", "r.def:1: From before Bootstrap"},
		{"unknown key", "Bootstrap: docker\nFrum: x\n", "r.def:2: unknown header key \"Frum\""},
		{"not a header", "Bootstrap: docker\njust words\n", "r.def:2: \"just words\" is neither"},
		{"duplicate key", "Bootstrap: docker\nFrom: a\nFrom: b\n", "r.def:3: header key From given twice"},
		{"empty agent", "Bootstrap:\n", "r.def:1: Bootstrap needs an agent"},
		{"app without name", "Bootstrap: docker\n%apprun\n", "r.def:2: %apprun needs the app's name"},
		{"duplicate stage", "Bootstrap: docker\nStage: a\nBootstrap: docker\nStage: a\n", "r.def:3: stage \"a\" is also defined at line 1"},
		{"unknown section", "Bootstrap: docker\n%post\n echo\n%postt\n echo\n", "r.def:4: unknown section %postt"},
		{"unknown section after header", "Bootstrap: docker\nFrom: x\n%Files2 a\n", "r.def:3: unknown section %Files2"},
		{"bad files", "Bootstrap: docker\n%files\n a b c\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("r.def", []byte(tt.text))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v (the %%files line is checked by Files)", err)
				}
				return
			}
			var de *Error
			if err == nil || !errors.As(err, &de) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want an *Error containing %q", err, tt.want)
			}
		})
	}
	d, _ := Parse("r.def", []byte("Bootstrap: docker\n%files\n a b c\n"))
	if _, _, err := d.Stages[0].Sections[0].Files("r.def"); err == nil || !strings.Contains(err.Error(), "r.def:3:") {
		t.Errorf("Files: %v, want one naming line 3", err)
	}
	if _, err := Parse("big.def", make([]byte, MaxSize+1)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized: %v", err)
	}
}

func TestExpand(t *testing.T) {
	recipe := "Bootstrap: docker\nFrom: debian:{{ release }}\n%arguments\n  release=bookworm\n  pkg=python3\n%post\n  apt-get install -y {{pkg}} {{ extra }}\n"
	out, unused, err := Expand("r.def", []byte(recipe), map[string]string{"extra": "curl", "pkg": "python3-numpy", "nope": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "From: debian:bookworm\n") || !strings.Contains(string(out), "apt-get install -y python3-numpy curl\n") {
		t.Errorf("expanded:\n%s", out)
	}
	if !reflect.DeepEqual(unused, []string{"nope"}) {
		t.Errorf("unused %q, want [nope]", unused)
	}
	_, _, err = Expand("r.def", []byte(recipe), nil)
	if err == nil || !strings.Contains(err.Error(), `r.def:7: build argument "extra" is not set`) {
		t.Errorf("missing argument: %v", err)
	}
	args, err := ParseArgFile("args", []byte("# comment\nA=1\nB = \"two\"\n"))
	if err != nil || !reflect.DeepEqual(args, map[string]string{"A": "1", "B": "two"}) {
		t.Errorf("ParseArgFile: %v %v", args, err)
	}
	if _, err := ParseArgFile("args", []byte("A=1\n1BAD=2\n")); err == nil || !strings.Contains(err.Error(), "args:2:") {
		t.Errorf("bad argument file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(twoStages))
	f.Add([]byte("Bootstrap: docker\nFrom: {{ x }}\n%arguments\nx=1\n%files from y\n a b\n"))
	corpus, _ := filepath.Glob("testdata/corpus/*.def")
	for _, c := range corpus {
		if b, err := os.ReadFile(c); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("f.def", data)
		var de *Error
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("error %v is not an *Error", err)
		}
		if err == nil {
			checkStructure(t, d, bytes.Count(data, []byte("\n"))+1)
			for _, st := range d.Stages {
				for _, sec := range st.Sections {
					if sec.Name == "files" || sec.Name == "appfiles" {
						sec.Files("f.def") //nolint:errcheck // must not panic
					}
				}
				st.Apps()
			}
		}
		Expand("f.def", data, map[string]string{"x": "1"}) //nolint:errcheck // must not panic
	})
}

// checkStructure holds for every recipe Parse accepts: each stage has an agent, and stages and
// sections come in file order, at lines the file has.
func checkStructure(t *testing.T, d *Definition, lines int) {
	t.Helper()
	last := 0
	for _, st := range d.Stages {
		if st.Header["bootstrap"] == "" {
			t.Fatalf("stage at line %d has no agent", st.Line)
		}
		if st.Line <= last || st.Line > lines {
			t.Fatalf("stage at line %d after line %d (file of %d lines)", st.Line, last, lines)
		}
		last = st.Line
		for _, sec := range st.Sections {
			if sec.Line <= last || sec.Line > lines || sec.Name == "" {
				t.Fatalf("section %q at line %d after line %d", sec.Name, sec.Line, last)
			}
			last = sec.Line
		}
	}
}
