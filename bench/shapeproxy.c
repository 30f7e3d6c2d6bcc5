/*
 * shapeproxy.c - a TCP relay that adds one-way delay and a per-connection
 * rate limit, standing for the link between a gateway and S3.
 *
 *   shapeproxy LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT[,PORT...]
 *              DELAY_MS RATE_MB_PER_S LIFETIME_S
 *
 * bench/cache.sh runs it in front of the S3 emulator, inside the network
 * namespace it creates, when the kernel has no netem/fq qdiscs to shape the
 * veth with (CONFIG_NET_SCH_NETEM and CONFIG_NET_SCH_FQ unset, no modules).
 *
 * Model: each accepted connection gets its own upstream connection, to the
 * upstream ports in turn (several emulator processes serving the same data
 * use more than one CPU).  Each
 * direction is a pipe: bytes read at time t may be written from t + DELAY_MS
 * on, at RATE_MB_PER_S (10^6 bytes/s) at most, from a token bucket with a
 * 1 MiB burst.  So a request reaches the emulator DELAY_MS after it was
 * sent, and its answer starts DELAY_MS after the emulator sent it: the
 * round trip is 2 x DELAY_MS, and one connection never moves more than the
 * rate, as one connection to S3 does not.  A direction holds at most
 * PIPE_MAX bytes (its "bandwidth-delay product"): beyond that the proxy
 * stops reading that side and TCP flow control pushes back on the sender.
 *
 * Single-threaded, epoll, non-blocking sockets.  Bounded: at most MAX_CONNS
 * connections at once, and the process exits after LIFETIME_S seconds or on
 * SIGTERM.  Prints one line on stderr per failed connect; counts nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define CHUNK (256u * 1024)
#define PIPE_MAX (4u * 1024 * 1024) /* 100 MB/s x 30 ms is 3 MB */
#define BURST (1024.0 * 1024) /* 10 ms at 100 MB/s: epoll waits in whole ms */
#define WAKE_TOKENS (64.0 * 1024) /* write in pieces no smaller, unless the chunk is */

struct chunk {
    struct chunk *next;
    double release; /* may be written from then on */
    uint32_t len, done;
    char data[];
};

/* One direction: read from `from`, written to `to` after the delay. */
struct pipe {
    int from, to;
    struct chunk *head, *tail;
    uint32_t queued; /* bytes in chunks */
    bool eof;        /* `from` said EOF: shut `to` down once drained */
    bool shut;
    bool can_read, can_write; /* edge-triggered epoll: until EAGAIN */
    double tokens, t_tokens;
};

struct conn {
    int fd[2]; /* client, upstream */
    struct pipe p[2]; /* 0: client -> upstream, 1: upstream -> client */
    bool connected;
    bool dead;
};

static volatile sig_atomic_t stop;
static double delay_s, rate;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void conn_free(struct conn *c)
{
    for (int d = 0; d < 2; d++) {
        struct chunk *k = c->p[d].head;

        while (k) {
            struct chunk *n = k->next;
            free(k);
            k = n;
        }
        if (c->fd[d] >= 0)
            close(c->fd[d]);
    }
    free(c);
}

/* Read what `p` may take now.  Returns false when the connection is over. */
static bool pipe_read(struct pipe *p, double t)
{
    while (p->can_read && !p->eof && p->queued < PIPE_MAX) {
        struct chunk *k = malloc(sizeof(*k) + CHUNK);
        ssize_t n;

        if (!k)
            return false;
        n = read(p->from, k->data, CHUNK);
        if (n <= 0) {
            free(k);
            if (n == 0) {
                p->eof = true;
                break;
            }
            if (errno == EAGAIN) {
                p->can_read = false;
                break;
            }
            if (errno == EINTR)
                continue;
            return false;
        }
        *k = (struct chunk){.release = t + delay_s, .len = (uint32_t)n};
        if (p->tail)
            p->tail->next = k;
        else
            p->head = k;
        p->tail = k;
        p->queued += (uint32_t)n;
    }
    return true;
}

/*
 * Write what is due.  Returns false when the connection is over; *wake is
 * lowered to when this pipe next has something to do.
 */
static bool pipe_write(struct pipe *p, double t, double *wake)
{
    p->tokens += (t - p->t_tokens) * rate;
    p->t_tokens = t;
    if (p->tokens > BURST)
        p->tokens = BURST;
    while (p->head) {
        struct chunk *k = p->head;

        if (k->release > t) {
            if (k->release < *wake)
                *wake = k->release;
            return true;
        }
        double need = k->len - k->done < WAKE_TOKENS ? k->len - k->done : WAKE_TOKENS;
        if (p->tokens < need) {
            double at = t + (need - p->tokens) / rate;
            if (at < *wake)
                *wake = at;
            return true;
        }
        if (!p->can_write)
            return true; /* EPOLLOUT wakes us */
        size_t want = k->len - k->done;
        if (want > p->tokens)
            want = (size_t)p->tokens;
        ssize_t n = write(p->to, k->data + k->done, want);
        if (n < 0 && errno == EAGAIN)
            p->can_write = false;
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        p->tokens -= (double)n;
        k->done += (uint32_t)n;
        p->queued -= (uint32_t)n;
        if (k->done == k->len) {
            p->head = k->next;
            if (!p->head)
                p->tail = NULL;
            free(k);
        }
        if ((size_t)n < want) {
            p->can_write = false; /* socket full: EPOLLOUT wakes us */
            return true;
        }
    }
    if (p->eof && !p->shut) {
        shutdown(p->to, SHUT_WR);
        p->shut = true;
    }
    return true;
}

static int set_nonblock_nodelay(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fcntl(fd, F_SETFL, O_NONBLOCK);
}

static int parse_addr(const char *host, const char *port, struct sockaddr_in *sa)
{
    int p = atoi(port);

    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)p);
    return p > 0 && p < 65536 && inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : EINVAL;
}

#define MAX_UPSTREAMS 16

int main(int argc, char **argv)
{
    struct sockaddr_in lsa, usa[MAX_UPSTREAMS];
    unsigned nups = 0, next_up = 0;
    struct conn *conns[MAX_CONNS] = {0};
    struct epoll_event ev[64];
    int lfd, ep, one = 1;
    double lifetime, end;

    for (char *p = argc == 8 ? argv[4] : NULL; p && nups < MAX_UPSTREAMS; nups++) {
        char *comma = strchr(p, ',');

        if (comma)
            *comma = '\0';
        if (parse_addr(argv[3], p, &usa[nups]))
            nups = MAX_UPSTREAMS + 1;
        p = comma ? comma + 1 : NULL;
    }
    if (argc != 8 || parse_addr(argv[1], argv[2], &lsa) || nups == 0 || nups > MAX_UPSTREAMS) {
        fprintf(stderr, "usage: shapeproxy LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT[,PORT...] "
                        "DELAY_MS RATE_MB_PER_S LIFETIME_S\n");
        return 2;
    }
    delay_s = atof(argv[5]) / 1000.0;
    rate = atof(argv[6]) * 1e6;
    lifetime = atof(argv[7]);
    if (delay_s < 0 || rate <= 0 || lifetime <= 0) {
        fprintf(stderr, "shapeproxy: delay >= 0, rate > 0 and lifetime > 0 please\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&lsa, sizeof(lsa)) || listen(lfd, 256) ||
        set_nonblock_nodelay(lfd)) {
        perror("shapeproxy: listen");
        return 1;
    }
    ep = epoll_create1(0);
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &(struct epoll_event){.events = EPOLLIN, .data.u64 = ~0ull});
    end = now() + lifetime;

    while (!stop && now() < end) {
        double t = now(), wake = t + 0.1;
        int n;

        /* Move data on every connection: a handful at most in a benchmark. */
        for (unsigned i = 0; i < MAX_CONNS; i++) {
            struct conn *c = conns[i];
            bool ok = true;

            if (!c)
                continue;
            for (int d = 0; d < 2 && ok && c->connected; d++)
                ok = pipe_read(&c->p[d], t) && pipe_write(&c->p[d], t, &wake);
            if (ok && c->connected && c->p[0].shut && c->p[1].shut)
                ok = false;
            if (!ok || c->dead) {
                conn_free(c);
                conns[i] = NULL;
            }
        }
        int ms = (int)((wake - now()) * 1000.0 + 0.999);
        n = epoll_wait(ep, ev, 64, ms < 0 ? 0 : ms > 100 ? 100 : ms);
        for (int i = 0; i < n; i++) {
            uint64_t id = ev[i].data.u64;

            if (id == ~0ull) {
                for (;;) {
                    int cfd = accept(lfd, NULL, NULL), ufd;
                    unsigned slot;

                    if (cfd < 0)
                        break;
                    for (slot = 0; slot < MAX_CONNS && conns[slot]; slot++)
                        ;
                    ufd = socket(AF_INET, SOCK_STREAM, 0);
                    struct conn *c = calloc(1, sizeof(*c));
                    if (slot == MAX_CONNS || ufd < 0 || !c || set_nonblock_nodelay(cfd) ||
                        set_nonblock_nodelay(ufd)) {
                        close(cfd);
                        if (ufd >= 0)
                            close(ufd);
                        free(c);
                        continue;
                    }
                    const struct sockaddr_in *up = &usa[next_up++ % nups];
                    if (connect(ufd, (const struct sockaddr *)up, sizeof(*up)) &&
                        errno != EINPROGRESS) {
                        perror("shapeproxy: connect upstream");
                        close(cfd);
                        close(ufd);
                        free(c);
                        continue;
                    }
                    c->fd[0] = cfd;
                    c->fd[1] = ufd;
                    c->p[0] = (struct pipe){.from = cfd, .to = ufd, .t_tokens = now()};
                    c->p[1] = (struct pipe){.from = ufd, .to = cfd, .t_tokens = now()};
                    conns[slot] = c;
                    for (int d = 0; d < 2; d++)
                        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd[d],
                                  &(struct epoll_event){.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                                        .data.u64 = slot * 2ull + (unsigned)d});
                }
                continue;
            }
            struct conn *c = conns[id / 2];
            if (!c)
                continue;
            if (id % 2 == 1 && !c->connected) {
                int e = 0;
                socklen_t l = sizeof(e);

                getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &e, &l);
                if (e) {
                    fprintf(stderr, "shapeproxy: connect upstream: %s\n", strerror(e));
                    c->dead = true;
                } else if (ev[i].events & EPOLLOUT) {
                    c->connected = true;
                }
            }
            /* fd[0] is read by pipe 0 and written by pipe 1; fd[1] the reverse. */
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
                c->p[id % 2].can_read = true;
            if (ev[i].events & EPOLLOUT)
                c->p[1 - id % 2].can_write = true;
            if (ev[i].events & EPOLLERR)
                c->dead = true;
        }
    }
    for (unsigned i = 0; i < MAX_CONNS; i++)
        if (conns[i])
            conn_free(conns[i]);
    return 0;
}
