package isolation

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"

	"github.com/hpcctl/hpcctl/internal/compat"
)

// EnvPrefix marks host variables meant for inside the container: HPCCTLENV_NAME=value sets NAME.
const EnvPrefix = "HPCCTLENV_"

// envPrefixes are the prefixes of host variables meant for inside the container, highest
// precedence first: hpcctl's, then Apptainer's and SingularityCE's (APPTAINERENV_ wins over
// SINGULARITYENV_ in Apptainer too).
var envPrefixes = []string{EnvPrefix, "APPTAINERENV_", "SINGULARITYENV_"}

// Apptainer's names that change PATH instead of setting a variable of that name.
const (
	prependPath = "PREPEND_PATH"
	appendPath  = "APPEND_PATH"
)

// DefaultPath is the container's PATH when the image sets none (Apptainer's default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// imageOwned variables are never taken from the host: a host PATH or LD_LIBRARY_PATH pointing at
// host directories is the classic cause of "works here, fails there".
var imageOwned = map[string]bool{"PATH": true, "LD_LIBRARY_PATH": true, "HOME": true}

// EnvMode says how much of the host environment passes into the container.
type EnvMode string

// Environment modes.
const (
	// EnvHost passes the host environment but for the variables the image owns.
	EnvHost EnvMode = "host"
	// EnvClean passes TERM and HPCCTLENV_NAME variables only (--cleanenv, --containall).
	EnvClean EnvMode = "clean"
	// EnvAllowList passes TERM only (--isolate): nothing set implicitly on the host reaches the
	// program; the image's Env and explicit --env/--env-file settings do.
	EnvAllowList EnvMode = "allowlist"
)

// EnvInput is everything the container's environment is computed from.
type EnvInput struct {
	Host     []string // the host environment, os.Environ() form
	Image    []string // the image's OCI Env
	CleanEnv bool     // --cleanenv: pass no host variable but TERM
	Mode     EnvMode  // "" is EnvHost, or EnvClean with CleanEnv
	Home     string   // HOME inside the container
	// Set holds explicit variables in increasing precedence: --env-file contents, then --env.
	Set []string
	// Extra holds variables hpcctl itself sets (HPCCTL_CONTAINER), below explicit ones.
	Extra []string
	// Job matches the host variables that pass in every mode: the batch job's and the MPI
	// launcher's (SLURM_*, PMIX_*, ...) and the proxies.
	Job JobVariables
	// NoEnv names host variables not to pass (--no-env, Apptainer's $APPTAINER_NOENV).
	NoEnv []string
	// NoEval keeps explicit values as they are (--no-eval); otherwise $NAME in them is
	// evaluated against the container's environment, as Apptainer's action scripts do.
	NoEval bool
}

// EnvResult is the program's environment and the explicit settings in it, which an Apptainer
// image's environment scripts must not override: the wrapper sets them again after sourcing.
type EnvResult struct {
	Env []string
	// Explicit holds the NAME=value settings from HPCCTLENV_/APPTAINERENV_ variables, env files
	// and --env, evaluated, in order.
	Explicit []string
	// Prepend and Append are PREPEND_PATH and APPEND_PATH ("" when unset), already applied to
	// PATH in Env.
	Prepend, Append string
}

// Environment computes the program's environment. Precedence, lowest first: host variables
// (minus PATH, LD_LIBRARY_PATH, HOME, --no-env names, the HPCCTLENV_/APPTAINERENV_/SINGULARITYENV_
// variables and Apptainer's own APPTAINER_*/SINGULARITY_* settings; in the clean modes only TERM
// and the job's variables), the image's Env (PATH defaulting to DefaultPath), HOME, hpcctl's own
// variables, NAME from HPCCTLENV_NAME, APPTAINERENV_NAME or SINGULARITYENV_NAME on the host (the
// first set wins), then Set in order. PREPEND_PATH and APPEND_PATH then extend PATH.
func Environment(in EnvInput) ([]string, error) {
	r, err := ComputeEnv(in)
	return r.Env, err
}

// ComputeEnv is Environment with the explicit settings kept apart (see EnvResult).
func ComputeEnv(in EnvInput) (EnvResult, error) {
	mode := in.Mode
	if mode == "" || (in.CleanEnv && mode == EnvHost) {
		mode = EnvHost
		if in.CleanEnv {
			mode = EnvClean
		}
	}
	noEnv := map[string]bool{}
	for _, n := range in.NoEnv {
		noEnv[n] = true
	}
	var env orderedEnv
	for _, kv := range in.Host {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || imageOwned[name] || noEnv[name] || hostOnly(name) {
			continue
		}
		if mode != EnvHost && name != "TERM" && !in.Job.Match(name) {
			continue
		}
		env.setKV(kv)
	}
	env.set("PATH", DefaultPath)
	for _, kv := range in.Image {
		env.setKV(kv)
	}
	env.set("HOME", in.Home)
	for _, kv := range in.Extra {
		env.setKV(kv)
	}
	var explicit orderedEnv
	if mode != EnvAllowList {
		for _, kv := range prefixed(in.Host) {
			explicit.setKV(kv)
		}
	}
	for _, kv := range in.Set {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return EnvResult{}, fmt.Errorf("environment setting %q: want NAME=value", kv)
		}
		explicit.setKV(kv)
	}
	r := EnvResult{}
	for _, kv := range explicit.list {
		name, val, _ := strings.Cut(kv, "=")
		if !in.NoEval {
			var err error
			if val, err = compat.Expand(val, env.lookup); err != nil {
				return EnvResult{}, fmt.Errorf("environment setting %s: %w (or pass --no-eval to keep it as it is)", name, err)
			}
		}
		switch name {
		case prependPath:
			r.Prepend = val
		case appendPath:
			r.Append = val
		default:
			env.set(name, val)
			r.Explicit = append(r.Explicit, name+"="+val)
		}
	}
	if r.Prepend != "" || r.Append != "" {
		p, _ := env.lookup("PATH")
		env.set("PATH", ExtendPath(r.Prepend, p, r.Append))
	}
	r.Env = env.list
	return r, nil
}

// ExtendPath is PATH with PREPEND_PATH before it and APPEND_PATH after it.
func ExtendPath(prepend, path, app string) string {
	var parts []string
	for _, p := range []string{prepend, path, app} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ":")
}

// hostOnly are host variables that never pass as themselves: the prefixed settings (they pass
// under their own name) and Apptainer's settings, which Apptainer does not forward either.
func hostOnly(name string) bool {
	for _, p := range envPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return strings.HasPrefix(name, compat.PrefixApptainer) || strings.HasPrefix(name, compat.PrefixSingularity)
}

// prefixed are the NAME=value settings of the host's HPCCTLENV_, APPTAINERENV_ and
// SINGULARITYENV_ variables, a name taken from the first prefix that sets it. Apptainer does not
// let its prefixes set HOME (the container's home is its --home); hpcctl's own may.
func prefixed(host []string) []string {
	seen := map[string]bool{}
	var out []string
	for i, p := range envPrefixes {
		for _, kv := range host {
			rest, ok := strings.CutPrefix(kv, p)
			if !ok {
				continue
			}
			name, _, ok := strings.Cut(rest, "=")
			if !ok || name == "" || seen[name] || (i > 0 && name == "HOME") {
				continue
			}
			seen[name] = true
			out = append(out, rest)
		}
	}
	return out
}

// orderedEnv keeps first-seen order, so that the environment is the same from run to run.
type orderedEnv struct {
	list  []string
	index map[string]int
}

func (e *orderedEnv) set(name, value string) { e.setKV(name + "=" + value) }

func (e *orderedEnv) lookup(name string) (string, bool) {
	i, ok := e.index[name]
	if !ok {
		return "", false
	}
	_, v, _ := strings.Cut(e.list[i], "=")
	return v, true
}

func (e *orderedEnv) setKV(kv string) {
	name, _, _ := strings.Cut(kv, "=")
	if e.index == nil {
		e.index = map[string]int{}
	}
	if i, ok := e.index[name]; ok {
		e.list[i] = kv
		return
	}
	e.index[name] = len(e.list)
	e.list = append(e.list, kv)
}

// ParseEnvFile parses an --env-file: NAME=value lines; blank lines and "#" comments are skipped, an
// "export " prefix is allowed, and a value in double or single quotes is unquoted. Values are
// taken as they are: see EvalEnvFile.
func ParseEnvFile(name, content string) ([]string, error) {
	return EvalEnvFile(name, content, nil)
}

// EvalEnvFile is ParseEnvFile that evaluates $NAME, ${NAME} and ${NAME:-word} in bare and
// double-quoted values, as Apptainer does (it runs the file through a shell): a name set earlier
// in the file first, then lookup (the host's environment). Single-quoted values stay as they are.
// A nil lookup evaluates nothing.
func EvalEnvFile(name, content string, lookup compat.Lookup) ([]string, error) {
	var out []string
	var file orderedEnv
	sc := bufio.NewScanner(strings.NewReader(content))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: want NAME=value, got %q", name, n, line)
		}
		var look compat.Lookup
		if lookup != nil {
			look = func(name string) (string, bool) {
				if fv, ok := file.lookup(name); ok {
					return fv, true
				}
				return lookup(name)
			}
		}
		v, err := unquote(strings.TrimSpace(v), look)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		file.set(k, v)
		out = append(out, k+"="+v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// unquote takes the quotes off a value, evaluating variables in a bare or double-quoted one when
// lookup is set. In double quotes, \$ is a literal dollar and the other escapes are Go's.
func unquote(v string, lookup compat.Lookup) (string, error) {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1], nil
	}
	quoted := len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"'
	if quoted {
		body := v[1 : len(v)-1]
		var b strings.Builder
		for body != "" {
			if strings.HasPrefix(body, "\\$") {
				b.WriteString("\\$") // kept for Expand, which makes it a literal $
				body = body[2:]
				continue
			}
			r, _, tail, err := strconv.UnquoteChar(body, '"')
			if err != nil {
				return "", fmt.Errorf("bad quoted value %s: %w", v, err)
			}
			b.WriteRune(r)
			body = tail
		}
		v = b.String()
	}
	if lookup == nil {
		if quoted {
			return strings.ReplaceAll(v, "\\$", "$"), nil
		}
		return v, nil
	}
	return compat.Expand(v, lookup)
}
