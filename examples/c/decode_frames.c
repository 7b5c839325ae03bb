/* decode_frames.c: the seed's frames decoded in C through libunstick (ffi/include/unstick.h).
 *
 * Writes five header frames into one buffer, as a TCP receiver may get them glued together:
 * three exactly as the seed's Python scripts write them (`struct.pack('i', len(header))`, then
 * `json.dumps(header)`, then the body), one written by unstick_encode_header_frame, one as the
 * seed's upload client sends it ("filesize"). Then it feeds the buffer to a decoder in pieces of
 * 1 to 7 bytes, prints each event, and checks each frame's header, body and digest outcome.
 * Exits 0 when all are as expected, 1 otherwise.
 *
 * The same source runs on x86_64 (the system C library) and on a Cortex-M4 under QEMU (newlib,
 * its output and exit status through semihosting): examples/c/run.sh builds and runs both. */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "unstick.h"

#define MD5_OF_HELLO "5d41402abc4b2a76b9719d911017c592"

/* What each frame should come out as. */
struct expected {
    const char *header; /* the JSON header as the decoder hands it out */
    const char *body;
    UnstickStatus status;   /* UNSTICK_STATUS_OK, or the status that ends the frame */
    UnstickVerdict md5;     /* with UNSTICK_STATUS_OK: the verdict on "md5" */
};

static const struct expected EXPECTED[] = {
    {"{\"file_name\": \"f1.txt\", \"md5\": \"" MD5_OF_HELLO "\", \"total_size\": 5}", "hello",
     UNSTICK_STATUS_OK, UNSTICK_VERDICT_VERIFIED},
    /* The same header over a body that changed on the way: the digest catches it. */
    {"{\"file_name\": \"f1.txt\", \"md5\": \"" MD5_OF_HELLO "\", \"total_size\": 5}", "HELLO",
     UNSTICK_STATUS_DECODE_MD5_MISMATCH, UNSTICK_VERDICT_ABSENT},
    /* The seed's shell server puts a placeholder where the digest goes. */
    {"{\"md5\": \"fdsaf2143254f\", \"file_name\": \"f1.txt\", \"total_size\": 5}", "12345",
     UNSTICK_STATUS_OK, UNSTICK_VERDICT_NOT_A_DIGEST},
    {"{\"file_name\": \"f4.txt\",\"total_size\":12,\"md5\":\"e4d7f1b4ed2e42d15898f4b27b019da4\"}",
     "hello, world", UNSTICK_STATUS_OK, UNSTICK_VERDICT_VERIFIED},
    {"{\"filename\": \"notes.txt\", \"filesize\": 3}", "abc", UNSTICK_STATUS_OK,
     UNSTICK_VERDICT_ABSENT},
};
#define FRAMES (sizeof EXPECTED / sizeof EXPECTED[0])

/* The decoder's memory: no allocation, any alignment (unstick_decoder_init aligns within it). */
static unsigned char decoder_memory[UNSTICK_DECODER_STORAGE_SIZE];

static uint8_t wire[1024];
static size_t wire_len;

/* Appends a frame as the seed's Python writes it: a 4-byte little-endian length, the header,
 * the body. */
static int append_seed_frame(const char *header, const char *body) {
    size_t header_len = strlen(header), body_len = strlen(body), i;
    if (wire_len + 4 + header_len + body_len > sizeof wire) {
        return 0;
    }
    for (i = 0; i < 4; i++) {
        wire[wire_len++] = (uint8_t)(header_len >> (8 * i));
    }
    memcpy(wire + wire_len, header, header_len);
    wire_len += header_len;
    memcpy(wire + wire_len, body, body_len);
    wire_len += body_len;
    return 1;
}

static const char *verdict_name(UnstickVerdict verdict) {
    switch (verdict) {
    case UNSTICK_VERDICT_ABSENT: return "absent";
    case UNSTICK_VERDICT_VERIFIED: return "verified";
    case UNSTICK_VERDICT_NOT_A_DIGEST: return "not a digest";
    case UNSTICK_VERDICT_UNSUPPORTED: return "unsupported";
    default: return "?";
    }
}

/* What came out of one frame. */
struct frame {
    char header[256];
    char body[64];
    size_t body_len;
    UnstickStatus status;
    UnstickVerdict md5;
};

static struct frame frames[FRAMES + 1];
static size_t frame_count;

static int check_frames(void) {
    size_t i;
    int ok = frame_count == FRAMES;
    if (!ok) {
        printf("FAIL: %lu frames, expected %lu\n", (unsigned long)frame_count,
               (unsigned long)FRAMES);
    }
    for (i = 0; i < FRAMES && i < frame_count; i++) {
        const struct expected *want = &EXPECTED[i];
        const struct frame *got = &frames[i];
        if (strcmp(got->header, want->header) != 0 || got->body_len != strlen(want->body) ||
            memcmp(got->body, want->body, got->body_len) != 0 || got->status != want->status ||
            (want->status == UNSTICK_STATUS_OK && got->md5 != want->md5)) {
            printf("FAIL: frame %lu is not as expected (%s, md5 %s)\n", (unsigned long)i + 1,
                   unstick_status_name(got->status), verdict_name(got->md5));
            ok = 0;
        }
    }
    return ok;
}

/* Feeds one piece of input, and then its unconsumed rest, until the decoder needs more.
 * Returns 0 on a stream error. */
static int feed(UnstickDecoder *decoder, const uint8_t *input, size_t len) {
    for (;;) {
        size_t consumed;
        UnstickEvent event;
        struct frame *frame = &frames[frame_count];
        UnstickStatus status = unstick_decoder_feed(decoder, input, len, &consumed, &event);
        input += consumed;
        len -= consumed;
        if (status == UNSTICK_STATUS_DECODE_MD5_MISMATCH ||
            status == UNSTICK_STATUS_DECODE_XXH3_MISMATCH) {
            /* The frame was read whole; the decoder is at the next one. */
            printf("end    %s\n", unstick_status_message(status));
            frame->status = status;
            frame_count++;
            continue;
        }
        if (status != UNSTICK_STATUS_OK) {
            /* Out of sync: a receiver closes the connection here. */
            printf("error  %s: %s\n", unstick_status_name(status), unstick_status_message(status));
            return 0;
        }
        switch (event.kind) {
        case UNSTICK_EVENT_KIND_NEED_MORE:
            return 1;
        case UNSTICK_EVENT_KIND_HEAD:
            printf("head   %.*s (body: %lu bytes)\n", (int)event.len, (const char *)event.data,
                   (unsigned long)event.body_len);
            if (frame_count == FRAMES || event.len >= sizeof frame->header) {
                printf("FAIL: more frames or a longer header than expected\n");
                return 0;
            }
            memcpy(frame->header, event.data, event.len);
            frame->header[event.len] = '\0';
            break;
        case UNSTICK_EVENT_KIND_BODY:
            printf("body   %lu bytes\n", (unsigned long)event.len);
            if (frame->body_len + event.len > sizeof frame->body) {
                printf("FAIL: a longer body than expected\n");
                return 0;
            }
            memcpy(frame->body + frame->body_len, event.data, event.len);
            frame->body_len += event.len;
            break;
        case UNSTICK_EVENT_KIND_END:
            printf("end    %lu bytes, md5 %s, xxh3 %s\n", (unsigned long)event.body_len,
                   verdict_name(event.md5), verdict_name(event.xxh3));
            frame->status = UNSTICK_STATUS_OK;
            frame->md5 = event.md5;
            frame_count++;
            break;
        default:
            printf("FAIL: event kind %lu\n", (unsigned long)event.kind);
            return 0;
        }
    }
}

int main(void) {
    UnstickProfile seed = unstick_profile_seed();
    UnstickDecoder *decoder = NULL;
    UnstickStatus status;
    size_t offset = 0, piece = 1, frame_len = 0;
    static const char f4_header[] = "{\"file_name\": \"f4.txt\"}";
    static const char f4_body[] = "hello, world";

    printf("unstick from C: decoder of %lu bytes (align %lu), headers up to %lu bytes\n",
           (unsigned long)unstick_decoder_size(), (unsigned long)unstick_decoder_align(),
           (unsigned long)UNSTICK_HEADER_CAP);

    if (!append_seed_frame(EXPECTED[0].header, "hello") ||
        !append_seed_frame(EXPECTED[1].header, "HELLO") ||
        !append_seed_frame(EXPECTED[2].header, "12345")) {
        return 1;
    }
    /* unstick's encoder adds "total_size" and, asked to, the body's "md5". */
    status = unstick_encode_header_frame(&seed, f4_header, strlen(f4_header),
                                         (const uint8_t *)f4_body, strlen(f4_body),
                                         UNSTICK_DIGEST_MD5, wire + wire_len,
                                         sizeof wire - wire_len, &frame_len);
    if (status != UNSTICK_STATUS_OK) {
        printf("FAIL: encoding: %s\n", unstick_status_message(status));
        return 1;
    }
    wire_len += frame_len;
    if (!append_seed_frame(EXPECTED[4].header, "abc")) {
        return 1;
    }

    status = unstick_decoder_init(decoder_memory, sizeof decoder_memory, &seed,
                                  UNSTICK_FORMAT_HEADER, &decoder);
    if (status != UNSTICK_STATUS_OK) {
        printf("FAIL: init: %s\n", unstick_status_message(status));
        return 1;
    }
    /* Pieces of 1, 2, ... 7, 1, ... bytes, then an empty one: the last frame's end comes from
     * the call after its last byte. */
    for (;;) {
        size_t len = wire_len - offset < piece ? wire_len - offset : piece;
        if (!feed(decoder, wire + offset, len)) {
            return 1;
        }
        if (len == 0) {
            break;
        }
        offset += len;
        piece = piece % 7 + 1;
    }
    if (unstick_decoder_check_eof(decoder) != UNSTICK_STATUS_OK) {
        printf("FAIL: the stream ended inside a frame\n");
        return 1;
    }
    if (!check_frames()) {
        return 1;
    }
    printf("ok: %lu frames from %lu bytes, as expected\n", (unsigned long)frame_count,
           (unsigned long)wire_len);
    return 0;
}
