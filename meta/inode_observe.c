/*
 * inode_observe.c - the one place where what the object store says about
 * an object is merged into its inode record.
 *
 * Three observations reach a record, each from its own caller:
 *
 *   OBS_LIST    an entry of a directory listing (inode_list.c, page_fn): a
 *               file's size, ETag and Last-Modified; POSIX metadata only
 *               where the backend has it cheaply (the dir store; never S3);
 *               a common prefix (a directory without a marker key) carries
 *               nothing but its name.
 *   OBS_HEAD    HEAD of a file (inode_reval.c, file_revalidate): everything,
 *               POSIX metadata included when the object has it.
 *   OBS_MARKER  HEAD of a directory's marker object, or its absence
 *               (inode_reval.c, dir_revalidate): the directory's mode,
 *               owner and mtime.
 *
 * The rules, by what is observed:
 *   - content (size, ETag) of a file: always taken;
 *   - a file's mtime: taken from HEAD, and from a listing only when the
 *     listing carries POSIX metadata: otherwise a listing's mtime is the
 *     object's Last-Modified, which HEAD may have replaced by
 *     x-amz-meta-file-mtime, and every re-listing would look like a change;
 *   - mode, uid, gid: taken when the observation carries POSIX metadata; a
 *     marker HEAD without them (or no marker at all) means the export's
 *     defaults, a listing without them keeps what HEAD found;
 *   - a directory's mtime: the marker's, unless a re-listing found a change
 *     in its entries since (IREC_MTIME_LISTED), then only a newer marker
 *     mtime (somebody touched it in the bucket) wins;
 *   - with posix_metadata "own" (the export says only objects this server
 *     wrote carry POSIX metadata, and the table has theirs), a listing
 *     entry of a file is as good as its HEAD: same ETag, the record stays
 *     as it is (mode, owner and mtime this server set); another ETag, the
 *     object was rewritten by another tool: size, ETag and Last-Modified
 *     from the listing, mode and owner the export's defaults;
 *   - validated_at (attributes confirmed): by HEAD and by a marker HEAD
 *     always; by a listing when it carries POSIX metadata, or for a file
 *     when the store's listing is as good as HEAD (list_is_head, or
 *     posix_metadata "own").  A file
 *     whose content a listing without POSIX metadata found changed may carry
 *     new POSIX metadata too (another gateway rewrote it): it is marked
 *     unconfirmed (validated_at 0) so that the next GETATTR asks HEAD.
 *   Any change moves ctime (to now; for a directory's first marker check,
 *   to its mtime, as if the inode had been made from the marker) and the
 *   change counter.
 *
 * Local state wins: a record changed through the server and not yet
 * uploaded (IREC_LOCAL) takes nothing from an observation; its upload
 * makes the bucket agree.  (The listing keeps such records from its sweep,
 * and a HEAD that finds no object does not remove them: inode_list.c,
 * inode_reval.c.)
 *
 * Threads: pure functions on a record the caller holds (read with DB_RMW
 * inside the caller's transaction); no locks, no store calls.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "meta/inode_internal.h"

static void set_ctime(struct inode_rec *c, int64_t sec, uint32_t nsec)
{
    c->h.ctime_sec = sec;
    c->h.ctime_nsec = nsec;
}

/* A file's (or symlink's) mode from its POSIX metadata: the type a listing would give it. */
static uint32_t file_mode_of(const struct obj_meta *m)
{
    return (S_ISLNK(m->mode) ? S_IFLNK : S_IFREG) | (m->mode & 07777);
}

static bool observe_file(struct inode_rec *c, const struct observed *o)
{
    const struct obj_meta *m = o->meta;
    bool posix = m->has_posix;
    bool changed = false;

    bool content = c->h.size != m->size || strcmp(c->h.etag, m->etag) != 0;
    bool stamp = (posix || o->source == OBS_HEAD) &&
                 (c->h.mtime_sec != m->mtime_sec || c->h.mtime_nsec != m->mtime_nsec);
    if (content || stamp) {
        c->h.size = m->size;
        snprintf(c->h.etag, sizeof(c->h.etag), "%s", m->etag);
        c->h.mtime_sec = m->mtime_sec;
        c->h.mtime_nsec = m->mtime_nsec;
        changed = true;
    }
    /*
     * posix_metadata "own": a listing speaks for the whole object.  Content
     * the table did not write (another ETag) is another tool's object, which
     * carries no POSIX metadata: the export's defaults replace what the
     * record had (a mode or owner set here must not stick to it).
     */
    bool own = o->source == OBS_LIST && o->e->posix_own && !posix;
    /*
     * Unless the record awaits a HEAD (validated_at 0: a copy this server
     * made by a rename, whose ETag only the store knows): then the listing
     * cannot tell our object from another tool's, and HEAD decides.
     */
    if (own && content && c->h.validated_at == 0)
        own = false;
    if (posix || (own && content)) {
        uint32_t mode = posix ? file_mode_of(m) : S_IFREG | (o->e->file_mode & 07777);
        uint32_t uid = posix ? m->uid : o->e->uid, gid = posix ? m->gid : o->e->gid;
        if (c->h.mode != mode || c->h.uid != uid || c->h.gid != gid) {
            c->h.mode = mode;
            c->h.uid = uid;
            c->h.gid = gid;
            changed = true;
        }
    }
    if (changed)
        set_ctime(c, o->now / NS, (uint32_t)(o->now % NS));
    if (o->source == OBS_HEAD || posix || own || o->e->store->list_is_head)
        c->h.validated_at = o->now;
    else if (changed)
        c->h.validated_at = 0;
    return changed;
}

static bool observe_dir(struct inode_rec *c, const struct observed *o)
{
    const struct obj_meta *m = o->meta;
    const struct meta_export *e = o->e;
    bool posix = m && m->has_posix;
    bool first = c->h.validated_at == 0;
    bool changed = false;

    /* A listing without POSIX metadata (a common prefix, or S3) says nothing of the directory. */
    if (o->source == OBS_LIST && !posix)
        return false;
    uint32_t mode = S_IFDIR | ((posix ? m->mode : e->dir_mode) & 07777);
    uint32_t uid = posix ? m->uid : e->uid, gid = posix ? m->gid : e->gid;
    if (c->h.mode != mode || c->h.uid != uid || c->h.gid != gid) {
        c->h.mode = mode;
        c->h.uid = uid;
        c->h.gid = gid;
        changed = true;
    }
    /* Only the marker's HEAD speaks for a directory's mtime (a listing's entry is its key). */
    if (o->source == OBS_MARKER && m &&
        (c->h.mtime_sec != m->mtime_sec || c->h.mtime_nsec != m->mtime_nsec)) {
        bool newer = m->mtime_sec > c->h.mtime_sec ||
                     (m->mtime_sec == c->h.mtime_sec && m->mtime_nsec > c->h.mtime_nsec);
        if (!(c->h.flags & IREC_MTIME_LISTED) || newer) {
            c->h.mtime_sec = m->mtime_sec;
            c->h.mtime_nsec = m->mtime_nsec;
            c->h.flags &= ~IREC_MTIME_LISTED;
            changed = true;
        }
    }
    if (changed) {
        if (o->source == OBS_MARKER && first)
            set_ctime(c, c->h.mtime_sec, c->h.mtime_nsec);
        else
            set_ctime(c, o->now / NS, (uint32_t)(o->now % NS));
    }
    c->h.validated_at = o->now;
    return changed;
}

bool rec_apply_observed(struct inode_rec *c, const struct observed *o)
{
    bool changed;
    /*
     * Changed here and not yet uploaded: the table's attributes are newer
     * than anything the bucket can say, until the upload (which may be
     * racing an outside writer: the gateway's version wins, see writeback.c).
     */
    if (c->h.flags & IREC_LOCAL)
        return false;
    if (S_ISDIR(c->h.mode)) {
        if (o->source == OBS_HEAD)
            return false; /* retyped since the HEAD was asked for: its listing rules */
        changed = observe_dir(c, o);
    } else {
        if (o->source == OBS_MARKER || !o->meta)
            return false; /* a file now: the marker HEAD was for the directory it replaced */
        changed = observe_file(c, o);
    }
    if (changed)
        c->h.change++;
    return changed;
}
