/* Native implementations of the helpers the examples call (see bpf_native.h), written from
 * the kernel's and tessera's documented semantics, independently of tessera's code: the
 * tests compare the two. Not thread-safe: the harness runs one program at a time. */
#include "bpf_native.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits shared with tessera: the largest key (maps.rs MAX_KEY_SIZE) and value
 * (MAX_VALUE_SIZE), the largest value bpf_map_update_elem copies (helpers.rs
 * MAX_VALUE_COPY) and the longest trace format and message (MAX_TRACE). */
#define MAX_MAPS 32
#define MAX_KEY_SIZE 512u
#define MAX_VALUE_SIZE (1u << 26)
#define MAX_VALUE_COPY 1024u
#define MAX_TRACE 256u
#define TRACE_CAPACITY (1u << 20)

/* A hash slot's link: the next free slot, NO_SLOT at the end of the free list, or OCCUPIED. */
#define NO_SLOT 0xffffffffu
#define OCCUPIED 0xfffffffeu

struct native_map {
    const void *def;
    const char *name;
    __u32 type, key_size, value_size, max_entries;
    __u8 *values; /* max_entries * value_size */
    __u8 *keys;   /* hash: max_entries * key_size */
    __u32 *links; /* hash: one per slot */
    __u32 free_head;
};

static struct native_map maps[MAX_MAPS];
static __u32 map_count;
static __u64 clock_now, clock_step;
static __u32 random_state;
static __u8 trace_buf[TRACE_CAPACITY];
static __u64 trace_len;

static void free_maps(void)
{
    for (__u32 i = 0; i < map_count; i++) {
        free(maps[i].values);
        free(maps[i].keys);
        free(maps[i].links);
    }
    memset(maps, 0, sizeof(maps));
    map_count = 0;
}

void tessera_native_reset(__u64 start, __u64 step, __u32 seed)
{
    free_maps();
    clock_now = start;
    clock_step = step;
    random_state = seed;
    trace_len = 0;
}

int tessera_native_map_register(const void *def, const char *name, __u32 type, __u32 key_size,
                                __u32 value_size, __u32 max_entries)
{
    int key_ok = type == BPF_MAP_TYPE_ARRAY ? key_size == 4
                 : type == BPF_MAP_TYPE_HASH ? key_size != 0 && key_size <= MAX_KEY_SIZE
                                             : 0;
    if (!key_ok || value_size == 0 || value_size > MAX_VALUE_SIZE || max_entries == 0)
        return -EINVAL;
    if (map_count == MAX_MAPS)
        return -ENOSPC;
    struct native_map *m = &maps[map_count];
    *m = (struct native_map){def, name, type, key_size, value_size, max_entries, NULL, NULL, NULL, NO_SLOT};
    m->values = calloc(max_entries, value_size);
    if (!m->values)
        return -ENOMEM;
    if (type == BPF_MAP_TYPE_HASH) {
        m->keys = calloc(max_entries, key_size);
        m->links = calloc(max_entries, sizeof(__u32));
        if (!m->keys || !m->links) {
            free(m->values);
            free(m->keys);
            free(m->links);
            return -ENOMEM;
        }
        /* Free list 0 -> 1 -> ... -> max_entries - 1. */
        for (__u32 slot = 0; slot < max_entries; slot++)
            m->links[slot] = slot + 1 < max_entries ? slot + 1 : NO_SLOT;
        m->free_head = 0;
    }
    return (int)map_count++;
}

static struct native_map *map_of(const void *def)
{
    for (__u32 i = 0; i < map_count; i++)
        if (maps[i].def == def)
            return &maps[i];
    return NULL;
}

/* Hash: the slot holding `key`, or NO_SLOT. */
static __u32 hash_find(const struct native_map *m, const void *key)
{
    for (__u32 slot = 0; slot < m->max_entries; slot++)
        if (m->links[slot] == OCCUPIED && memcmp(m->keys + (size_t)slot * m->key_size, key, m->key_size) == 0)
            return slot;
    return NO_SLOT;
}

static __u32 array_index(const void *key)
{
    __u32 index;
    memcpy(&index, key, sizeof(index));
    return index;
}

void *bpf_map_lookup_elem(void *def, const void *key)
{
    struct native_map *m = map_of(def);
    if (!m)
        return NULL;
    __u32 slot = m->type == BPF_MAP_TYPE_ARRAY ? array_index(key) : hash_find(m, key);
    if (slot >= m->max_entries)
        return NULL;
    return m->values + (size_t)slot * m->value_size;
}

long bpf_map_update_elem(void *def, const void *key, const void *value, __u64 flags)
{
    struct native_map *m = map_of(def);
    if (!m)
        return -EINVAL;
    /* The value may lie in this very map: copy it first. */
    __u8 copy[MAX_VALUE_COPY];
    if (m->value_size > sizeof(copy))
        return -E2BIG;
    memcpy(copy, value, m->value_size);
    if (flags > BPF_EXIST)
        return -EINVAL;
    __u32 slot;
    if (m->type == BPF_MAP_TYPE_ARRAY) {
        slot = array_index(key);
        if (slot >= m->max_entries)
            return -E2BIG;
        if (flags == BPF_NOEXIST)
            return -EEXIST;
    } else {
        slot = hash_find(m, key);
        if (slot != NO_SLOT && flags == BPF_NOEXIST)
            return -EEXIST;
        if (slot == NO_SLOT) {
            if (flags == BPF_EXIST)
                return -ENOENT;
            if (m->free_head == NO_SLOT)
                return -E2BIG;
            slot = m->free_head;
            m->free_head = m->links[slot];
            m->links[slot] = OCCUPIED;
            memcpy(m->keys + (size_t)slot * m->key_size, key, m->key_size);
        }
    }
    memcpy(m->values + (size_t)slot * m->value_size, copy, m->value_size);
    return 0;
}

long bpf_map_delete_elem(void *def, const void *key)
{
    struct native_map *m = map_of(def);
    if (!m || m->type == BPF_MAP_TYPE_ARRAY)
        return -EINVAL;
    __u32 slot = hash_find(m, key);
    if (slot == NO_SLOT)
        return -ENOENT;
    m->links[slot] = m->free_head;
    m->free_head = slot;
    return 0;
}

__u64 bpf_ktime_get_ns(void)
{
    __u64 now = clock_now;
    clock_now += clock_step;
    return now;
}

__u32 bpf_get_prandom_u32(void)
{
    __u32 x = random_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    random_state = x;
    return x;
}

/* Whether bpf_trace_printk accepts `fmt`: conversions d i u x c s p with the l and ll
 * length modifiers, %%, at most three arguments. */
static int format_ok(const char *fmt)
{
    int args = 0;
    for (const char *p = fmt; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        int longs = 0;
        while (*p == 'l') {
            longs++;
            p++;
        }
        if (*p == '%' && longs == 0)
            continue;
        if (!*p || !strchr("diuxcsp", *p) || longs > 2 || ++args > 3)
            return 0;
    }
    return 1;
}

long bpf_trace_printk(const char *fmt, __u32 fmt_size, ...)
{
    char format[MAX_TRACE + 1];
    if (fmt_size > MAX_TRACE)
        return -EINVAL;
    /* The format is its first fmt_size bytes, up to a NUL. */
    size_t n = strnlen(fmt, fmt_size);
    memcpy(format, fmt, n);
    format[n] = 0;
    if (!format_ok(format))
        return -EINVAL;
    char message[MAX_TRACE + 1];
    va_list ap;
    va_start(ap, fmt_size);
    int len = vsnprintf(message, sizeof(message), format, ap);
    va_end(ap);
    if (len < 0)
        return -EINVAL;
    __u32 kept = (__u32)len > MAX_TRACE ? MAX_TRACE : (__u32)len;
    if (trace_len + 4 + kept <= sizeof(trace_buf)) {
        for (int i = 0; i < 4; i++)
            trace_buf[trace_len++] = (__u8)(kept >> (8 * i));
        memcpy(trace_buf + trace_len, message, kept);
        trace_len += kept;
    }
    return kept;
}

__u32 tessera_native_map_count(void)
{
    return map_count;
}

int tessera_native_map_info(__u32 index, struct tessera_native_map_info *info)
{
    if (index >= map_count)
        return -ENOENT;
    const struct native_map *m = &maps[index];
    *info = (struct tessera_native_map_info){m->name, m->type, m->key_size, m->value_size, m->max_entries};
    return 0;
}

int tessera_native_map_entry(__u32 index, __u32 slot, const __u8 **key, const __u8 **value)
{
    if (index >= map_count)
        return -ENOENT;
    const struct native_map *m = &maps[index];
    if (slot >= m->max_entries || (m->type == BPF_MAP_TYPE_HASH && m->links[slot] != OCCUPIED))
        return 0;
    *key = m->type == BPF_MAP_TYPE_HASH ? m->keys + (size_t)slot * m->key_size : NULL;
    *value = m->values + (size_t)slot * m->value_size;
    return 1;
}

const __u8 *tessera_native_trace(__u64 *len)
{
    *len = trace_len;
    return trace_buf;
}

void tessera_native_host_state(__u64 *now, __u32 *state)
{
    *now = clock_now;
    *state = random_state;
}
