// Package benchutil holds what the benchmark programs under tools/ share: the credential of the
// plain user they measure as, and the median of their samples.
package benchutil

import (
	"cmp"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// Credential returns the credential of the local user name, for running a measured command as
// that user (with only the user's primary group, as a batch job has it).
func Credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w (create it with useradd -m %s, or pass -user \"\")", name, err, name)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}, nil
}

// Percentile returns the p-th percentile (0-100) of v by the nearest-rank-below rule, without
// reordering v. v must not be empty.
func Percentile[T cmp.Ordered](v []T, p int) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// Median is the 50th percentile of v (the lower middle for an even count).
func Median[T cmp.Ordered](v []T) T { return Percentile(v, 50) }
