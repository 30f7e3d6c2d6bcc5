/*
 * admin_proto.h - the wire format of the admin socket (bucketnfsd.sock),
 * shared by the daemon (nfsd/admin.c) and the tool (tools/bucketnfs.c).
 *
 * Protocol version 1.  One request per connection over a UNIX stream
 * socket:
 *
 *   client:  one request line, then nothing (it keeps its side open)
 *   server:  zero or more record lines, then one final line, then closes
 *
 * A line is words separated by one space and ended by "\n"; at most
 * ADMIN_LINE_MAX bytes with the "\n", at most ADMIN_WORDS_MAX words.  Each
 * word is percent-encoded: the bytes 0x00-0x20, '%' and 0x7f are written
 * %XX (two hex digits), every other byte as itself, and the empty word is
 * written as a lone "%".  A decoded word never holds a NUL byte and is at
 * most ADMIN_WORD_MAX bytes.  Anything else is a malformed line.
 *
 * Requests (first word: the verb):
 *   stats                      every counter, the exports, some facts
 *   pin EXPORT PATH...         keep the files (every file under a directory) cached
 *   unpin EXPORT PATH...       undo pin
 *   evict [--force] EXPORT PATH...
 *                              drop the cached blocks of the files (pinned ones
 *                              only with --force)
 *   flush [EXPORT [PATH]] [--wait]
 *                              upload what was written now (--wait: until done)
 *   refresh EXPORT [PATH]      forget the listing of a directory (or a file's attributes)
 *   reload                     re-read the exports file (as SIGHUP)
 *   preload EXPORT PATH...     read files and trees through the cache
 * PATH is relative to the export's root ("/" or "" is the root itself).
 *
 * Records (first word: the kind):
 *   info KEY VALUE                           version, pid, state_dir, ...
 *   store NAME TYPE
 *   export PATH STORE BUCKET PREFIX ACCESS ID
 *   stat SECTION INSTANCE NAME VALUE         one counter (see opstats_each)
 *   mount EXPORT HOST PATH SINCE             a mount-list entry (EXPORT "-": the
 *                                            path is in no export now); SINCE:
 *                                            seconds since the epoch
 *   client HOST CONNECTIONS CALLS IDLE_MS AGE_MS
 *                                            RPC connections open now from HOST:
 *                                            calls they brought, since the last
 *                                            call, since the oldest was made
 *   storeerror STORE TIME OP STATUS CODE MESSAGE
 *                                            the store's last failed call: TIME
 *                                            (epoch seconds), operation, HTTP
 *                                            status (0: none), errno name, text
 *   progress PHASE FILES FILES_TOTAL BYTES BYTES_TOTAL ELAPSED_MS
 *                                            preload: PHASE "scan" (totals
 *                                            still growing) or "read"
 *   done PATH COUNT                          pin/unpin/refresh: COUNT files done under PATH
 *   done PATH COUNT BYTES                    evict: COUNT files under PATH, BYTES dropped
 *   flushing FILES BYTES                     flush --wait: still to upload
 *   warn PATH CODE MESSAGE                   one path failed (CODE: errno name)
 * Final line:
 *   ok [KEY VALUE]...                        success (a summary may follow)
 *   error CODE MESSAGE                       the request failed as a whole
 *
 * A client that closes its socket, or writes anything after its request,
 * cancels it: a preload stops at its next block.  The daemon answers
 * "error EBUSY ..." when ADMIN_CLIENTS_MAX requests are already running,
 * and closes a connection whose request does not arrive within
 * ADMIN_REQUEST_TIMEOUT_MS.
 *
 * Contract: functions returning int return 0 or a positive errno.
 * Threads: no shared state; everything here is reentrant.
 */
#ifndef BNFS_ADMIN_PROTO_H
#define BNFS_ADMIN_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define ADMIN_PROTO_VERSION 1
#define ADMIN_SOCKET_NAME "bucketnfsd.sock"
#define ADMIN_LINE_MAX 16384 /* bytes of one line, "\n" included */
#define ADMIN_WORDS_MAX 64
#define ADMIN_WORD_MAX 4096  /* decoded bytes of one word */
#define ADMIN_CLIENTS_MAX 8
#define ADMIN_REQUEST_TIMEOUT_MS 5000

/* One decoded line: words point into buf. */
struct admin_msg {
    size_t n;
    char *w[ADMIN_WORDS_MAX];
    size_t wlen[ADMIN_WORDS_MAX];
    char buf[ADMIN_LINE_MAX];
};

/*
 * Decode one line of len bytes (without its "\n"; untrusted).  0, or
 * EMSGSIZE (line, word or word count over the limits), EINVAL (empty line,
 * a bad escape, a NUL byte, a raw control byte, two spaces in a row).
 */
int admin_decode(const char *line, size_t len, struct admin_msg *out);

/*
 * Encode words[0..n) as one line with its "\n" into out (outlen bytes,
 * NUL-terminated); *len receives the bytes before the NUL.  EMSGSIZE if it
 * does not fit ADMIN_LINE_MAX or outlen, EINVAL for n == 0, n over
 * ADMIN_WORDS_MAX, or a word over ADMIN_WORD_MAX.
 */
int admin_encode(const char *const *words, size_t n, char *out, size_t outlen, size_t *len);

/* A line reader over a stream socket, bounded by ADMIN_LINE_MAX. */
struct admin_reader {
    int fd;
    size_t off, len;
    char buf[ADMIN_LINE_MAX];
};

void admin_reader_init(struct admin_reader *r, int fd);

/*
 * Next line (without "\n", NUL-terminated in r's buffer, valid until the
 * next call) within timeout_ms (-1: no limit).  0, or ECONNRESET (the peer
 * closed; a last line without "\n" is not a line), ETIMEDOUT, EMSGSIZE (no
 * "\n" within ADMIN_LINE_MAX bytes), or the errno of recv/poll.
 */
int admin_read_line(struct admin_reader *r, int timeout_ms, char **line, size_t *len);

/* The name of an errno ("ENOENT"; "E<number>" for one it does not know). */
const char *admin_errno_name(int err, char *buf, size_t len);
/* The errno of a name admin_errno_name gave (EIO for one it does not know). */
int admin_errno_value(const char *name);

#endif
