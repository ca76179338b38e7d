package hostfacts

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"github.com/hpcctl/hpcctl/internal/isolation"
)

// Subordinate IDs files, as newuidmap and newgidmap read them.
const (
	SubUIDFile = "/etc/subuid"
	SubGIDFile = "/etc/subgid"
)

// Fakeroot is the --fakeroot mapping of the user name (uid:gid): their first /etc/subuid and
// /etc/subgid ranges, or, where either is missing, the user alone (ranged false).
func Fakeroot(name string, uid, gid int) (fr *isolation.Fakeroot, ranged bool) {
	u := SubordinateRange(SubUIDFile, name, uid)
	g := SubordinateRange(SubGIDFile, name, gid)
	if u == nil || g == nil {
		return &isolation.Fakeroot{}, false
	}
	return &isolation.Fakeroot{SubUID: u, SubGID: g}, true
}

// SubordinateRange reads the first range of name (or of the numeric id) in a file of
// /etc/subuid's format ("name:start:count" lines); nil when there is none.
func SubordinateRange(path, name string, id int) *isolation.IDRange {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.ParseUint(parts[1], 10, 32)
		count, err2 := strconv.ParseUint(parts[2], 10, 32)
		if err1 == nil && err2 == nil && count > 0 {
			return &isolation.IDRange{Start: uint32(start), Count: uint32(count)}
		}
	}
	return nil
}
