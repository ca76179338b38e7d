package audit

import (
	"bufio"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ProbeScript prints, as key=value lines, what a container sees of its environment. It is POSIX
// sh and uses only the shell's builtins and /proc and /sys, so that it runs on busybox and on
// images without coreutils.
const ProbeScript = `e() { printf '%s=%s\n' "$1" "$2"; }
for n in $(export -p | while read -r _ rest; do n=${rest%%=*}; case "$n" in *[!A-Za-z0-9_]*|'') ;; *) echo "$n";; esac; done); do
  eval "[ -n \"\${$n+x}\" ] && e env.$n \"\${$n}\""
done
while read -r id parent dev root mp rest; do
  set -- ${rest#* - }
  e "mount.$mp" "$1 $dev $root"
done </proc/self/mountinfo
for n in /proc/self/ns/*; do
  [ -L "$n" ] && { l=$(ls -l "$n" 2>/dev/null); e "ns.${n##*/}" "${l##*-> }"; }
done
m=""; while read -r a b c; do m="$m$a $b $c;"; done </proc/self/uid_map; e uid_map "$m"
m=""; while read -r a b c; do m="$m$a $b $c;"; done </proc/self/gid_map; e gid_map "$m"
while read -r k a b; do case "$k" in Uid:) e uid "$a";; Gid:) e gid "$a";; esac; done </proc/self/status
read -r h </proc/sys/kernel/hostname; e hostname "$h"
n=""; for i in /sys/class/net/*; do n="$n ${i##*/}"; done; e net "${n# }"
[ -r /etc/timezone ] && { read -r z </etc/timezone; e timezone "$z"; }
while IFS=: read -r k v; do
  case "$k" in "model name"*) [ -z "$cm" ] && cm=${v# } && e cpu.model "$cm";; flags*) [ -z "$cf" ] && cf=${v# } && e cpu.flags "$cf";; esac
done </proc/cpuinfo
e home "$HOME"; e cwd "$(pwd)"
for d in "$HOME"/.local/lib/python*/site-packages "$HOME"/.local/lib/R "$HOME"/R/*/*; do
  [ -d "$d" ] || continue
  l=""; for f in "$d"/*; do [ -e "$f" ] && l="$l ${f##*/}"; done
  [ -n "$l" ] && e "usersite.$d" "${l# }"
done
for p in python3 python; do
  command -v $p >/dev/null 2>&1 && { e sys.path "$($p -c 'import sys; print(":".join(sys.path))' 2>/dev/null)"; break; }
done
e probe done
`

// Probe is what a container saw, one value per key (env.NAME, mount.PATH, ns.NAME, uid_map,
// hostname, net, cpu.model, usersite.DIR, ...).
type Probe map[string]string

// ParseProbe reads the script's output. A probe that did not finish (no shell in the image) is
// empty.
func ParseProbe(out string) Probe {
	p := Probe{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k != "" && !strings.ContainsAny(k, " \t") {
			p[k] = v
		}
	}
	if p["probe"] != "done" {
		return nil
	}
	delete(p, "probe")
	return p
}

// keys returns the probe's keys with a prefix, sorted.
func (p Probe) keys(prefix string) []string {
	var ks []string
	for k := range p {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// Host is what hpcctl sees outside the containers, to tell what came from the host.
type Host struct {
	Env        map[string]string `json:"-"`
	Namespaces map[string]string `json:"namespaces"`
	// Devices are the devices (major:minor) of the host's mounts with their file system type.
	Devices  map[string]string `json:"-"`
	Hostname string            `json:"hostname"`
	Kernel   string            `json:"kernel"`
	CPUModel string            `json:"cpuModel"`
	CPUFlags string            `json:"cpuFlags"`
	Home     string            `json:"-"`
	// JobVariable tells the batch job's and MPI launcher's variables (SLURM_*, PMIX_*, the
	// proxies: hpcctl.conf's job_variables), which pass under every profile on purpose: reported
	// as job variables, not as host leaks. Nil: none.
	JobVariable func(name string) bool `json:"-"`
}

// ProbeHost reads the host's side.
func ProbeHost() Host {
	h := Host{Env: map[string]string{}, Namespaces: map[string]string{}, Devices: map[string]string{}}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			h.Env[k] = v
		}
	}
	h.Home = h.Env["HOME"]
	ents, _ := os.ReadDir("/proc/self/ns")
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/ns/" + e.Name()); err == nil {
			h.Namespaces[e.Name()] = l
		}
	}
	h.Hostname, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	h.CPUModel, h.CPUFlags = cpuInfo()
	h.Devices = hostDevices()
	return h
}

func cpuInfo() (model, flags string) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "model name" && model == "" {
			model = v
		}
		if k == "flags" && flags == "" {
			flags = v
		}
	}
	return model, flags
}

func hostDevices() map[string]string {
	devs := map[string]string{}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return devs
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		_, after, ok := strings.Cut(l, " - ")
		if len(f) < 5 || !ok {
			continue
		}
		devs[f[2]] = strings.Fields(after)[0]
	}
	return devs
}
