// Package compat holds Apptainer's and SingularityCE's names for hpcctl's settings: the
// APPTAINER_*/SINGULARITY_* variables of launch flags, the APPTAINERENV_ prefixes, the
// Docker-style --mount syntax and the evaluation of environment files, so that a batch script
// written for `apptainer` runs with `hpcctl` in its place (issue 15).
package compat

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Variable prefixes of launch flags, highest precedence first: hpcctl's own, then Apptainer's,
// then SingularityCE's (which Apptainer reads only where its own is unset).
const (
	PrefixHPCCTL      = "HPCCTL_"
	PrefixApptainer   = "APPTAINER_"
	PrefixSingularity = "SINGULARITY_"
)

// apptainerKeys are Apptainer's EnvKeys for a flag (cmd/internal/cli/action_flags.go), without
// prefix; several keys of one flag all apply. Flags without Apptainer keys still have HPCCTL_NAME.
func apptainerKeys(flag string) []string {
	switch flag {
	case "app":
		return []string{"APP", "APPNAME"}
	case "bind":
		return []string{"BIND", "BINDPATH"}
	case "overlay":
		return []string{"OVERLAY", "OVERLAYIMAGE"}
	case "scratch":
		return []string{"SCRATCH", "SCRATCHDIR"}
	case "cwd":
		return []string{"CWD", "TARGET_CWD"}
	case "pwd":
		return []string{"PWD", "TARGET_PWD"}
	case "no-init":
		return []string{"NOSHIMINIT"}
	case "pid", "ipc", "net", "uts", "userns":
		u := strings.ToUpper(flag)
		return []string{u, "UNSHARE_" + u}
	case "no-env":
		return []string{"NOENV"}
	case "no-https":
		return []string{"NOHTTPS", "NO_HTTPS"}
	case "authfile":
		return []string{"AUTH_FILE"}
	case "isolate", "profile", "backend", "verify-data", "no-job-env":
		return nil // hpcctl's own: HPCCTL_NAME only
	}
	return []string{keyOf(flag)}
}

// keyOf is a flag's variable name without prefix: --writable-tmpfs is WRITABLE_TMPFS.
func keyOf(flag string) string { return strings.ToUpper(strings.ReplaceAll(flag, "-", "_")) }

// noVariable are launch flags without a variable: --env has the APPTAINERENV_/HPCCTLENV_
// prefixes instead (as in Apptainer), --config has $HPCCTL_CONFIG, read where the setuid
// check is, and help is no setting.
var noVariable = map[string]bool{"env": true, "config": true, "help": true}

// Appending are the flags whose variables add to the command line's values instead of giving
// way to them (Apptainer's EnvAppendValue): binds and mounts.
func Appending(flag string) bool { return flag == "bind" || flag == "mount" }

// Variables lists the variables that set a flag, in precedence order (highest first).
func Variables(flag string) []string {
	if noVariable[flag] {
		return nil
	}
	vars := []string{PrefixHPCCTL + keyOf(flag)}
	for _, p := range []string{PrefixApptainer, PrefixSingularity} {
		for _, k := range apptainerKeys(flag) {
			vars = append(vars, p+k)
		}
	}
	return vars
}

// Honoured is a variable that set a flag.
type Honoured struct {
	Variable, Flag, Value string
}

// Foreign reports whether the variable is Apptainer's or SingularityCE's rather than hpcctl's.
func (h Honoured) Foreign() bool { return !strings.HasPrefix(h.Variable, PrefixHPCCTL) }

// Lookup finds a variable in an environment in os.Environ form.
type Lookup func(name string) (string, bool)

// EnvLookup makes a Lookup from os.Environ-style pairs.
func EnvLookup(environ []string) Lookup {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

// FromEnv sets the flags of fs that the command line left unset from their variables, in
// Apptainer's precedence: the command line, then HPCCTL_KEY, then APPTAINER_KEY, then
// SINGULARITY_KEY for each of the flag's keys (a later prefix only where the earlier one is
// unset). Appending flags (bind, mount) are left to the caller, which keeps them apart from the
// command line's: see AppendValues. An empty value sets nothing, as in Apptainer.
func FromEnv(fs *pflag.FlagSet, env Lookup) ([]Honoured, error) {
	return fromEnv(fs, env, Variables)
}

// VerifyVariables are the variables of verify's flags: Apptainer's keys (VERIFY_KEY,
// LOCAL_VERIFY, ...) under each prefix, hpcctl's first.
func VerifyVariables(flag string) []string {
	keys := map[string]string{
		"key": "VERIFY_KEY", "certificate": "VERIFY_CERTIFICATE", "certificate-intermediates": "VERIFY_INTERMEDIATES",
		"certificate-roots": "VERIFY_ROOTS", "local": "LOCAL_VERIFY",
	}
	k, ok := keys[flag]
	if !ok {
		return nil
	}
	return []string{PrefixHPCCTL + k, PrefixApptainer + k, PrefixSingularity + k}
}

// FromEnvWith is FromEnv with another table of variables (VerifyVariables).
func FromEnvWith(fs *pflag.FlagSet, env Lookup, vars func(flag string) []string) ([]Honoured, error) {
	return fromEnv(fs, env, vars)
}

func fromEnv(fs *pflag.FlagSet, env Lookup, vars func(string) []string) ([]Honoured, error) {
	var used []Honoured
	var errs []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || Appending(f.Name) {
			return
		}
		name, val, ok := firstSet(vars(f.Name), env)
		if !ok {
			return
		}
		if err := setFromEnv(f, val); err != nil {
			errs = append(errs, fmt.Sprintf("$%s: %v (it sets --%s; fix or unset it)", name, err, f.Name))
			return
		}
		used = append(used, Honoured{Variable: name, Flag: f.Name, Value: val})
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return used, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return used, nil
}

// firstSet is the first of vars (highest precedence first) that is set and not empty.
func firstSet(vars []string, env Lookup) (name, val string, ok bool) {
	for _, v := range vars {
		if val, ok := env(v); ok && strings.TrimSpace(val) != "" {
			return v, val, true
		}
	}
	return "", "", false
}

// AppendValues are the values of an appending flag's variables, in order: every key counts
// (APPTAINER_BIND and APPTAINER_BINDPATH both), and SINGULARITY_KEY only where APPTAINER_KEY is
// unset, as in Apptainer; HPCCTL_KEY comes first.
func AppendValues(flag string, env Lookup) []Honoured {
	var out []Honoured
	add := func(name string) bool {
		v, ok := env(name)
		if ok && strings.TrimSpace(v) != "" {
			out = append(out, Honoured{Variable: name, Flag: flag, Value: v})
		}
		return ok
	}
	add(PrefixHPCCTL + keyOf(flag))
	for _, k := range apptainerKeys(flag) {
		if !add(PrefixApptainer + k) {
			add(PrefixSingularity + k)
		}
	}
	return out
}

// setFromEnv sets a flag from a variable: a list flag takes a comma-separated list, as
// Apptainer's string-slice flags do; a boolean takes 1/0/true/false.
func setFromEnv(f *pflag.Flag, val string) error {
	val = strings.TrimSpace(val)
	if strings.HasSuffix(f.Value.Type(), "Array") || strings.HasSuffix(f.Value.Type(), "Slice") {
		for _, v := range strings.Split(val, ",") {
			if v = strings.TrimSpace(v); v != "" {
				if err := f.Value.Set(v); err != nil {
					return err
				}
			}
		}
	} else if err := f.Value.Set(val); err != nil {
		return err
	}
	f.Changed = true
	return nil
}
