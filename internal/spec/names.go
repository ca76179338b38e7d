package spec

import (
	"fmt"
	"strings"
)

// MaxHostname is the kernel's limit on a host name (__NEW_UTS_LEN).
const MaxHostname = 64

// CheckHostname requires RFC 1123 syntax: dot-separated labels of letters, digits and '-', each
// 1 to 63 characters, neither starting nor ending with '-'. The kernel takes any bytes, but a name
// with spaces or control characters breaks every program that prints or parses it (shell prompts,
// log lines, MPI host lists).
func CheckHostname(name string) error {
	if name == "" {
		return fmt.Errorf("host name is empty: give a name such as node1")
	}
	if len(name) > MaxHostname {
		return fmt.Errorf("host name %q has %d characters: at most %d", name, len(name), MaxHostname)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host name %q: want dot-separated labels of letters, digits and '-' (not at either end of a label)", name)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("host name %q: character %q is not allowed (letters, digits, '-' and '.')", name, rune(c))
			}
		}
	}
	return nil
}

// CheckEnvName requires a name a shell can use: letters, digits and '_', not starting with a
// digit. The kernel passes any "NAME=value" string, but a name like "BAD NAME" cannot be read or
// unset by the program's scripts and usually means a quoting mistake on the command line.
func CheckEnvName(name string) error {
	if name == "" {
		return fmt.Errorf("empty variable name: want NAME=value")
	}
	for i, c := range []byte(name) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("%q is not a valid variable name (letters, digits and _, not starting with a digit)", name)
		}
	}
	return nil
}
