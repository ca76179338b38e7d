// Package layer flattens the layers of an OCI image, top layer first, into one deterministic stream of
// squashfs entries, applying whiteouts, opaque directories, hardlinks and path safety on the way.
//
// The result is the tree that extracting the layers in order onto an empty directory would give
// (what containerd and the OCI image spec describe), computed without writing anything to disk:
//
//   - An upper layer wins: its entry at a path hides the lower ones. Directories merge: both layers
//     contribute children, the upper directory's attributes win. A directory that a layer only
//     implies (it has entries below it but no entry of its own) keeps a lower layer's attributes.
//   - An upper non-directory at P hides everything lower layers have at P and below (a file
//     replacing a directory); an upper directory or implied directory hides a lower non-directory.
//   - ".wh.NAME" hides NAME and everything below it in lower layers; ".wh..wh..opq" hides the lower
//     contents of its directory but not the directory itself. Markers act on lower layers only,
//     wherever they stand in the tar, and are never emitted. ".wh..wh.*" aufs metadata is skipped.
//     A directory implied only by markers, or by entries that upper layers hid, is emitted as
//     mode 0755 root:root, time 0, like the directory containerd makes for a missing parent.
//   - Duplicates within a layer: tar semantics, the last entry wins; a later non-directory removes
//     what the same layer put at or below its path before it, and an entry below a path makes that
//     path a directory. This needs to know the later entries when the first one streams past, which
//     is why each layer is read twice: a header-only index pass (layers in parallel) and the
//     emitting pass. The index holds names only, never content.
//   - Hardlinks: a tar hardlink shares the inode its target path names at that point of extraction:
//     the target's entry earlier in the same layer, or else whatever the layers below have at that
//     path. If that inode's own entry is visible in the final tree, the link is a TypeHardlink entry
//     to it. If not (an upper layer whited out or replaced the target, or a later duplicate in the
//     same layer did), the content still streams past in the layer that holds it, and the index
//     says which visible links need it: the link with the smallest path receives the content as a
//     regular entry (the target's mode, owner and times) and the other links point to it. A link
//     whose target does not exist at that point (missing, removed by a marker or a replacement, or
//     a directory) is an error naming the layer, the link and the target, even if an upper layer
//     hides the link, because extraction would fail on it.
//   - Names: a leading "./" or "/" is stripped (absolute names are relative to the image root, as in
//     containerd). Any ".." component is an error, not cleaned: a tar that uses ".." is hostile or
//     broken, and repairing it silently would put content where nobody wrote it. Components over 255
//     bytes, NUL bytes, and whiteout names used as directories are errors too. Symlink targets are
//     stored verbatim and never followed: they resolve inside the container at run time, so a
//     symlink in a lower layer never redirects an upper layer's entries.
//   - Entries keep owner, mode (setuid, setgid, sticky), mtime and the PAX "SCHILY.xattr." records in
//     the user., trusted. and security. namespaces. Device nodes are kept by default.
//   - Blobs are tar, tar+gzip or tar+zstd, detected by magic bytes. A truncated or corrupt stream,
//     including a bad gzip or zstd checksum after the tar end, is an error naming the layer, found
//     in the index pass before any entry reaches the sink.
//
// The order of entries is a function of the layers alone: layers top first, entries in tar order,
// then the implied directories sorted.
package layer
