package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
)

// Leak is one way the host reaches into a container.
type Leak struct {
	// Kind is what reaches in; a replay's causes also have the kinds of what changed since the
	// record (LeakImage, LeakHost).
	Kind LeakKind `json:"kind"`
	// Name is the variable, path or namespace.
	Name string `json:"name"`
	// Text says it in words.
	Text string `json:"text"`
	// value is the leaked value, to find it in what the program printed; never reported.
	value string
}

// LeakKind is what kind of host leak a Leak is; reports print it and sort by it.
type LeakKind string

// Leak kinds.
const (
	LeakEnv        LeakKind = "env"        // a host variable passed through
	LeakSearchPath LeakKind = "searchpath" // a variable that changes where code is found (PYTHONPATH)
	LeakLocale     LeakKind = "locale"     // LANG, LC_*, TZ
	LeakJob        LeakKind = "job"        // the batch job's variable, passed on purpose: not a leak
	LeakMount      LeakKind = "mount"      // a host path of the user's
	LeakHostFile   LeakKind = "hostfile"   // the host's system files (/etc/hosts, time zone)
	LeakSystem     LeakKind = "system"     // kernel interfaces (/dev, /sys, /proc)
	LeakUserSite   LeakKind = "usersite"   // a user site directory (~/.local/lib/python3.X)
	LeakNamespace  LeakKind = "namespace"  // a namespace shared with the host
	LeakHostname   LeakKind = "hostname"   // the host's name
	LeakNetwork    LeakKind = "network"    // the host's network interfaces
	// A replay's causes: what changed since the record.
	LeakImage LeakKind = "image"
	LeakHost  LeakKind = "host"
)

// causeOrder ranks the kinds of causes, likely ones first: what changes results most often
// (user site directories, search paths) before kernel interfaces and job variables.
var causeOrder = []LeakKind{LeakImage, LeakHost, LeakUserSite, LeakSearchPath, LeakEnv, LeakLocale, LeakMount,
	LeakHostname, LeakNetwork, LeakHostFile, LeakNamespace, LeakSystem, LeakJob}

// key identifies a leak across profiles.
func (l Leak) key() string { return string(l.Kind) + "\x00" + l.Name }

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
			ls = append(ls, Leak{Kind: LeakJob, Name: name, Text: "job variable " + name + " (the batch job's or MPI launcher's)", value: hv})
		case isSearchPath(name):
			ls = append(ls, Leak{Kind: LeakSearchPath, Name: name, Text: name + " from the host", value: hv})
		case isLocale(name):
			ls = append(ls, Leak{Kind: LeakLocale, Name: name, Text: "locale " + name + " from the host", value: hv})
		default:
			ls = append(ls, Leak{Kind: LeakEnv, Name: name, Text: "host variable " + name + " passed through", value: hv})
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
		ls = append(ls, Leak{Kind: LeakUserSite, Name: short, Text: short + " visible" + why + ": " + clip(p[k], 60)})
	}
	for _, k := range p.keys("ns.") {
		n := strings.TrimPrefix(k, "ns.")
		if strings.HasSuffix(n, "_for_children") || h.Namespaces[n] == "" || h.Namespaces[n] != p[k] {
			continue
		}
		ls = append(ls, Leak{Kind: LeakNamespace, Name: n, Text: "shares the host's " + n + " namespace"})
	}
	if p["hostname"] != "" && p["hostname"] == h.Hostname {
		ls = append(ls, Leak{Kind: LeakHostname, Name: "hostname", Text: "host name " + h.Hostname, value: h.Hostname})
	}
	if net := p["net"]; net != "" && net != "lo" {
		ls = append(ls, Leak{Kind: LeakNetwork, Name: "net", Text: "host network interfaces: " + net})
	}
	return ls
}

// mountKind tells the user's files (mount) from the host's system files (/etc/hosts, time
// zone: hostfile) and kernel interfaces (/dev, /sys: system), which rarely change results.
func mountKind(mp string) LeakKind {
	for _, dir := range []string{"/dev", "/sys", "/proc"} {
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			return LeakSystem
		}
	}
	if strings.HasPrefix(mp, "/etc/") || strings.HasPrefix(mp, "/usr/share/zoneinfo/") {
		return LeakHostFile
	}
	return LeakMount
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
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].Likely != cs[j].Likely {
			return cs[i].Likely
		}
		return slices.Index(causeOrder, cs[i].Kind) < slices.Index(causeOrder, cs[j].Kind)
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
