package deffile

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// argRef is a build argument's use: {{ name }}, spaces inside the braces allowed.
var argRef = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// Expand replaces each {{ name }} in a recipe by its build argument: given (--build-arg,
// --build-arg-file) or, failing that, the default of a %arguments section (NAME=value lines). A
// name with neither is an error naming its line, as in Apptainer. It also returns the given
// arguments the recipe never uses, for a warning.
func Expand(name string, data []byte, given map[string]string) (out []byte, unused []string, err error) {
	if len(data) > MaxSize {
		return nil, nil, &Error{Name: name, Msg: fmt.Sprintf("%d bytes: a definition file is at most %d", len(data), MaxSize)}
	}
	values, err := defaults(name, data)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range given {
		values[k] = v
	}
	used := map[string]bool{}
	var buf bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxSize)
	for n := 1; sc.Scan(); n++ {
		var missing string
		line := argRef.ReplaceAllStringFunc(sc.Text(), func(ref string) string {
			k := argRef.FindStringSubmatch(ref)[1]
			v, ok := values[k]
			if !ok && missing == "" {
				missing = k
			}
			used[k] = true
			return v
		})
		if missing != "" {
			return nil, nil, &Error{Name: name, Line: n, Msg: fmt.Sprintf("build argument %q is not set: give --build-arg %s=VALUE or a default in %%arguments", missing, missing)}
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, nil, &Error{Name: name, Msg: err.Error()}
	}
	for k := range given {
		if !used[k] {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	return buf.Bytes(), unused, nil
}

// defaults reads the NAME=value lines of every %arguments section, before any expansion.
func defaults(name string, data []byte) (map[string]string, error) {
	def, err := Parse(name, argRef.ReplaceAll(data, []byte("x")))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, st := range def.Stages {
		for _, sec := range st.SectionsNamed("arguments") {
			kv, err := parseArguments(name, sec)
			if err != nil {
				return nil, err
			}
			for k, v := range kv {
				out[k] = v
			}
		}
	}
	return out, nil
}

// ParseArgFile reads a --build-arg-file: NAME=value lines, blank lines and # comments skipped.
func ParseArgFile(name string, data []byte) (map[string]string, error) {
	return parseArguments(name, Section{Name: "arguments", Body: string(data)})
}

func parseArguments(name string, sec Section) (map[string]string, error) {
	out := map[string]string{}
	for i, l := range strings.Split(sec.Body, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimSpace(k)
		if !ok || !argName.MatchString(k) {
			return nil, &Error{Name: name, Line: sec.Line + i + 1, Msg: fmt.Sprintf("want NAME=value in %%arguments, got %q", clip(l))}
		}
		out[k] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return out, nil
}

var argName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
