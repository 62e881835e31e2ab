/* os.h - the platform primitives, behind one small interface (os.c).
 * Everything the allocator asks of the kernel goes through here, and each
 * call that can fail says whether it worked: the metadata above must follow
 * what the kernel really did (a failed madvise leaves the pages as they
 * were, with their contents). */
#ifndef TL_OS_H
#define TL_OS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *tli_os_map(size_t size);                  /* zeroed, page aligned, NULL on failure */
void *tli_os_map_hint(void *hint, size_t size); /* at hint if free, else anywhere */
void *tli_os_map_aligned(size_t size, size_t alignment);
bool tli_os_unmap(void *p, size_t size);
/* Gives pages back; true if they now read as zero. False when the kernel
 * refused (locked memory: mlock, mlockall), and then some, all or none of
 * the pages kept their contents and stay resident. */
bool tli_os_decommit(void *p, size_t size);
void *tli_os_remap(void *p, size_t old_size, size_t new_size, int may_move); /* NULL on failure */
/* Moves the mapping at p to exactly target (which must be mapped already,
 * and is replaced); false on failure, and then p is untouched. */
bool tli_os_remap_to(void *p, size_t old_size, size_t new_size, void *target);
uint64_t tli_os_now_ms(void);         /* monotonic, coarse */
size_t tli_os_page_size(void);        /* the kernel page the allocator is built for: 4 KiB */
size_t tli_os_kernel_page_size(void); /* the running kernel's (AT_PAGESZ), 0 if unknown */
/* Fills buf with n random bytes from the kernel without blocking; false if
 * it could not (early boot, seccomp): then tli_os_exec_random's 16 bytes. */
bool tli_os_random(void *buf, size_t n);
const void *tli_os_exec_random(void); /* AT_RANDOM: 16 bytes, or NULL */
/* Copies n bytes at p into out if they can be read (a backtrace's frame),
 * false if not: never faults. */
bool tli_os_read_words(const void *p, void *out, size_t n);
/* The kernel page holding p is resident (mincore); false if not or unknown. */
bool tli_os_resident(const void *p);
/* The object holding pc, and the nearest symbol (NULL if none) from the
 * loader's tables; false if pc is in no object. Takes the loader's lock. */
struct tli_os_symbol {
    const char *file, *name;
    uintptr_t file_base, name_addr;
};
bool tli_os_symbol_of(uintptr_t pc, struct tli_os_symbol *out);
/* The address ranges of the functions names[0..n) defined in the loaded
 * object whose file name contains `object` (libstdc++'s operator new):
 * returns how many were found, written to out in turn; 0 if that object
 * is not loaded. Takes the loader's lock and may allocate: call it outside
 * the allocator, with no allocator lock held. */
struct tli_os_range {
    uintptr_t lo, hi;
};
unsigned tli_os_function_ranges(const char *object, const char *const *names, unsigned n,
                                struct tli_os_range *out);
bool tli_os_write(int fd, const char *s, size_t n); /* false if not all was written */
long tli_os_read_file(const char *path, char *buf, size_t cap);
/* A file read piece by piece (the backtrace's /proc/self/maps, which may
 * be larger than any buffer here): open read-only, -1 on failure; read
 * retries on EINTR and returns the bytes read, 0 at the end, -1 on error;
 * tli_os_close closes it. None changes errno. */
int tli_os_open_read(const char *path);
long tli_os_read(int fd, void *buf, size_t n);
int tli_os_getpid(void);
/* Sleeps up to ms milliseconds while *word == expected (a futex: returns
 * at once if it differs, early on a wake or a signal). */
void tli_os_wait_word(_Atomic uint32_t *word, uint32_t expected, uint64_t ms);
void tli_os_wake_word(_Atomic uint32_t *word); /* wakes every waiter */
/* /proc/self/pagemap, for the leak scan: which pages were ever touched. */
int tli_os_pagemap_open(void); /* -1 if it cannot be read */
/* Of npages kernel pages from start, sets touched[i] to whether page i is
 * present or swapped out (an untouched page reads as zero: nothing to scan).
 * False if the entries cannot be read. */
bool tli_os_pages_touched(int fd, uintptr_t start, size_t npages, bool *touched);
void tli_os_close(int fd);
/* Creates or truncates the file at path for writing (mode 0644): its fd,
 * or minus the errno value of the failure. errno is unchanged. */
int tli_os_create(const char *path);
/* What tli_os_patch_code did, from best to worst (of several patches, the
 * largest value says how they went). */
enum tli_patch {
    TLI_PATCH_DONE,     /* written, and the page is read-only again */
    TLI_PATCH_WRITABLE, /* written, but the page could not be made read-only again */
    TLI_PATCH_REFUSED,  /* the page could not be made writable: nothing changed */
};
/* Replaces the 8 code bytes at p (8-byte aligned) with word in one atomic
 * store. The heap profiler's patched entries (api.c). */
enum tli_patch tli_os_patch_code(void *p, uint64_t word);

#endif
