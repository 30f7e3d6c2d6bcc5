/*
 * pmap.c - registration with the local rpcbind (RFC 1833), so that clients
 * which ask the portmapper (mount(8) for MOUNT, some NFS clients) find us.
 *
 * libtirpc's rpcb_set/rpcb_unset do the work, but when no rpcbind runs they
 * only give up after a long RPC timeout.  So each call first probes, with a
 * short deadline, whether rpcbind answers on its local socket or on
 * 127.0.0.1:111; a host without rpcbind costs milliseconds.
 *
 * Threads: called from the daemon's start-up and shut-down path; no state.
 */
#include "rpc/oncrpc.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <netconfig.h>
#include <rpc/rpcb_clnt.h>

#define PROBE_TIMEOUT_MS 300

/* Nonblocking connect to sa with a deadline.  Returns 0 or a positive errno. */
static int probe_connect(const struct sockaddr *sa, socklen_t salen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int err = 0;
    if (connect(fd, sa, salen) < 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n = poll(&p, 1, PROBE_TIMEOUT_MS);
            if (n == 0) {
                err = ETIMEDOUT;
            } else if (n < 0) {
                err = errno;
            } else {
                socklen_t l = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                    err = errno;
            }
        }
    }
    close(fd);
    return err;
}

/* 0 if a local rpcbind accepts connections, else ECONNREFUSED or ENOENT. */
static int rpcbind_reachable(void)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", "/run/rpcbind.sock");
    if (probe_connect((struct sockaddr *)&un, sizeof(un)) == 0)
        return 0;

    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(111)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int err = probe_connect((struct sockaddr *)&in, sizeof(in));
    if (err == 0)
        return 0;
    return err == ENOENT ? ENOENT : ECONNREFUSED;
}

int rpc_register(uint32_t prog, uint32_t vers, int proto, uint16_t port)
{
    const char *netid;
    char uaddr[32];

    if (proto == IPPROTO_TCP)
        netid = "tcp";
    else if (proto == IPPROTO_UDP)
        netid = "udp";
    else
        return EPROTONOSUPPORT;
    int err = rpcbind_reachable();
    if (err)
        return err;

    struct netconfig *nc = getnetconfigent(netid);
    if (!nc)
        return ENOENT;
    /* Universal address of INADDR_ANY:port (RFC 1833 section 3): h1.h2.h3.h4.p1.p2 */
    snprintf(uaddr, sizeof(uaddr), "0.0.0.0.%u.%u", port >> 8, port & 0xffu);
    struct netbuf *nb = uaddr2taddr(nc, uaddr);
    if (!nb) {
        freenetconfigent(nc);
        return EINVAL;
    }
    bool_t ok = rpcb_set(prog, vers, nc, nb);
    free(nb->buf);
    free(nb);
    freenetconfigent(nc);
    if (!ok) {
        LOG_AT(LOG_WARNING, "rpc: rpcbind refused to register program %u version %u/%s port %u",
               prog, vers, netid, port);
        return EACCES;
    }
    LOG_AT(LOG_INFO, "rpc: registered program %u version %u/%s port %u with rpcbind", prog,
           vers, netid, port);
    return 0;
}

void rpc_unregister(uint32_t prog, uint32_t vers)
{
    if (rpcbind_reachable() != 0)
        return;
    /* A NULL netconfig removes the registration for every transport. */
    if (!rpcb_unset(prog, vers, NULL))
        LOG_AT(LOG_DEBUG, "rpc: rpcbind had no registration for program %u version %u", prog,
               vers);
}
