package deffile

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus/*.json from the parser's output")

// corpusView is what a corpus file's golden JSON holds: the parsed structure and what the build
// reads from it (apps, %files entries).
type corpusView struct {
	Expanded string        `json:",omitempty"` // the recipe after {{ name }} expansion, when it changed
	Stages   []corpusStage `json:",omitempty"`
	Error    string        `json:",omitempty"` // the one-line error, for bad-*.def
}

type corpusStage struct {
	Header   map[string]string
	Line     int
	Sections []Section
	Apps     []string      `json:",omitempty"`
	Files    []corpusFiles `json:",omitempty"`
}

type corpusFiles struct {
	From    string `json:",omitempty"`
	Entries []FileEntry
}

// TestCorpus parses the definition files of testdata/corpus, written in Apptainer's documented
// syntax, and compares the structure with NAME.json (go test -run TestCorpus -update rewrites
// them; read the diff). bad-*.def must fail with the error NAME.json holds.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*.def")
	if err != nil || len(files) < 8 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".def")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(viewOf(filepath.Base(f), data), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := strings.TrimSuffix(f, ".def") + ".json"
			if *update {
				if err = os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestCorpus -update and check the file)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n%s", f, golden, got)
			}
			if strings.HasPrefix(name, "bad-") != bytes.Contains(got, []byte(`"Error"`)) {
				t.Errorf("%s: a bad-*.def must fail and the others parse", f)
			}
		})
	}
}

// viewOf expands, parses and reads a corpus file as the build does.
func viewOf(name string, data []byte) corpusView {
	var v corpusView
	expanded, _, err := Expand(name, data, nil)
	if err != nil {
		return corpusView{Error: err.Error()}
	}
	if !bytes.Equal(expanded, data) {
		v.Expanded = string(expanded)
	}
	def, err := Parse(name, expanded)
	if err != nil {
		return corpusView{Error: err.Error()}
	}
	for _, st := range def.Stages {
		cs := corpusStage{Header: st.Header, Line: st.Line, Sections: st.Sections, Apps: st.Apps()}
		for _, sec := range st.SectionsNamed("files") {
			entries, from, err := sec.Files(name)
			if err != nil {
				return corpusView{Error: err.Error()}
			}
			cs.Files = append(cs.Files, corpusFiles{From: from, Entries: entries})
		}
		v.Stages = append(v.Stages, cs)
	}
	return v
}
