// Package hostfacts finds out what a launch depends on in the machine and the user who launches:
// the user's passwd and group entries (through NSS: clusters keep their users in LDAP or SSSD),
// the MPI job's session directories, and which mount backend can serve an image here. The CLI
// asks, the launcher and isolation take the answers as data.
package hostfacts

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/isolation"
)

// Host describes the launching user. The pure-Go user database reads only /etc/passwd and
// /etc/group; clusters keep their users in LDAP or SSSD, so getent (which goes through NSS) and
// then $USER and $HOME are asked before giving up.
func Host(ctx context.Context) (isolation.Host, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return isolation.Host{}, fmt.Errorf("current directory: %w (cd to a directory that exists)", err)
	}
	h := isolation.Host{UID: os.Getuid(), GID: os.Getgid(), Env: os.Environ(), Cwd: cwd}
	h.User, err = lookupUser(ctx, h.UID)
	if err != nil {
		return h, err
	}
	gids, err := os.Getgroups()
	if err != nil {
		return h, fmt.Errorf("list your groups: %w", err)
	}
	h.JobDirs = jobDirs(h.Env, h.UID)
	names := lookupGroups(ctx, append([]int{h.GID}, gids...))
	for _, gid := range append([]int{h.GID}, gids...) {
		if name := names[gid]; name != "" {
			h.Groups = append(h.Groups, isolation.Group{Name: name, GID: gid})
		}
	}
	return h, nil
}

// jobDirs are the MPI launcher's session directories an MPI rank must see (isolation.Host.JobDirs):
// those its environment names that are directories owned by the user, so that the environment
// cannot make hpcctl bind anything else.
func jobDirs(env []string, uid int) []string {
	var dirs []string
	for _, d := range isolation.JobDirCandidates(env) {
		var st unix.Stat_t
		if unix.Lstat(d, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == uid {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

func lookupUser(ctx context.Context, uid int) (isolation.User, error) {
	id := strconv.Itoa(uid)
	if f := Entry(ctx, "passwd", id); len(f) == 7 {
		return isolation.User{Name: f[0], Gecos: f[4], Home: f[5], Shell: f[6]}, nil
	}
	if u, err := user.LookupId(id); err == nil {
		return isolation.User{Name: u.Username, Gecos: u.Name, Home: u.HomeDir}, nil
	}
	name, home := os.Getenv("USER"), os.Getenv("HOME")
	if name == "" || home == "" {
		return isolation.User{}, fmt.Errorf("cannot find a user database entry for your user ID %d, and $USER or $HOME is empty: set them", uid)
	}
	return isolation.User{Name: name, Home: home}, nil
}

// lookupGroups names the groups: from /etc/group, then with one getent(1) for the rest.
func lookupGroups(ctx context.Context, gids []int) map[int]string {
	names := map[int]string{}
	var missing []string
	for _, gid := range gids {
		if f := fileEntry("/etc/group", strconv.Itoa(gid)); f != nil {
			names[gid] = f[0]
		} else {
			missing = append(missing, strconv.Itoa(gid))
		}
	}
	if len(missing) == 0 {
		return names
	}
	out, _ := exec.CommandContext(ctx, "getent", append([]string{"group"}, missing...)...).Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		if gid, err := strconv.Atoi(getField(f, 2)); err == nil {
			names[gid] = f[0]
		}
	}
	return names
}

func getField(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// Entry returns the fields of the entry for key (an ID) in an NSS database, passwd or group;
// nil when there is none. /etc files are read directly (the common case, and no process to
// start); other sources go through getent(1).
func Entry(ctx context.Context, db, key string) []string {
	if f := fileEntry("/etc/"+db, key); f != nil {
		return f
	}
	out, err := exec.CommandContext(ctx, "getent", db, key).Output()
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]), ":")
}

// fileEntry finds the line of a passwd or group file whose ID (third field) is key.
func fileEntry(file, key string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[2] == key {
			return f
		}
	}
	return nil
}
