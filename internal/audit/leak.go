package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// Leak is one way the host reaches into a container.
type Leak struct {
	// Kind is env, searchpath, locale, job, mount, hostfile, system, usersite, namespace,
	// hostname or network. A job variable is the batch job's, passed on purpose: not a leak.
	Kind string `json:"kind"`
	// Name is the variable, path or namespace.
	Name string `json:"name"`
	// Text says it in words.
	Text string `json:"text"`
	// value is the leaked value, to find it in what the program printed; never reported.
	value string
}

// key identifies a leak across profiles.
func (l Leak) key() string { return l.Kind + "\x00" + l.Name }

// shellMade are variables the probe's own shell sets.
var shellMade = map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}

// searchPaths are variables that change where programs find code and libraries.
func isSearchPath(name string) bool {
	switch name {
	case "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONSTARTUP", "LD_LIBRARY_PATH", "LD_PRELOAD",
		"PERL5LIB", "JULIA_LOAD_PATH", "JULIA_DEPOT_PATH", "CLASSPATH", "NODE_PATH", "GEM_PATH", "GEM_HOME":
		return true
	}
	return strings.HasPrefix(name, "R_LIBS") || strings.HasPrefix(name, "CONDA_")
}

func isLocale(name string) bool {
	return name == "LANG" || name == "LANGUAGE" || name == "TZ" || strings.HasPrefix(name, "LC_")
}

// pseudoFS are file systems a container gets its own instance of.
var pseudoFS = map[string]bool{"proc": true, "sysfs": true, "devpts": true, "mqueue": true, "cgroup": true, "cgroup2": true, "squashfs": true, "overlay": true}

// Leaks lists what came from the host in a probe. imageEnv is the image's own environment
// (NAME=value): a variable the container holds with the image's value is the image's, even when
// the host happens to set the same.
func Leaks(p Probe, h Host, imageEnv []string) []Leak {
	var ls []Leak
	image := envMap(imageEnv)
	for _, k := range p.keys("env.") {
		name := strings.TrimPrefix(k, "env.")
		hv, onHost := h.Env[name]
		if iv, set := image[name]; !onHost || hv != p[k] || shellMade[name] || (set && iv == p[k]) {
			continue
		}
		switch {
		case h.JobVariable != nil && h.JobVariable(name):
			ls = append(ls, Leak{Kind: "job", Name: name, Text: "job variable " + name + " (the batch job's or MPI launcher's)", value: hv})
		case isSearchPath(name):
			ls = append(ls, Leak{Kind: "searchpath", Name: name, Text: name + " from the host", value: hv})
		case isLocale(name):
			ls = append(ls, Leak{Kind: "locale", Name: name, Text: "locale " + name + " from the host", value: hv})
		default:
			ls = append(ls, Leak{Kind: "env", Name: name, Text: "host variable " + name + " passed through", value: hv})
		}
	}
	home := p["home"]
	homeBound := false
	for _, k := range p.keys("mount.") {
		mp := strings.TrimPrefix(k, "mount.")
		f := strings.Fields(p[k])
		// The root is the image (a sandbox directory is a host path too, but the image's own).
		if len(f) < 3 || mp == "/" || pseudoFS[f[0]] || strings.HasPrefix(f[0], "fuse") || h.Devices[f[1]] == "" {
			continue
		}
		if mp == home {
			homeBound = true
		}
		ls = append(ls, Leak{Kind: mountKind(mp), Name: mp, Text: "host path " + f[2] + " visible at " + mp + describeMount(mp, p)})
	}
	for _, k := range p.keys("usersite.") {
		dir := strings.TrimPrefix(k, "usersite.")
		short := dir
		if home != "" && strings.HasPrefix(dir, home+"/") {
			short = "~" + strings.TrimPrefix(dir, home)
		}
		why := ""
		if homeBound {
			why = " (home bound)"
		}
		ls = append(ls, Leak{Kind: "usersite", Name: short, Text: short + " visible" + why + ": " + clip(p[k], 60)})
	}
	for _, k := range p.keys("ns.") {
		n := strings.TrimPrefix(k, "ns.")
		if strings.HasSuffix(n, "_for_children") || h.Namespaces[n] == "" || h.Namespaces[n] != p[k] {
			continue
		}
		ls = append(ls, Leak{Kind: "namespace", Name: n, Text: "shares the host's " + n + " namespace"})
	}
	if p["hostname"] != "" && p["hostname"] == h.Hostname {
		ls = append(ls, Leak{Kind: "hostname", Name: "hostname", Text: "host name " + h.Hostname, value: h.Hostname})
	}
	if net := p["net"]; net != "" && net != "lo" {
		ls = append(ls, Leak{Kind: "network", Name: "net", Text: "host network interfaces: " + net})
	}
	return ls
}

// mountKind tells the user's files (mount) from the host's system files (/etc/hosts, time
// zone: hostfile) and kernel interfaces (/dev, /sys: system), which rarely change results.
func mountKind(mp string) string {
	for _, dir := range []string{"/dev", "/sys", "/proc"} {
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			return "system"
		}
	}
	if strings.HasPrefix(mp, "/etc/") || strings.HasPrefix(mp, "/usr/share/zoneinfo/") {
		return "hostfile"
	}
	return "mount"
}

func describeMount(mp string, p Probe) string {
	switch {
	case mp == p["home"]:
		return " (home)"
	case mp == "/tmp" || mp == "/var/tmp":
		return " (shared tmp)"
	case mp == p["cwd"]:
		return " (working directory)"
	}
	return ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Redact replaces the values of environment variables in a probe by a short digest (equal values
// stay comparable); the rest is kept.
func Redact(p Probe) Probe {
	r := Probe{}
	for k, v := range p {
		if strings.HasPrefix(k, "env.") {
			v = RedactValue(v)
		}
		r[k] = v
	}
	return r
}

// RedactValue is a value's stand-in in reports: a short digest.
func RedactValue(v string) string {
	sum := sha256.Sum256([]byte(v))
	return "redacted:" + hex.EncodeToString(sum[:6])
}

// sortLeaks puts the likely causes first.
func sortLeaks(cs []Cause) {
	rank := map[string]int{"usersite": 0, "searchpath": 1, "env": 2, "locale": 3, "mount": 4, "hostname": 5, "network": 6, "hostfile": 7, "namespace": 8, "system": 9, "job": 10}
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].Likely != cs[j].Likely {
			return cs[i].Likely
		}
		return rank[cs[i].Kind] < rank[cs[j].Kind]
	})
}

// envMap turns NAME=value entries into a map.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if name, value, ok := strings.Cut(kv, "="); ok {
			m[name] = value
		}
	}
	return m
}
