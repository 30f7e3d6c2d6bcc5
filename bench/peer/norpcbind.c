/*
 * norpcbind.c - let nfs-ganesha serve NFSv3 on fixed ports with no rpcbind.
 *
 * ganesha registers every program it serves through libntirpc's svc_reg(),
 * which calls rpcb_set(); when no rpcbind answers, ganesha treats the failed
 * registration as fatal and exits.  The benchmark gives ganesha explicit
 * NFS_Port/MNT_Port and tells the client those ports, so the portmapper is
 * not needed - and starting a system-wide rpcbind would change what every
 * other server on the machine sees.
 *
 * Loaded with LD_PRELOAD into ganesha.nfsd only (bench/run.sh builds it as a
 * shared object).  rpcb_set and rpcb_unset are called through libntirpc's
 * PLT, so these definitions take their place: registration "succeeds" and
 * nothing is sent anywhere.  No state, no threads.
 */
#include <stdbool.h>

struct netconfig;
struct netbuf;

/* Returns true (success, as libntirpc's bool_t) without contacting rpcbind. */
bool rpcb_set(unsigned long prog, unsigned long vers, const struct netconfig *nconf,
              const struct netbuf *addr)
{
    (void)prog;
    (void)vers;
    (void)nconf;
    (void)addr;
    return true;
}

/* Returns true: there is no registration to remove. */
bool rpcb_unset(unsigned long prog, unsigned long vers, const struct netconfig *nconf)
{
    (void)prog;
    (void)vers;
    (void)nconf;
    return true;
}
