/*
 * fuzz_inoderec.c - libFuzzer over the decoders of the write path's records
 * in the inode table (meta/inode_internal.h): "W" write-back records (both
 * layouts), "M" multipart records, and the rename journal's "J" and "j"
 * records.  These are read back from disk at start and by the uploader; a
 * torn or corrupted record must be refused (EIO), never crash recovery or
 * be read past its end.
 *
 * Input: byte 0 picks the decoder (mod 4), the rest is the record's value,
 * copied into a buffer of exactly its size so that AddressSanitizer sees
 * any read past it.  Beside "no crash", each decoder's contract is checked.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meta/inode_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    uint8_t *v = malloc(len ? len : 1);
    if (!v)
        return 0;
    memcpy(v, data + 1, len);
    switch (data[0] % 4) {
    case 0: {
        struct wbrec w;
        int r = wbrec_decode(v, len, &w);
        if (r == 0 && len != sizeof(w) && len != WBREC_V1_SIZE)
            abort();
        if (r == 0 && len == WBREC_V1_SIZE && (w.base_size || w.clean_below))
            abort(); /* the first layout reads as "made here" */
        break;
    }
    case 1: {
        struct inode_mp *m = malloc(sizeof(*m));
        if (m && mprec_decode(v, len, m) == 0 &&
            (strlen(m->upload_id) >= sizeof(m->upload_id) || strlen(m->key) > OBJ_KEY_MAX))
            abort();
        free(m);
        break;
    }
    case 2: {
        struct rjview j;
        if (rjrec_decode(v, len, &j) == 0) {
            size_t ol = strlen(j.oldp), nl = strlen(j.newp);
            if (j.h.phase < 1 || j.h.phase > 3 || j.h.nkeys > RJREC_KEYS_MAX ||
                ol > OBJ_KEY_MAX || nl > OBJ_KEY_MAX ||
                sizeof(struct rjrec) + ol + nl + 2 != len ||
                j.oldp != (const char *)v + sizeof(struct rjrec) || j.newp != j.oldp + ol + 1)
                abort();
        }
        break;
    }
    default: {
        char key[OBJ_KEY_MAX + 1];
        if (rjkey_decode(v, len, key) == 0 && (strlen(key) != len || memcmp(key, v, len)))
            abort();
        break;
    }
    }
    free(v);
    return 0;
}
