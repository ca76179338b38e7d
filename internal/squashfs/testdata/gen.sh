#!/bin/sh
# Regenerates the small seed images FuzzOpen and the corruption tests start from.
# The tree and every time stamp are fixed, so the images are byte-for-byte reproducible
# with the same squashfs-tools version (4.5.1 made the checked-in ones). The uncompressed-meta
# image stores its tables uncompressed, so that mutations reach the structures themselves.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
cd "$tree"
chmod 755 .
mkdir -p dir/sub empty-dir
printf 'hello\n' > a
yes 'squashfs seed line' | head -c 5000 > b
printf 'deep\n' > dir/sub/c
: > e
head -c 3 /dev/zero > z
dd if=/dev/zero of=s bs=4096 count=3 status=none
printf 'data' | dd of=s bs=1 seek=5000 conv=notrunc status=none
ln a h
ln -s a l
ln -s ../../a dir/sub/up
mkfifo p
chmod 4755 a
chmod 1777 empty-dir
setfattr -n user.short -v 1 a
setfattr -n user.long -v "$(head -c 300 /dev/zero | tr '\0' v)" b
setfattr -n user.long -v "$(head -c 300 /dev/zero | tr '\0' v)" dir/sub/c
common="-b 4K -all-root -mkfs-time 0 -all-time 0 -noappend -no-progress -quiet -nopad"
for comp in gzip xz lz4 zstd; do
	mksquashfs . "$here/$comp.sqfs" $common -comp "$comp" -p 'null c 0666 0 0 1 3'
done
mksquashfs . "$here/uncompressed-meta.sqfs" $common -noI -noF -noX -p 'null c 0666 0 0 1 3'
