/*
 * vsmux.server._pools: giving the pages of empty small-object pools back to
 * the system.
 *
 * CPython's small-object allocator (pymalloc) takes 1 MiB arenas from the
 * system and cuts them into 16 KiB pools. It returns an arena only when every
 * pool in it is empty, so after a burst of clients a few long-lived objects
 * scattered over many arenas keep them all resident, their empty pools
 * included: most of what a gateway kept after its clients left
 * (BENCHMARKS.md, "Memory after a burst").
 *
 * This module lets the kernel take back the pages of those empty pools. From
 * track() on it sees every arena pymalloc takes or returns (it wraps the
 * arena allocator, PyObject_SetArenaAllocator), and release() walks the
 * arenas it knows: a pool whose header says it has been used and holds no
 * block keeps its first page (the header, which links the pool into its
 * arena's list of free pools) and gives up the others (madvise
 * MADV_DONTNEED: they read as zeros when touched again). Its size class is
 * set to "none" as well, so that pymalloc sets the pool up afresh when it
 * takes it next, instead of following a list of free blocks whose pages are
 * now zeros.
 *
 * release_used() does the same for pools still in use, page by page: a page
 * (other than the header's) that holds no block in use is given back too.
 * The free blocks that touch it are first taken out of the pool's list of
 * free blocks, the only place pymalloc reads a free block, so nothing reads
 * that page again before writing it. Those blocks are lost to the pool until
 * it is next set up afresh (when it is empty and released, or reused for
 * another size); pymalloc counts blocks in use, not free ones, so it never
 * misses them.
 *
 * The pool header's layout is CPython's own business. track() accepts only
 * the versions whose layout is known, and checks it on a live pool before it
 * says yes; a Python built without pymalloc, or running with debug hooks
 * (PYTHONMALLOC=malloc, -X dev), is refused the same way. A refused or
 * missing extension leaves memory as CPython manages it.
 *
 * Both functions run with the GIL held and call nothing that allocates
 * Python memory while they read pool headers, so pymalloc never changes a
 * pool under them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && SIZEOF_VOID_P == 8
#define LAYOUT_KNOWN 1
#else
#define LAYOUT_KNOWN 0
#endif

/* pymalloc's geometry on 64-bit CPython 3.11-3.13 (Objects/obmalloc.c,
 * Include/internal/pycore_obmalloc.h). */
#define ARENA_SIZE ((size_t)1 << 20)
#define POOL_SIZE ((uintptr_t)1 << 14)
#define ALIGNMENT_SHIFT 4
#define DUMMY_SIZE_IDX 0xffffu

/* struct pool_header, field for field. */
typedef struct pool_header {
    union {
        void *padding;
        unsigned int count; /* blocks in use */
    } ref;
    void *freeblock;
    struct pool_header *nextpool;
    struct pool_header *prevpool;
    unsigned int arenaindex;
    unsigned int szidx; /* size class */
    unsigned int nextoffset;
    unsigned int maxnextoffset; /* 0 only in a pool never used */
} pool_header;

/* Where a pool's first block starts: the header, rounded up to the alignment. */
#define POOL_OVERHEAD 48u
_Static_assert(sizeof(pool_header) == POOL_OVERHEAD || SIZEOF_VOID_P != 8, "pool header layout");

static PyObjectArenaAllocator wrapped;
static int tracking = 0; /* the wrapper is installed */
static int usable = 0;   /* ... and the layout check passed */
static uintptr_t *arenas = NULL;
static size_t n_arenas = 0;
static size_t cap_arenas = 0;

static void *
arena_alloc(void *ctx, size_t size)
{
    void *arena = wrapped.alloc(wrapped.ctx, size);
    if (arena == NULL || size != ARENA_SIZE) {
        return arena;
    }
    if (n_arenas == cap_arenas) {
        size_t cap = cap_arenas ? cap_arenas * 2 : 256;
        uintptr_t *grown = realloc(arenas, cap * sizeof(uintptr_t));
        if (grown == NULL) {
            return arena; /* left untracked: never released, still correct */
        }
        arenas = grown;
        cap_arenas = cap;
    }
    arenas[n_arenas++] = (uintptr_t)arena;
    return arena;
}

static void
arena_free(void *ctx, void *ptr, size_t size)
{
    for (size_t i = 0; i < n_arenas; i++) {
        if (arenas[i] == (uintptr_t)ptr) {
            arenas[i] = arenas[--n_arenas];
            break;
        }
    }
    wrapped.free(wrapped.ctx, ptr, size);
}

static int
in_tracked_arena(uintptr_t address)
{
    for (size_t i = 0; i < n_arenas; i++) {
        if (address >= arenas[i] && address < arenas[i] + ARENA_SIZE) {
            return 1;
        }
    }
    return 0;
}

/* Whether a pool holding a block of `size` bytes looks as pymalloc sets it up. */
static int
pool_looks_right(uintptr_t block, size_t size)
{
    uintptr_t start = block & ~(POOL_SIZE - 1);
    if (!in_tracked_arena(start) || !in_tracked_arena(start + POOL_SIZE - 1)) {
        return 0;
    }
    const pool_header *pool = (const pool_header *)start;
    unsigned int szidx = (unsigned int)((size - 1) >> ALIGNMENT_SHIFT);
    unsigned int block_size = (szidx + 1) << ALIGNMENT_SHIFT;
    uintptr_t freeblock = (uintptr_t)pool->freeblock;
    return pool->ref.count >= 1 && pool->szidx == szidx &&
           pool->maxnextoffset == POOL_SIZE - block_size &&
           pool->nextoffset >= POOL_OVERHEAD + block_size && pool->nextoffset <= POOL_SIZE &&
           (pool->nextoffset - POOL_OVERHEAD) % block_size == 0 &&
           (freeblock == 0 || (freeblock > start && freeblock < start + POOL_SIZE));
}

/* Allocates small blocks until one comes from an arena taken since the
 * wrapper was installed, and checks its pool's header; frees them all. */
static int
layout_checks_out(void)
{
    enum { MAX_BLOCKS = 1 << 18, SIZE = 24 };
    void **blocks = malloc(MAX_BLOCKS * sizeof(void *));
    if (blocks == NULL) {
        return 0;
    }
    int ok = 0;
    int n = 0;
    while (n < MAX_BLOCKS) {
        void *block = PyObject_Malloc(SIZE);
        if (block == NULL) {
            break;
        }
        blocks[n++] = block;
        if (in_tracked_arena((uintptr_t)block)) {
            ok = pool_looks_right((uintptr_t)block, SIZE);
            break;
        }
    }
    while (n > 0) {
        PyObject_Free(blocks[--n]);
    }
    free(blocks);
    return ok;
}

PyDoc_STRVAR(track_doc,
"track() -> bool: watch pymalloc's arenas from now on; False if release()\n"
"cannot work here (unknown CPython version, no pymalloc, debug hooks).\n"
"Idempotent.");

static PyObject *
track(PyObject *module, PyObject *unused)
{
    if (!tracking && LAYOUT_KNOWN && POOL_SIZE % (uintptr_t)sysconf(_SC_PAGESIZE) == 0 &&
        (uintptr_t)sysconf(_SC_PAGESIZE) < POOL_SIZE) {
        PyObject_GetArenaAllocator(&wrapped);
        PyObjectArenaAllocator mine = {NULL, arena_alloc, arena_free};
        PyObject_SetArenaAllocator(&mine);
        tracking = 1;
        usable = layout_checks_out();
    }
    return PyBool_FromLong(usable);
}

/* Calls `each(pool, page size)` for every pool carved from an arena seen
 * since track() (a pool never carved reads as zeros: maxnextoffset 0) and
 * adds up what it returns. */
static Py_ssize_t
sum_over_pools(Py_ssize_t (*each)(uintptr_t, uintptr_t))
{
    Py_ssize_t total = 0;
    if (!usable) {
        return 0;
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < n_arenas; i++) {
        uintptr_t end = arenas[i] + ARENA_SIZE;
        uintptr_t start = (arenas[i] + POOL_SIZE - 1) & ~(POOL_SIZE - 1);
        for (uintptr_t p = start; p + POOL_SIZE <= end; p += POOL_SIZE) {
            if (((pool_header *)p)->maxnextoffset != 0) {
                total += each(p, page);
            }
        }
    }
    return total;
}

/* The empty pool at `p` gives back all its pages but the first; 1 if it did. */
static Py_ssize_t
release_empty_pool(uintptr_t p, uintptr_t page)
{
    pool_header *pool = (pool_header *)p;
    if (pool->ref.count != 0 || pool->szidx == DUMMY_SIZE_IDX) {
        return 0; /* in use, or already released */
    }
    if (madvise((void *)(p + page), POOL_SIZE - page, MADV_DONTNEED) != 0) {
        return 0;
    }
    pool->szidx = DUMMY_SIZE_IDX;
    return 1;
}

PyDoc_STRVAR(release_doc,
"release() -> int: let the system take back the pages of every empty pool in\n"
"the arenas seen since track() but the first page of each; returns how many\n"
"pools gave pages back (0 when track() said False).");

static PyObject *
release(PyObject *module, PyObject *unused)
{
    return PyLong_FromSsize_t(sum_over_pools(release_empty_pool));
}

/* A page of a pool: the pages a block of `size` bytes at `offset` touches. */
#define FIRST_PAGE(offset, page) ((offset) / (page))
#define LAST_PAGE(offset, size, page) (((offset) + (size) - 1) / (page))

/* The pages of the used pool at `p` that hold no block in use go back to the
 * system (see the module comment); returns how many. A pool that is full,
 * whose free list does not look as pymalloc keeps it, or whose free list
 * would be left empty (a pool in pymalloc's used lists must have a free
 * block) is left alone. */
static Py_ssize_t
release_used_pool_pages(uintptr_t p, uintptr_t page)
{
    enum { MAX_PAGES = 16, MAX_BLOCKS = 1024 }; /* 4 pages and 1,021 blocks here */
    pool_header *pool = (pool_header *)p;
    if (pool->ref.count == 0 || pool->szidx == DUMMY_SIZE_IDX || pool->freeblock == NULL) {
        return 0;
    }
    uintptr_t size = (uintptr_t)(pool->szidx + 1) << ALIGNMENT_SHIFT;
    if (pool->maxnextoffset != POOL_SIZE - size || pool->nextoffset < POOL_OVERHEAD + size ||
        pool->nextoffset > POOL_SIZE || (pool->nextoffset - POOL_OVERHEAD) % size != 0) {
        return 0;
    }
    uintptr_t n_pages = POOL_SIZE / page;
    /* Blocks below nextoffset have been handed out at least once: each is in
     * use or on the free list. Those above it have never been touched. */
    uintptr_t carved = (pool->nextoffset - POOL_OVERHEAD) / size;
    if (n_pages > MAX_PAGES || carved > MAX_BLOCKS) {
        return 0;
    }
    unsigned char is_free[MAX_BLOCKS];
    memset(is_free, 0, carved);
    uintptr_t n_free = 0;
    uintptr_t end = p + POOL_OVERHEAD + carved * size;
    for (uintptr_t b = (uintptr_t)pool->freeblock; b != 0; b = *(uintptr_t *)b) {
        if (b < p + POOL_OVERHEAD || b >= end || (b - p - POOL_OVERHEAD) % size != 0 ||
            n_free == carved) {
            return 0; /* not a list of this pool's blocks: leave the pool alone */
        }
        uintptr_t i = (b - p - POOL_OVERHEAD) / size;
        if (is_free[i]) {
            return 0; /* a cycle */
        }
        is_free[i] = 1;
        n_free++;
    }
    /* The header's page stays, and every page a block in use touches. */
    unsigned char keep[MAX_PAGES] = {1};
    for (uintptr_t i = 0; i < carved; i++) {
        if (!is_free[i]) {
            uintptr_t offset = POOL_OVERHEAD + i * size;
            for (uintptr_t k = FIRST_PAGE(offset, page); k <= LAST_PAGE(offset, size, page); k++) {
                keep[k] = 1;
            }
        }
    }
    int any = 0;
    for (uintptr_t k = 1; k < n_pages; k++) {
        any |= !keep[k];
    }
    if (!any) {
        return 0;
    }
    /* Relink the free list, in its order, without the blocks that touch a
     * page to be given back. A block's link is read before it is rewritten:
     * `link` trails behind `b`. */
    uintptr_t head = 0;
    uintptr_t *link = &head;
    for (uintptr_t b = (uintptr_t)pool->freeblock; b != 0; b = *(uintptr_t *)b) {
        uintptr_t offset = b - p;
        int stays = 1;
        for (uintptr_t k = FIRST_PAGE(offset, page); k <= LAST_PAGE(offset, size, page); k++) {
            stays &= keep[k];
        }
        if (stays) {
            *link = b;
            link = (uintptr_t *)b;
        }
    }
    if (head == 0) {
        return 0; /* nothing written yet: the list is as it was */
    }
    *link = 0;
    pool->freeblock = (void *)head;
    Py_ssize_t released = 0;
    for (uintptr_t k = 1; k < n_pages; k++) {
        if (!keep[k] && madvise((void *)(p + k * page), page, MADV_DONTNEED) == 0) {
            released++;
        }
    }
    return released;
}

PyDoc_STRVAR(release_used_doc,
"release_used() -> int: let the system take back every page of a pool in use\n"
"(in the arenas seen since track()) that holds no block in use, but the\n"
"pool's first; returns how many pages (0 when track() said False).");

static PyObject *
release_used(PyObject *module, PyObject *unused)
{
    return PyLong_FromSsize_t(sum_over_pools(release_used_pool_pages));
}

PyDoc_STRVAR(arenas_doc, "arenas() -> int: arenas seen since track() and still held.");

static PyObject *
arenas_held(PyObject *module, PyObject *unused)
{
    return PyLong_FromSize_t(n_arenas);
}

static PyMethodDef module_methods[] = {
    {"track", track, METH_NOARGS, track_doc},
    {"release", release, METH_NOARGS, release_doc},
    {"release_used", release_used, METH_NOARGS, release_used_doc},
    {"arenas", arenas_held, METH_NOARGS, arenas_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "vsmux.server._pools",
    .m_doc = PyDoc_STR("Pages of empty pymalloc pools back to the system (see vsmux.server.pools)."),
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__pools(void)
{
    return PyModule_Create(&module_def);
}
