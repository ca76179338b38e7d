package compat

import (
	"fmt"
	"strings"
)

// capNames are the Linux capabilities by number (linux/capability.h, up to CAP_CHECKPOINT_RESTORE).
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// ParseCapabilities parses a comma list of capabilities as Apptainer's --add-caps and
// --drop-caps take it: names with or without CAP_, in any case, or "all".
func ParseCapabilities(list string) ([]uint, error) {
	var out []uint
	seen := map[uint]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.ToUpper(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if name == "ALL" {
			out = out[:0]
			for i := range capNames {
				out = append(out, uint(i))
			}
			return out, nil
		}
		n, ok := capNumber(strings.TrimPrefix(name, "CAP_"))
		if !ok {
			return nil, fmt.Errorf("unknown capability %q (names such as CAP_NET_RAW, or all)", name)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

// AllCapabilitiesBut is every known capability except keep, in order.
func AllCapabilitiesBut(keep []uint) []uint {
	k := map[uint]bool{}
	for _, c := range keep {
		k[c] = true
	}
	var out []uint
	for i := range capNames {
		if !k[uint(i)] {
			out = append(out, uint(i))
		}
	}
	return out
}

func capNumber(name string) (uint, bool) {
	for i, n := range capNames {
		if n == name {
			return uint(i), true
		}
	}
	return 0, false
}
