package compat

import (
	"fmt"
	"strings"
)

// Expand replaces $NAME, ${NAME}, ${NAME:-word} and ${NAME-word} in s with values from lookup, as
// a POSIX shell does inside double quotes (Apptainer evaluates --env-file files with a shell, and
// APPTAINERENV_ values in the container's shell unless --no-eval). An unset variable expands to
// nothing; `\$` is a literal dollar; a `$` that starts no name stays as it is.
func Expand(s string, lookup Lookup) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		val, n, err := expandAt(s[i+1:], lookup)
		if err != nil {
			return "", err
		}
		if n == 0 {
			b.WriteByte('$')
			continue
		}
		b.WriteString(val)
		i += n
	}
	return b.String(), nil
}

// expandAt expands the reference after a `$`; n is how many bytes it used (0: none).
func expandAt(s string, lookup Lookup) (val string, n int, err error) {
	if s[0] == '{' {
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return "", 0, fmt.Errorf("unterminated ${ in %q", "$"+s)
		}
		inner := s[1:end]
		name := inner[:nameLen(inner)]
		if name == "" {
			return "", 0, fmt.Errorf("bad substitution ${%s}", inner)
		}
		v, set := lookup(name)
		switch op := inner[len(name):]; {
		case op == "":
		case strings.HasPrefix(op, ":-"):
			if v == "" {
				v, err = Expand(op[2:], lookup)
			}
		case strings.HasPrefix(op, "-"):
			if !set {
				v, err = Expand(op[1:], lookup)
			}
		default:
			return "", 0, fmt.Errorf("unsupported substitution ${%s} (hpcctl evaluates $NAME, ${NAME}, ${NAME:-word} and ${NAME-word})", inner)
		}
		return v, end + 1, err
	}
	l := nameLen(s)
	if l == 0 {
		return "", 0, nil
	}
	v, _ := lookup(s[:l])
	return v, l, nil
}

// nameLen is the length of the shell variable name at the start of s.
func nameLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return i
	}
	return len(s)
}
