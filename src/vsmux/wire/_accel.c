/*
 * vsmux.wire._accel: the per-event wire loops in C.
 *
 * The gateway's Python wire code (vsmux.wire.frames, vsmux.wire.pack) is the
 * reference; this module runs the same loops without per-bytecode cost and
 * is optional: when it is missing (no compiler at install time) or disabled
 * (VSMUX_PURE_PYTHON=1), the Python code runs instead.
 *
 * The rule that keeps both in step: C handles the ordinary case and hands
 * anything else back to Python. split() returns None for a response it does
 * not fully understand; Packer.add() stops at an event it cannot rename and
 * returns that event's index. Python then does that work itself, raising
 * FrameError with its own message for malformed bytes. So C never accepts
 * what Python would reject, and what C produces is what Python produces
 * (tests/wire/test_accel.py checks both on generated and mutated events).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

/* VEventType numbers of the events whose table name is renamed. */
#define ROW 12
#define FIELD 13
/* Keys (field number << 3 | wire type) of the fields the rename looks for. */
#define EVENTS_KEY 0x0a      /* VStreamResponse.events (1), length-delimited */
#define TYPE_KEY 0x08        /* VEvent.type (1), varint */
#define ROW_EVENT_KEY 0x2a   /* VEvent.row_event (5) */
#define FIELD_EVENT_KEY 0x32 /* VEvent.field_event (6) */
#define TABLE_NAME_KEY 0x0a  /* RowEvent/FieldEvent.table_name (1) */
#define MAX_FIELD_NUMBER ((1u << 29) - 1)

/* ------------------------------------------------------------------------ */
/* Varints                                                                   */

/* Reads a varint of at most `max_bytes` bytes at data[*pos], below `end`.
 * Returns 0 and advances *pos, or -1 when truncated or longer (the caller
 * then defers to Python, which reads up to ten bytes and reports errors). */
static int
read_varint(const unsigned char *data, Py_ssize_t end, Py_ssize_t *pos, int max_bytes,
            uint64_t *value)
{
    uint64_t result = 0;
    Py_ssize_t p = *pos;
    for (int i = 0; i < max_bytes; i++) {
        if (p >= end) {
            return -1;
        }
        unsigned char b = data[p++];
        result |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b < 0x80) {
            *pos = p;
            *value = result;
            return 0;
        }
    }
    return -1;
}

static inline Py_ssize_t
varint_size(uint64_t value)
{
    Py_ssize_t n = 1;
    while (value >= 0x80) {
        value >>= 7;
        n++;
    }
    return n;
}

static inline unsigned char *
write_varint(unsigned char *out, uint64_t value)
{
    while (value >= 0x80) {
        *out++ = (unsigned char)(value | 0x80);
        value >>= 7;
    }
    *out++ = (unsigned char)value;
    return out;
}

/* ------------------------------------------------------------------------ */
/* Frames: built without running Frame.__init__                              */

/* The Frame class and where its three slots live in an instance, set once by
 * bind(). Writing the slots directly is what makes creating a frame cheap;
 * bind() checks that they are plain object slots first. */
static PyTypeObject *frame_class = NULL;
static Py_ssize_t type_offset, raw_offset, header_offset;
static int frame_is_gc;
/* The VEventType numbers as ints, so a frame's type costs no allocation. */
#define TYPE_CACHE 64
static PyObject *type_ints[TYPE_CACHE];

static int
slot_offset(PyObject *cls, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyObject_GetAttrString(cls, name);
    if (descr == NULL) {
        return -1;
    }
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "Frame.%s is not a __slots__ member", name);
        Py_DECREF(descr);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX || (member->flags & READONLY)) {
        PyErr_Format(PyExc_TypeError, "Frame.%s is not a writable object slot", name);
        Py_DECREF(descr);
        return -1;
    }
    *offset = member->offset;
    Py_DECREF(descr);
    return 0;
}

static PyObject *
bind(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "bind() takes the Frame class");
        return NULL;
    }
    Py_ssize_t t, r, h;
    if (slot_offset(cls, "type", &t) < 0 || slot_offset(cls, "raw", &r) < 0 ||
        slot_offset(cls, "_header", &h) < 0) {
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(frame_class, (PyTypeObject *)cls);
    type_offset = t;
    raw_offset = r;
    header_offset = h;
    frame_is_gc = PyType_IS_GC((PyTypeObject *)cls);
    Py_RETURN_NONE;
}

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* A new Frame(type, raw) holding a new reference to raw. */
static PyObject *
new_frame(int type, PyObject *raw)
{
    PyObject *frame = frame_class->tp_alloc(frame_class, 0);
    if (frame == NULL) {
        return NULL;
    }
    PyObject *type_int = type_ints[type];
    Py_INCREF(type_int);
    Py_INCREF(raw);
    Py_INCREF(Py_None);
    SLOT(frame, type_offset) = type_int;
    SLOT(frame, raw_offset) = raw;
    SLOT(frame, header_offset) = Py_None;
    /* A frame holds an int, bytes and later a tuple of ints and strings: it
     * can never be part of a reference cycle. Left tracked, the millions of
     * frames in flight made the cyclic GC walk them all the time (it doubled
     * the cost of a split); refcounting still frees them. */
    if (frame_is_gc) {
        PyObject_GC_UnTrack(frame);
    }
    return frame;
}

/* ------------------------------------------------------------------------ */
/* split(body) -> list[Frame] | None                                         */

static PyObject *
split(PyObject *module, PyObject *body)
{
    if (frame_class == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() the Frame class first");
        return NULL;
    }
    if (!PyBytes_CheckExact(body)) {
        Py_RETURN_NONE;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(body);
    Py_ssize_t end = PyBytes_GET_SIZE(body);
    PyObject *frames = PyList_New(0);
    if (frames == NULL) {
        return NULL;
    }
    Py_ssize_t pos = 0;
    while (pos < end) {
        uint64_t length;
        /* Only `events` records whose event starts with a one-byte type; any
         * other field or layout is Python's (upb's) to handle. */
        if (data[pos] != EVENTS_KEY) {
            goto defer;
        }
        pos++;
        if (read_varint(data, end, &pos, 5, &length) < 0 || length > (uint64_t)(end - pos)) {
            goto defer;
        }
        const unsigned char *event = data + pos;
        if (length < 2 || event[0] != TYPE_KEY || event[1] >= TYPE_CACHE) {
            goto defer;
        }
        PyObject *raw = PyBytes_FromStringAndSize((const char *)event, (Py_ssize_t)length);
        if (raw == NULL) {
            goto error;
        }
        PyObject *frame = new_frame(event[1], raw);
        Py_DECREF(raw);
        if (frame == NULL) {
            goto error;
        }
        int failed = PyList_Append(frames, frame);
        Py_DECREF(frame);
        if (failed) {
            goto error;
        }
        pos += (Py_ssize_t)length;
    }
    return frames;
defer:
    Py_DECREF(frames);
    Py_RETURN_NONE;
error:
    Py_DECREF(frames);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The table rename's walk (the Python one is vsmux.wire.rename)             */

enum { FOUND, NOT_FOUND, DEFER };

/* Where an event's table name is: the sub-message's key at `key_pos`, its
 * length `sub_length`, its content from `sub_start`; the table_name field
 * from `sub_start` to `name_end`, its text from `name_start`. */
struct name_site {
    Py_ssize_t key_pos, sub_start, name_start, name_end;
    uint64_t sub_length;
};

/* The position after the field whose key is at data[pos]; -1 to defer. */
static Py_ssize_t
skip_field(const unsigned char *data, Py_ssize_t end, Py_ssize_t pos)
{
    uint64_t key, length;
    if (read_varint(data, end, &pos, 5, &key) < 0) {
        return -1;
    }
    uint64_t number = key >> 3;
    if (number == 0 || number > MAX_FIELD_NUMBER) {
        return -1;
    }
    switch (key & 7) {
    case 0:
        if (read_varint(data, end, &pos, 10, &length) < 0) {
            return -1;
        }
        return pos;
    case 1:
        return end - pos >= 8 ? pos + 8 : -1;
    case 2:
        if (read_varint(data, end, &pos, 5, &length) < 0 || length > (uint64_t)(end - pos)) {
            return -1;
        }
        return pos + (Py_ssize_t)length;
    case 5:
        return end - pos >= 4 ? pos + 4 : -1;
    default:
        return -1;
    }
}

/* Finds the first row_event/field_event (by `want`, its key) and the
 * table_name at its front, as vsmux.wire.rename.renamed_parts_walk does. */
static int
find_name(const unsigned char *data, Py_ssize_t end, unsigned char want, struct name_site *site)
{
    Py_ssize_t pos = 0;
    while (!(pos < end && data[pos] == want)) {
        if (pos >= end) {
            return NOT_FOUND;
        }
        pos = skip_field(data, end, pos);
        if (pos < 0) {
            return DEFER;
        }
    }
    site->key_pos = pos;
    pos++;
    if (read_varint(data, end, &pos, 5, &site->sub_length) < 0 ||
        site->sub_length > (uint64_t)(end - pos)) {
        return DEFER;
    }
    Py_ssize_t stop = pos + (Py_ssize_t)site->sub_length;
    site->sub_start = pos;
    if (pos < stop && data[pos] == TABLE_NAME_KEY) {
        uint64_t name_length;
        Py_ssize_t name_start = pos + 1;
        if (read_varint(data, end, &name_start, 5, &name_length) < 0 || name_start > stop ||
            name_length > (uint64_t)(stop - name_start)) {
            return DEFER;
        }
        site->name_start = name_start;
        site->name_end = name_start + (Py_ssize_t)name_length;
    }
    else {
        site->name_start = site->name_end = pos;
    }
    return FOUND;
}

/* ------------------------------------------------------------------------ */
/* Packer: frames into response bodies of at most max_bytes                  */

typedef struct {
    PyObject_HEAD
    unsigned char *buf; /* the body being filled */
    Py_ssize_t len, cap;
    Py_ssize_t max_bytes;
    PyObject *bodies; /* list of finished bodies (bytes) */
    Py_ssize_t finished; /* bytes in `bodies` */
} Packer;

static int
Packer_init(Packer *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"max_bytes", NULL};
    Py_ssize_t max_bytes;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n", keywords, &max_bytes)) {
        return -1;
    }
    if (max_bytes <= 0) {
        PyErr_Format(PyExc_ValueError, "max_bytes must be positive, not %zd", max_bytes);
        return -1;
    }
    PyObject *bodies = PyList_New(0);
    if (bodies == NULL) {
        return -1;
    }
    Py_XSETREF(self->bodies, bodies);
    self->max_bytes = max_bytes;
    self->len = 0;
    self->finished = 0;
    return 0;
}

static void
Packer_dealloc(Packer *self)
{
    PyMem_Free(self->buf);
    Py_XDECREF(self->bodies);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Ends the current body (if any) and adds it to the finished ones. */
static int
finish_body(Packer *self)
{
    if (self->len == 0) {
        return 0;
    }
    PyObject *body = PyBytes_FromStringAndSize((const char *)self->buf, self->len);
    if (body == NULL) {
        return -1;
    }
    int failed = PyList_Append(self->bodies, body);
    Py_DECREF(body);
    self->finished += self->len;
    self->len = 0;
    return failed;
}

/* Room for a record of `size` bytes: a new body when it would overflow the
 * current one (a record larger than max_bytes goes alone in its body).
 * Returns where to write, or NULL with an exception set. */
static unsigned char *
reserve(Packer *self, Py_ssize_t size)
{
    if (self->len + size > self->max_bytes && self->len > 0) {
        if (finish_body(self) < 0) {
            return NULL;
        }
    }
    if (self->len + size > self->cap) {
        Py_ssize_t cap = self->cap ? self->cap : 4096;
        while (cap < self->len + size) {
            cap *= 2;
        }
        unsigned char *buf = PyMem_Realloc(self->buf, cap);
        if (buf == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        self->buf = buf;
        self->cap = cap;
    }
    unsigned char *out = self->buf + self->len;
    self->len += size;
    return out;
}

static int
write_plain(Packer *self, const unsigned char *raw, Py_ssize_t n)
{
    unsigned char *out = reserve(self, 1 + varint_size((uint64_t)n) + n);
    if (out == NULL) {
        return -1;
    }
    *out++ = EVENTS_KEY;
    out = write_varint(out, (uint64_t)n);
    memcpy(out, raw, (size_t)n);
    return 0;
}

/* The event with `prefix` ("<keyspace>.") before its table name. */
static int
write_renamed(Packer *self, const unsigned char *raw, Py_ssize_t n, const struct name_site *site,
              const unsigned char *prefix, Py_ssize_t prefix_len)
{
    Py_ssize_t old_field = site->name_end - site->sub_start;
    Py_ssize_t name_len = site->name_end - site->name_start;
    uint64_t new_name_len = (uint64_t)(prefix_len + name_len);
    Py_ssize_t new_field = 1 + varint_size(new_name_len) + (Py_ssize_t)new_name_len;
    uint64_t sub_length = site->sub_length + (uint64_t)(new_field - old_field);
    Py_ssize_t head = site->key_pos + 1;
    Py_ssize_t tail = n - site->name_end;
    uint64_t event_len = (uint64_t)(head + varint_size(sub_length) + new_field + tail);
    unsigned char *out =
        reserve(self, 1 + varint_size(event_len) + (Py_ssize_t)event_len);
    if (out == NULL) {
        return -1;
    }
    *out++ = EVENTS_KEY;
    out = write_varint(out, event_len);
    memcpy(out, raw, (size_t)head);
    out = write_varint(out + head, sub_length);
    *out++ = TABLE_NAME_KEY;
    out = write_varint(out, new_name_len);
    memcpy(out, prefix, (size_t)prefix_len);
    memcpy(out + prefix_len, raw + site->name_start, (size_t)name_len);
    memcpy(out + prefix_len + name_len, raw + site->name_end, (size_t)tail);
    return 0;
}

/* The frame's type and raw bytes (borrowed from the frame); -1 if it is not
 * a Frame holding bytes. */
static int
frame_parts(PyObject *frame, long *type, PyObject **raw)
{
    if (Py_TYPE(frame) != frame_class) {
        return -1;
    }
    PyObject *type_obj = SLOT(frame, type_offset);
    *raw = SLOT(frame, raw_offset);
    if (type_obj == NULL || *raw == NULL || !PyLong_CheckExact(type_obj) ||
        !PyBytes_CheckExact(*raw)) {
        return -1;
    }
    *type = PyLong_AsLong(type_obj);
    if (*type == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(Packer_add_doc,
"add(frames, prefix, start) -> int\n\n"
"Write frames[start:] as records, renaming FIELD/ROW tables when prefix\n"
"(b'<keyspace>.') is given. Returns len(frames), or the index of the\n"
"first frame left to Python (not a plain Frame, or a rename to defer).");

static PyObject *
Packer_add(Packer *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add() takes frames, prefix and start");
        return NULL;
    }
    PyObject *prefix_obj = args[1];
    const unsigned char *prefix = NULL;
    Py_ssize_t prefix_len = 0;
    if (prefix_obj != Py_None) {
        if (!PyBytes_Check(prefix_obj)) {
            PyErr_SetString(PyExc_TypeError, "prefix must be bytes or None");
            return NULL;
        }
        prefix = (const unsigned char *)PyBytes_AS_STRING(prefix_obj);
        prefix_len = PyBytes_GET_SIZE(prefix_obj);
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "frames must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    /* Nothing in this loop runs Python code (no getattr, no GC-tracked
     * allocation), but the size and items are read per step all the same. */
    Py_ssize_t i;
    for (i = start < 0 ? 0 : start; i < PySequence_Fast_GET_SIZE(seq); i++) {
        long type;
        PyObject *raw_obj;
        if (frame_parts(PySequence_Fast_GET_ITEM(seq, i), &type, &raw_obj) < 0) {
            break;
        }
        const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(raw_obj);
        Py_ssize_t n = PyBytes_GET_SIZE(raw_obj);
        int failed;
        if (prefix != NULL && (type == ROW || type == FIELD)) {
            struct name_site site;
            int found = find_name(raw, n, type == ROW ? ROW_EVENT_KEY : FIELD_EVENT_KEY, &site);
            if (found == DEFER) {
                break;
            }
            failed = found == FOUND ? write_renamed(self, raw, n, &site, prefix, prefix_len)
                                    : write_plain(self, raw, n);
        }
        else {
            failed = write_plain(self, raw, n);
        }
        if (failed) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    return PyLong_FromSsize_t(i);
}

PyDoc_STRVAR(Packer_add_event_doc,
"add_event(raw) -> None\n\nWrite one encoded event as it is.");

static PyObject *
Packer_add_event(Packer *self, PyObject *raw)
{
    Py_buffer view;
    if (PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int failed = write_plain(self, (const unsigned char *)view.buf, view.len);
    PyBuffer_Release(&view);
    if (failed) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Packer_cut_doc,
"cut() -> None\n\nEnd the body being filled; the next record starts a new one.");

static PyObject *
Packer_cut(Packer *self, PyObject *unused)
{
    if (finish_body(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Packer_take_doc,
"take() -> list[bytes]\n\nEvery body so far; the packer starts empty.");

static PyObject *
Packer_take(Packer *self, PyObject *unused)
{
    if (finish_body(self) < 0) {
        return NULL;
    }
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL) {
        return NULL;
    }
    PyObject *bodies = self->bodies;
    self->bodies = fresh;
    self->finished = 0;
    /* Keep the buffer for the next bodies unless one huge event grew it. */
    if (self->cap > 2 * self->max_bytes + 4096) {
        PyMem_Free(self->buf);
        self->buf = NULL;
        self->cap = 0;
    }
    return bodies;
}

static PyObject *
Packer_get_pending_bytes(Packer *self, void *closure)
{
    return PyLong_FromSsize_t(self->finished + self->len);
}

static PyMethodDef Packer_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Packer_add, METH_FASTCALL, Packer_add_doc},
    {"add_event", (PyCFunction)Packer_add_event, METH_O, Packer_add_event_doc},
    {"cut", (PyCFunction)Packer_cut, METH_NOARGS, Packer_cut_doc},
    {"take", (PyCFunction)Packer_take, METH_NOARGS, Packer_take_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Packer_getset[] = {
    {"pending_bytes", (getter)Packer_get_pending_bytes, NULL, "Bytes packed since take().",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PackerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "vsmux.wire._accel.Packer",
    .tp_doc = PyDoc_STR("Packer(max_bytes): frames into response bodies (see vsmux.wire.pack)."),
    .tp_basicsize = sizeof(Packer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Packer_init,
    .tp_dealloc = (destructor)Packer_dealloc,
    .tp_methods = Packer_methods,
    .tp_getset = Packer_getset,
};

/* ------------------------------------------------------------------------ */
/* type_indexes(frames, mask) -> list[int]                                   */

static PyObject *
type_indexes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "type_indexes() takes frames and a type mask");
        return NULL;
    }
    unsigned long long mask = PyLong_AsUnsignedLongLong(args[1]);
    if (mask == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "frames must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    PyObject *indexes = PyList_New(0);
    if (indexes == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    /* Size and items are read again on every step: reading `type` through
     * getattr (a frame that is not a plain Frame) runs Python code, which
     * could change the list under us. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *frame = PySequence_Fast_GET_ITEM(seq, i);
        long type;
        if (frame_class != NULL && Py_TYPE(frame) == frame_class &&
            SLOT(frame, type_offset) != NULL && PyLong_CheckExact(SLOT(frame, type_offset))) {
            type = PyLong_AsLong(SLOT(frame, type_offset));
        }
        else {
            Py_INCREF(frame);
            PyObject *type_obj = PyObject_GetAttrString(frame, "type");
            Py_DECREF(frame);
            if (type_obj == NULL) {
                goto error;
            }
            type = PyLong_AsLong(type_obj);
            Py_DECREF(type_obj);
        }
        if (type == -1 && PyErr_Occurred()) {
            goto error;
        }
        if (type >= 0 && type < 64 && (mask >> type) & 1) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL) {
                goto error;
            }
            int failed = PyList_Append(indexes, index);
            Py_DECREF(index);
            if (failed) {
                goto error;
            }
        }
    }
    Py_DECREF(seq);
    return indexes;
error:
    Py_DECREF(seq);
    Py_DECREF(indexes);
    return NULL;
}

/* ------------------------------------------------------------------------ */

static PyMethodDef module_methods[] = {
    {"bind", bind, METH_O, PyDoc_STR("bind(Frame): the class split() builds.")},
    {"split", split, METH_O,
     PyDoc_STR("split(body) -> list[Frame] | None: None leaves the response to Python.")},
    {"type_indexes", (PyCFunction)(void (*)(void))type_indexes, METH_FASTCALL,
     PyDoc_STR("type_indexes(frames, mask) -> list[int]: where frames' types are in mask.")},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "vsmux.wire._accel",
    .m_doc = PyDoc_STR("The per-event wire loops in C (optional; see vsmux.wire.accel)."),
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    for (int i = 0; i < TYPE_CACHE; i++) {
        type_ints[i] = PyLong_FromLong(i);
        if (type_ints[i] == NULL) {
            return NULL;
        }
    }
    if (PyType_Ready(&PackerType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&PackerType);
    if (PyModule_AddObject(module, "Packer", (PyObject *)&PackerType) < 0) {
        Py_DECREF(&PackerType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
