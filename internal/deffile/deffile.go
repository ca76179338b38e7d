// Package deffile parses Apptainer definition files (recipes): the header of each stage
// (Bootstrap, From, Stage, ...), its sections (%post, %files, %environment, ...), per-app sections,
// and {{ name }} build arguments. It is pure: it reads bytes and returns data, never runs or opens
// anything, so the build can check a recipe before it fetches or starts anything.
package deffile

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// MaxSize bounds a definition file: recipes are small, and a larger file is a mistake or an
// attack on the parser.
const MaxSize = 4 << 20

// Definition is a parsed recipe: one stage per Bootstrap line, in order; the last one is the image.
type Definition struct {
	Stages []Stage
}

// Stage is one build stage.
type Stage struct {
	// Header holds the header keys, lower-cased ("bootstrap", "from", "stage", ...), as written.
	Header map[string]string
	// Sections are the stage's sections in file order; a name may occur more than once (Apptainer
	// appends them).
	Sections []Section
	// Line is the line of the stage's Bootstrap header.
	Line int
}

// Section is one %section of a stage.
type Section struct {
	// Name is the section's name without %, lower-cased ("post", "files", "appinstall").
	Name string
	// Args are the words after the name: "-c /bin/bash" for %post, "from build" for %files, the
	// app's name for %app* sections.
	Args []string
	// Body is the section's text, up to the next section or stage.
	Body string
	// Line is the line of the %name.
	Line int
}

// Sections Apptainer knows, besides the per-app ones.
var stageSections = []string{"arguments", "setup", "files", "post", "environment", "runscript",
	"startscript", "test", "labels", "help", "pre"}

// appSections take the app's name as their first argument.
var appSections = []string{"appinstall", "appfiles", "appenv", "apphelp", "applabels", "apprun",
	"appstart", "apptest"}

// headerKeys are the header keys Apptainer's bootstrap agents read.
var headerKeys = []string{"bootstrap", "from", "stage", "fingerprints", "includecmd", "mirrorurl",
	"osversion", "include", "updateurl", "registry", "namespace", "product", "user", "regcode",
	"productpgp", "confurl", "setopt"}

// Error is a problem at one line of a recipe.
type Error struct {
	Name string // the file, for the message
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Name, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Name, e.Msg)
}

// Parse reads a recipe; name is used in error messages.
func Parse(name string, data []byte) (*Definition, error) {
	if len(data) > MaxSize {
		return nil, &Error{Name: name, Msg: fmt.Sprintf("%d bytes: a definition file is at most %d", len(data), MaxSize)}
	}
	p := parser{name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxSize)
	for n := 1; sc.Scan(); n++ {
		if err := p.line(n, sc.Text()); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{Name: name, Msg: err.Error()}
	}
	return p.finish()
}

type parser struct {
	name    string
	def     Definition
	stage   *Stage
	section *Section
	body    strings.Builder
}

func (p *parser) fail(line int, format string, args ...any) error {
	return &Error{Name: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// line takes one line: a section start, a header key (outside sections), or section body.
func (p *parser) line(n int, text string) error {
	trimmed := strings.TrimSpace(text)
	if strings.HasPrefix(trimmed, "%") && p.isSectionStart(trimmed) {
		return p.startSection(n, trimmed)
	}
	if name, ok := sectionLike(trimmed); ok && p.stage != nil {
		// Apptainer takes every line whose first word starts with % as a section and refuses
		// names it does not know; a script line "%d" or "%%" is not word-like and stays text.
		return p.fail(n, "unknown section %%%s: the sections are %%%s (and %%app* per app)", name, strings.Join(stageSections[:len(stageSections)-1], ", %"))
	}
	if p.section != nil {
		if p.isHeaderOfNextStage(trimmed) {
			p.endSection()
			return p.header(n, trimmed)
		}
		p.body.WriteString(text)
		p.body.WriteByte('\n')
		return nil
	}
	if trimmed == "" || strings.HasPrefix(trimmed, "#") {
		return nil
	}
	return p.header(n, trimmed)
}

// isSectionStart tells a %name line from a line of a script that starts with % (a printf format,
// a batch-file token): only known section names start sections.
func (p *parser) isSectionStart(trimmed string) bool {
	f := strings.Fields(trimmed[1:])
	if len(f) == 0 {
		return false
	}
	name := strings.ToLower(f[0])
	return slices.Contains(stageSections, name) || slices.Contains(appSections, name)
}

// sectionLike reports whether a line's first word looks like a section's name (%name).
func sectionLike(trimmed string) (string, bool) {
	f := strings.Fields(trimmed)
	if len(f) == 0 || !sectionWord.MatchString(f[0]) {
		return "", false
	}
	return f[0][1:], true
}

var sectionWord = regexp.MustCompile(`^%[A-Za-z][A-Za-z0-9_-]*$`)

// isHeaderOfNextStage reports whether a line inside a section starts a new stage: Apptainer ends
// a section at a "Bootstrap:" line.
func (p *parser) isHeaderOfNextStage(trimmed string) bool {
	k, _, ok := strings.Cut(trimmed, ":")
	return ok && strings.EqualFold(strings.TrimSpace(k), "bootstrap")
}

func (p *parser) header(n int, trimmed string) error {
	k, v, ok := strings.Cut(trimmed, ":")
	key := strings.ToLower(strings.TrimSpace(k))
	if !ok || key == "" || strings.ContainsAny(key, " \t") {
		return p.fail(n, "%q is neither a header line (Key: value) nor in a section (%%post, %%files, ...)", clip(trimmed))
	}
	if !slices.Contains(headerKeys, key) {
		return p.fail(n, "unknown header key %q (want Bootstrap, From, Stage, ...)", strings.TrimSpace(k))
	}
	if key == "bootstrap" {
		p.def.Stages = append(p.def.Stages, Stage{Header: map[string]string{}, Line: n})
		p.stage = &p.def.Stages[len(p.def.Stages)-1]
	}
	if p.stage == nil {
		return p.fail(n, "%s before Bootstrap: a definition file starts with 'Bootstrap: <agent>'", strings.TrimSpace(k))
	}
	if _, dup := p.stage.Header[key]; dup {
		return p.fail(n, "header key %s given twice in one stage", strings.TrimSpace(k))
	}
	p.stage.Header[key] = strings.TrimSpace(v)
	return nil
}

func (p *parser) startSection(n int, trimmed string) error {
	p.endSection()
	if p.stage == nil {
		return p.fail(n, "section %s before the header: a definition file starts with 'Bootstrap: <agent>'", strings.Fields(trimmed)[0])
	}
	f := strings.Fields(trimmed[1:])
	s := Section{Name: strings.ToLower(f[0]), Args: f[1:], Line: n}
	if slices.Contains(appSections, s.Name) && len(s.Args) == 0 {
		return p.fail(n, "%%%s needs the app's name", s.Name)
	}
	p.stage.Sections = append(p.stage.Sections, s)
	p.section = &p.stage.Sections[len(p.stage.Sections)-1]
	return nil
}

func (p *parser) endSection() {
	if p.section != nil {
		p.section.Body = p.body.String()
	}
	p.section = nil
	p.body.Reset()
}

func (p *parser) finish() (*Definition, error) {
	p.endSection()
	if len(p.def.Stages) == 0 {
		return nil, &Error{Name: p.name, Msg: "no 'Bootstrap:' header: this is not a definition file"}
	}
	names := map[string]int{}
	for _, st := range p.def.Stages {
		if st.Header["bootstrap"] == "" {
			return nil, p.fail(st.Line, "Bootstrap needs an agent (docker, oci, oci-archive, docker-archive, localimage, scratch)")
		}
		if name := st.Header["stage"]; name != "" {
			if l, dup := names[name]; dup {
				return nil, p.fail(st.Line, "stage %q is also defined at line %d", name, l)
			}
			names[name] = st.Line
		}
	}
	return &p.def, nil
}

// SectionsNamed returns the stage's sections called name, in order.
func (s Stage) SectionsNamed(name string) []Section {
	var out []Section
	for _, sec := range s.Sections {
		if sec.Name == name {
			out = append(out, sec)
		}
	}
	return out
}

// Apps lists the names of the apps the stage's %app* sections define, in first-seen order.
func (s Stage) Apps() []string {
	var apps []string
	for _, sec := range s.Sections {
		if slices.Contains(appSections, sec.Name) && !slices.Contains(apps, sec.Args[0]) {
			apps = append(apps, sec.Args[0])
		}
	}
	return apps
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// FileEntry is one line of a %files section: a host path (or a path of the stage named by
// "%files from STAGE"), which may be a glob, and where it goes in the image ("" is the same path).
type FileEntry struct {
	Source, Destination string
	Line                int
}

// Files reads a %files section's lines: "source [destination]", blank lines and # comments
// skipped. from is the stage the files come from ("" for the host).
func (sec Section) Files(name string) (entries []FileEntry, from string, err error) {
	if sec.Name != "files" && sec.Name != "appfiles" {
		return nil, "", &Error{Name: name, Line: sec.Line, Msg: "not a %files section"}
	}
	args := sec.Args
	if sec.Name == "appfiles" {
		args = args[1:]
	}
	switch {
	case len(args) == 2 && strings.EqualFold(args[0], "from"):
		from = args[1]
	case len(args) != 0:
		return nil, "", &Error{Name: name, Line: sec.Line, Msg: fmt.Sprintf("%%files takes 'from STAGE' or nothing, got %q", strings.Join(args, " "))}
	}
	for i, l := range strings.Split(sec.Body, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) > 2 {
			return nil, "", &Error{Name: name, Line: sec.Line + i + 1, Msg: fmt.Sprintf("want 'source [destination]' in %%files, got %q", clip(strings.TrimSpace(l)))}
		}
		e := FileEntry{Source: f[0], Line: sec.Line + i + 1}
		if len(f) == 2 {
			e.Destination = f[1]
		}
		entries = append(entries, e)
	}
	return entries, from, nil
}
