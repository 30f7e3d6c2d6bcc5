/*
 * nfsmount - the guest's NFS mount helper, linked statically into the
 * kernel-test initramfs.  busybox's mount speaks the old binary
 * nfs_mount_data ABI; the kernel's text option parser (fs/nfs/fs_context.c)
 * is what mount.nfs uses and what users get, so pass the options through
 * unchanged: nfsmount 10.0.2.2:/export /mnt/a vers=3,proto=tcp,addr=10.0.2.2
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: nfsmount SERVER:/PATH DIR OPTIONS\n");
		return 2;
	}
	if (mount(argv[1], argv[2], "nfs", 0, argv[3]) != 0) {
		fprintf(stderr, "nfsmount: %s on %s (%s): %s\n", argv[1], argv[2], argv[3],
			strerror(errno));
		return 1;
	}
	return 0;
}
