/*
 * fsutil.h - small file-system helpers shared by the layers.
 */
#ifndef BNFS_FSUTIL_H
#define BNFS_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * mkdir -p: create path and its missing parents (parents 0755, the last
 * component 0700: state and cache folders are the daemon's own).  0, or an
 * errno (ENAMETOOLONG for a path over 4095 bytes).
 */
int fs_mkdirs(const char *path);

/*
 * pread until len bytes are read or the file ends (EINTR and short reads
 * go on); *got is the number read, short only at the end.  0 or an errno.
 */
int fs_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got);

/*
 * pwrite all len bytes at off (EINTR and short writes go on).  0, or the
 * errno that stopped it (the range may then be partly written).
 */
int fs_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

#endif
