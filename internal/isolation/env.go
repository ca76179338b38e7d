package isolation

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// EnvPrefix marks host variables meant for inside the container: HPCCTLENV_NAME=value sets NAME.
const EnvPrefix = "HPCCTLENV_"

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
}

// Environment computes the program's environment. Precedence, lowest first: host variables
// (minus PATH, LD_LIBRARY_PATH, HOME and HPCCTLENV_*; in the clean modes only TERM and the job's
// variables), the image's Env (PATH defaulting to
// DefaultPath), HOME, hpcctl's own variables, HPCCTLENV_NAME from the host, then Set in order.
func Environment(in EnvInput) ([]string, error) {
	mode := in.Mode
	if mode == "" || (in.CleanEnv && mode == EnvHost) {
		mode = EnvHost
		if in.CleanEnv {
			mode = EnvClean
		}
	}
	var env orderedEnv
	for _, kv := range in.Host {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || imageOwned[name] || strings.HasPrefix(name, EnvPrefix) {
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
	for _, kv := range in.Host {
		if mode == EnvAllowList {
			break
		}
		if rest, ok := strings.CutPrefix(kv, EnvPrefix); ok && strings.Contains(rest, "=") && !strings.HasPrefix(rest, "=") {
			env.setKV(rest)
		}
	}
	for _, kv := range in.Set {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("environment setting %q: want NAME=value", kv)
		}
		env.setKV(kv)
	}
	return env.list, nil
}

// orderedEnv keeps first-seen order, so that the environment is the same from run to run.
type orderedEnv struct {
	list  []string
	index map[string]int
}

func (e *orderedEnv) set(name, value string) { e.setKV(name + "=" + value) }

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
// "export " prefix is allowed, and a value in double or single quotes is unquoted.
func ParseEnvFile(name, content string) ([]string, error) {
	var out []string
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
		v, err := unquote(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		out = append(out, k+"="+v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

func unquote(v string) (string, error) {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1], nil
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		s, err := strconv.Unquote(v)
		if err != nil {
			return "", fmt.Errorf("bad quoted value %s: %w", v, err)
		}
		return s, nil
	}
	return v, nil
}
