/*
 * fsutil.h - small file-system helpers shared by the layers.
 */
#ifndef BNFS_FSUTIL_H
#define BNFS_FSUTIL_H

/*
 * mkdir -p: create path and its missing parents (parents 0755, the last
 * component 0700: state and cache folders are the daemon's own).  0, or an
 * errno (ENAMETOOLONG for a path over 4095 bytes).
 */
int fs_mkdirs(const char *path);

#endif
