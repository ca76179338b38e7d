// Package spec is the pure data of one container launch: namespaces, ID maps, the root file system,
// ordered mounts, environment, argv and working directory, checked by Validate.
package spec

// Spec describes one container launch. Profiles and flags produce it (internal/isolation); only the
// launcher and its child act on it, applying Mounts in order.
type Spec struct {
	Namespaces Namespaces `json:"namespaces"`
	// UIDMap and GIDMap are written for a user namespace; they map the user's own IDs only, so no
	// setuid helper (newuidmap) is needed.
	UIDMap []IDMap `json:"uidMap,omitempty"`
	GIDMap []IDMap `json:"gidMap,omitempty"`
	RootFS RootFS  `json:"rootfs"`
	// Mounts are applied in order on top of the root file system, before pivot_root.
	Mounts []Mount `json:"mounts,omitempty"`
	// Identity is merged into the container's /etc/passwd and /etc/group; nil leaves them alone.
	Identity *Identity `json:"identity,omitempty"`
	// Env is the program's whole environment ("NAME=value").
	Env []string `json:"env"`
	// Args is the program and its arguments; Args[0] is looked up in the container's PATH.
	Args []string `json:"args"`
	// Cwd is the working directory inside the container.
	Cwd string `json:"cwd"`
	// CwdFallback is used, with a warning, when Cwd does not exist in the container.
	CwdFallback string `json:"cwdFallback,omitempty"`
	// Hostname is set when Namespaces.UTS is true.
	Hostname string `json:"hostname,omitempty"`
	// WritableRoot leaves the root file system writable (changes go to a private tmpfs and vanish).
	WritableRoot bool `json:"writableRoot,omitempty"`
	// KeepCapabilities keeps the capability set the launching process holds (root running a
	// container as root, as Apptainer does); otherwise every capability is cleared before exec.
	KeepCapabilities bool `json:"keepCapabilities,omitempty"`
	// DropCapabilities are capability numbers root gives up although it keeps the others
	// (--drop-caps, or --no-privs --add-caps): dropped from every set, the bounding set included,
	// so that the program cannot regain them.
	DropCapabilities []uint `json:"dropCapabilities,omitempty"`
	// NoNewPrivileges sets PR_SET_NO_NEW_PRIVS before exec.
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
	// Umask is set before exec; nil keeps the launching process's.
	Umask *uint32 `json:"umask,omitempty"`
	// Debug asks the setup stage to report each step it takes inside the namespaces (every
	// mount, bind, pivot_root, the privilege drop) to the launcher, which logs them (hpcctl -d).
	Debug bool `json:"debug,omitempty"`
	// Overlays are extra layers of the root file system: at most one writable directory (changes
	// persist there) and any number of read-only ones, above the image.
	Overlays []Overlay `json:"overlays,omitempty"`
	// Images are squashfs images besides the root's, mounted read-only the way the root image
	// is (the kernel as root, squashfuse_ll in a user namespace) for KindImage mounts (bind
	// image-src=, id=) and image overlays.
	Images []Image `json:"images,omitempty"`
	// Instance keeps the container's init (it needs Namespaces.PID) running after the program
	// exits, until a signal stops it, and makes a missing program (an image without a
	// /.singularity.d/startscript) no error: an instance stays up until stopped, as Apptainer's do.
	Instance bool `json:"instance,omitempty"`
}

// Image is a squashfs image file, or a squashfs partition of a SIF, other than the root's.
type Image struct {
	// Path is the file on the host.
	Path string `json:"path"`
	// Partition is the SIF object ID asked for (bind option id=), 0 for the SIF's root
	// partition or a bare squashfs file; the launcher's caller finds Offset and Size from it.
	Partition int `json:"partition,omitempty"`
	// Offset and Size locate the squashfs inside Path (0, 0: the whole file).
	Offset int64 `json:"offset,omitempty"`
	Size   int64 `json:"size,omitempty"`
}

// Overlay is a host directory layered over the image. A writable one holds upper/ and work/
// subdirectories (created when missing); a read-only one is an extra lower layer as it is.
type Overlay struct {
	Dir      string `json:"dir"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	// Image, when not 0, makes the layer Images[Image-1] (Dir then names that image file, for
	// messages); an image layer is read-only.
	Image int `json:"image,omitempty"`
}

// Namespaces says which namespaces the container gets; false shares the host's.
type Namespaces struct {
	User  bool `json:"user,omitempty"`
	Mount bool `json:"mount,omitempty"`
	PID   bool `json:"pid,omitempty"`
	Net   bool `json:"net,omitempty"`
	UTS   bool `json:"uts,omitempty"`
	IPC   bool `json:"ipc,omitempty"`
}

// IDMap maps Size IDs from HostID outside to ContainerID inside a user namespace.
type IDMap struct {
	ContainerID uint32 `json:"containerID"`
	HostID      uint32 `json:"hostID"`
	Size        uint32 `json:"size"`
}

// Backend is how the image becomes the root file system.
type Backend string

// Backends.
const (
	// BackendLoop mounts the squashfs partition with the kernel on a read-only, autoclear loop device.
	BackendLoop Backend = "loop"
	// BackendSquashfuse mounts it with squashfuse_ll, inside a user namespace.
	BackendSquashfuse Backend = "squashfuse"
	// BackendDir uses a directory (a sandbox image, or an image extracted with --unsquash).
	BackendDir Backend = "dir"
)

// RootFS names the image and how to mount it.
type RootFS struct {
	Backend Backend `json:"backend"`
	// Image is the image file or sandbox directory on the host.
	Image string `json:"image"`
	// Offset and Size locate the squashfs partition inside Image (0, 0: the whole file).
	Offset int64 `json:"offset,omitempty"`
	Size   int64 `json:"size,omitempty"`
	// Writable makes a sandbox directory (BackendDir) itself the container root, read-write
	// (--writable): no overlay, mount points it lacks are skipped with a warning, the merged
	// /etc/passwd and /etc/group are bound over its own.
	Writable bool `json:"writable,omitempty"`
}

// MountKind is what a Mount mounts.
type MountKind string

// Mount kinds.
const (
	KindBind  MountKind = "bind"
	KindProc  MountKind = "proc"
	KindSysfs MountKind = "sysfs"
	KindTmpfs MountKind = "tmpfs"
	// KindDevpts is a new devpts instance (/dev/pts of a minimal /dev); where the kernel refuses
	// one, the host's /dev/pts is bound instead.
	KindDevpts MountKind = "devpts"
	// KindImage binds Source, a directory inside the squashfs Images[Image-1], read-only.
	KindImage MountKind = "image"
	// KindSymlink creates a symbolic link at Destination pointing to Source; it is only made
	// inside a tmpfs that an earlier Mount put there (a minimal /dev's /dev/fd).
	KindSymlink MountKind = "symlink"
)

// Mount is one mount inside the container.
type Mount struct {
	Kind MountKind `json:"kind"`
	// Source is a host path for binds (a path inside the container with SourceInside), the
	// link's target for symlinks, unused otherwise.
	Source string `json:"source,omitempty"`
	// SourceInside binds a path of the container onto another (or onto itself, read-only: the
	// container's own /proc/sys).
	SourceInside bool `json:"sourceInside,omitempty"`
	// Destination is an absolute path inside the container; it is resolved inside the container
	// root (symlinks cannot lead out of it) and created when missing.
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
	// Recursive binds the submounts of Source too (rbind).
	Recursive bool `json:"recursive,omitempty"`
	// Optional mounts are skipped when their source or mount point is missing (ENOENT: a host
	// without /etc/localtime); any other failure (EACCES, EPERM) fails the launch, naming the mount.
	Optional bool `json:"optional,omitempty"`
	// Data holds file system options (tmpfs "size=64m").
	Data string `json:"data,omitempty"`
	// Image is the 1-based index in Spec.Images of a KindImage mount's image.
	Image int `json:"image,omitempty"`
}

// Identity is the user's entries for the container's /etc/passwd and /etc/group.
type Identity struct {
	// Passwd is the user's passwd line; lines for the same name or UID are replaced.
	Passwd string `json:"passwd"`
	// Groups are group lines; lines for the same group name or GID are replaced.
	Groups []string `json:"groups,omitempty"`
	// AddMissing adds only the lines whose name and ID the image lacks, keeping the image's own
	// (root's entry: an image may give root another shell or home, but one without any breaks
	// programs that look up the user they run as).
	AddMissing bool `json:"addMissing,omitempty"`
}
