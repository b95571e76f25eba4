// kubewire_tap: a Linux TAP device for Node.js with batched, event-driven reads.
//
// One TapHandle owns one file descriptor of /dev/net/tun (IFF_TAP | IFF_NO_PI, optionally
// IFF_VNET_HDR / IFF_MULTI_QUEUE), opened O_NONBLOCK | O_CLOEXEC. Reads are driven by a uv_poll
// handle on the environment's libuv loop: on every readable wake-up the fd is drained with
// read(2) into one preallocated arena (a Buffer created once) until EAGAIN, maxBatch frames, or
// the arena has no room left for a frame of maxFrameBytes; the start/length of each frame goes into one
// preallocated Uint32Array, and JavaScript is called ONCE per wake-up with (arena, offsets, count).
// Nothing is allocated per frame, and nothing per wake-up besides the handle scope of the call.
//
// Writes are synchronous write(2) calls on the non-blocking fd from the JS thread: write() for
// one frame, writeBatch() for many frames described by (start, length) pairs. A pair whose length
// has bit 31 set continues the frame of the pair before it: that frame is written with one
// writev(2) of all its parts (a frame gathered from pieces without copying them together first).
// A pair whose start has bit 31 set lies in an optional second buffer (e.g. headers built in one
// buffer, payload left where it was read in another).
//
// Lifetime: the JS object owns a heap-allocated Tap. While polling, a strong reference keeps the
// JS object (and thus the Tap) alive. close() stops the poll, uv_close()s the handle and closes
// the fd; the Tap memory is freed once both the JS object has been finalized and the uv handle's
// close callback has run, so closing from inside the batch callback is safe. An async cleanup hook
// closes everything when the environment (main thread or worker) is torn down.

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include <new>

#include "errno_name.h"
#include "packet.h"

namespace kubewire {
namespace {

constexpr size_t kMinFrameBytes = 64;
// Writable bytes kept free in front of each frame read into the arena.
constexpr size_t kHeadroom = 64;
constexpr size_t kMaxArenaBytes = size_t{1} << 30;  // 1 GiB
constexpr uint32_t kMaxBatchLimit = 1u << 20;
constexpr uint32_t kFlagVnetHdr = 1u << 0;
constexpr uint32_t kFlagMultiQueue = 1u << 1;
constexpr int kVnetHdrBytes = 10;  // sizeof(struct virtio_net_hdr), the kernel default
// writeBatch: a length with this bit continues the previous pair's frame (one writev per frame).
constexpr uint32_t kContinues = 0x80000000u;
// writeBatch: a start with this bit lies in the second buffer.
constexpr uint32_t kAux = 0x80000000u;
// Parts of one gathered frame: at most IOV_MAX (1024 on Linux).
constexpr uint32_t kMaxFrameParts = 1024;

struct Stats {
  uint64_t rx_frames = 0;
  uint64_t rx_bytes = 0;
  uint64_t rx_batches = 0;
  uint64_t rx_truncated = 0;
  uint64_t rx_max_batch = 0;
  uint64_t tx_frames = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_dropped = 0;  // EIO in writeBatch: the device is down, frame dropped
  uint64_t tx_again = 0;    // EAGAIN / ENOBUFS: write refused, caller told
};

struct Tap {
  napi_env env = nullptr;
  int fd = -1;
  bool vnet_hdr = false;

  uint8_t* arena = nullptr;
  size_t arena_bytes = 0;
  size_t max_frame = 0;
  uint32_t* offsets = nullptr;
  uint32_t max_batch = 0;

  napi_ref self_ref = nullptr;     // weak (0) when idle, strong (1) while polling
  napi_ref arena_ref = nullptr;    // strong
  napi_ref offsets_ref = nullptr;  // strong
  napi_ref on_batch_ref = nullptr;
  napi_ref on_error_ref = nullptr;
  napi_async_context async_ctx = nullptr;
  napi_async_cleanup_hook_handle cleanup_hook = nullptr;

  uv_poll_t poll;
  bool polling = false;
  bool closed = false;
  bool in_callback = false;
  bool poll_close_pending = false;
  bool finalized = false;
  bool teardown = false;

  Stats stats;
};

// ---------------------------------------------------------------------------------------------
// Errors

const char* ErrorMessage(int err, char* buf, size_t len) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(err, buf, len);
#else
  if (strerror_r(err, buf, len) != 0) snprintf(buf, len, "errno %d", err);
  return buf;
#endif
}

// Error like Node's system errors: message "EIO: Input/output error, write", .code "EIO",
// .errno -5, .syscall "write".
napi_value MakeErrnoError(napi_env env, int err, const char* syscall) {
  const char* code = ErrnoName(err);
  char text[128];
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s, %s", code, ErrorMessage(err, text, sizeof text), syscall);
  napi_value code_v, msg_v, error, errno_v, syscall_v;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_error(env, code_v, msg_v, &error);
  napi_create_int32(env, -err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  return error;
}

napi_value ThrowErrno(napi_env env, int err, const char* syscall) {
  napi_throw(env, MakeErrnoError(env, err, syscall));
  return nullptr;
}

napi_value ThrowType(napi_env env, const char* msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return nullptr;
}

napi_value ThrowRange(napi_env env, const char* msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return nullptr;
}

// An exception thrown by a JS callback invoked from the loop has nobody to catch it: hand it to
// Node's uncaught-exception machinery ('uncaughtException' or process exit), as a JS callback
// from any other libuv-driven source would.
void RaisePendingException(napi_env env, napi_status status) {
  if (status != napi_pending_exception) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
  }
  napi_value exc;
  if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
}

// ---------------------------------------------------------------------------------------------
// Lifetime

void MaybeFree(Tap* t) {
  if (t->finalized && !t->poll_close_pending) delete t;
}

void OnPollClosed(uv_handle_t* handle) {
  Tap* t = static_cast<Tap*>(handle->data);
  t->poll_close_pending = false;
  if (t->cleanup_hook != nullptr) {
    napi_async_cleanup_hook_handle hook = t->cleanup_hook;
    t->cleanup_hook = nullptr;
    napi_remove_async_cleanup_hook(hook);
  }
  MaybeFree(t);
}

void ReleaseCallbacks(Tap* t) {
  if (t->teardown) {
    t->on_batch_ref = nullptr;  // the environment frees its references itself
    t->on_error_ref = nullptr;
    return;
  }
  if (t->on_batch_ref != nullptr) napi_delete_reference(t->env, t->on_batch_ref);
  if (t->on_error_ref != nullptr) napi_delete_reference(t->env, t->on_error_ref);
  t->on_batch_ref = nullptr;
  t->on_error_ref = nullptr;
}

void MaybeDestroyAsyncContext(Tap* t) {
  if (t->async_ctx == nullptr || t->in_callback || !t->closed) return;
  if (!t->teardown) napi_async_destroy(t->env, t->async_ctx);
  t->async_ctx = nullptr;
}

void StopPolling(Tap* t) {
  if (!t->polling) return;
  t->polling = false;
  uv_poll_stop(&t->poll);
  if (!t->teardown) napi_reference_unref(t->env, t->self_ref, nullptr);
  ReleaseCallbacks(t);
}

void DoClose(Tap* t) {
  if (t->closed) return;
  t->closed = true;
  StopPolling(t);
  ReleaseCallbacks(t);
  // The poll handle is stopped (epoll registration removed) before the fd is closed.
  t->poll_close_pending = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&t->poll), OnPollClosed);
  close(t->fd);  // never retried: on Linux the fd is released even on EINTR
  t->fd = -1;
  MaybeDestroyAsyncContext(t);
}

// Environment teardown (process exit, worker termination): no JS may run; close the handle and
// report completion from the uv close callback (OnPollClosed removes the hook).
void OnCleanupHook(napi_async_cleanup_hook_handle /*handle*/, void* arg) {
  Tap* t = static_cast<Tap*>(arg);
  t->teardown = true;
  if (t->closed) {
    if (!t->poll_close_pending && t->cleanup_hook != nullptr) {
      napi_async_cleanup_hook_handle hook = t->cleanup_hook;
      t->cleanup_hook = nullptr;
      napi_remove_async_cleanup_hook(hook);
    }
    return;
  }
  DoClose(t);
}

void Finalize(napi_env env, void* data, void* /*hint*/) {
  Tap* t = static_cast<Tap*>(data);
  DoClose(t);  // no-op if closed; cannot be polling here (the strong self reference)
  if (!t->teardown) {
    if (t->async_ctx != nullptr) napi_async_destroy(env, t->async_ctx);
    if (t->self_ref != nullptr) napi_delete_reference(env, t->self_ref);
    if (t->arena_ref != nullptr) napi_delete_reference(env, t->arena_ref);
    if (t->offsets_ref != nullptr) napi_delete_reference(env, t->offsets_ref);
  }
  t->async_ctx = nullptr;
  t->self_ref = t->arena_ref = t->offsets_ref = nullptr;
  t->finalized = true;
  MaybeFree(t);
}

// ---------------------------------------------------------------------------------------------
// Read path

// Calls fn(argv...) with `self` as receiver inside a proper callback scope (microtasks and
// process.nextTick run afterwards, async_hooks see an "kubewire:TapDevice" resource).
void CallJs(Tap* t, napi_value self, napi_value fn, size_t argc, const napi_value* argv) {
  napi_value result;
  t->in_callback = true;
  napi_status status = napi_make_callback(t->env, t->async_ctx, self, fn, argc, argv, &result);
  t->in_callback = false;
  if (status != napi_ok) RaisePendingException(t->env, status);
}

void ReportFatal(Tap* t, napi_value self, int err) {
  napi_env env = t->env;
  napi_value error = MakeErrnoError(env, err, "read");
  napi_value on_error = nullptr;
  if (t->on_error_ref != nullptr) napi_get_reference_value(env, t->on_error_ref, &on_error);
  StopPolling(t);  // releases the callback references; `on_error` stays rooted in our scope
  if (on_error != nullptr) CallJs(t, self, on_error, 1, &error);
}

void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  Tap* t = static_cast<Tap*>(handle->data);
  if (t->closed || !t->polling) return;

  uint8_t* const arena = t->arena;
  uint32_t* const offsets = t->offsets;
  const size_t max_frame = t->max_frame;
  const size_t arena_bytes = t->arena_bytes;
  const uint32_t max_batch = t->max_batch;
  uint32_t count = 0;
  uint32_t reads = 0;
  // Every frame gets kHeadroom writable bytes in front of it, so the forwarder can
  // prepend an encapsulation header (IPIP: 20 bytes) in place without clobbering the
  // previous frame, which may still be queued for transmission.
  size_t off = kHeadroom;
  int err = 0;

  // Each read asks for one byte more than max_frame: tun returns min(frame length, requested)
  // and silently drops the tail, so a result above max_frame is how an oversized frame shows.
  while (reads < max_batch && off + max_frame < arena_bytes) {
    ssize_t n = read(t->fd, arena + off, max_frame + 1);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e != EAGAIN && e != EWOULDBLOCK) err = e;
      break;
    }
    if (n == 0) break;
    reads++;
    if (static_cast<size_t>(n) > max_frame) {
      t->stats.rx_truncated++;
      continue;
    }
    offsets[2 * count] = static_cast<uint32_t>(off);
    offsets[2 * count + 1] = static_cast<uint32_t>(n);
    count++;
    t->stats.rx_bytes += static_cast<uint64_t>(n);
    off += ((static_cast<size_t>(n) + 7) & ~static_cast<size_t>(7)) + kHeadroom;
  }
  // POLLERR (libuv reports UV_EBADF and has already stopped the handle): the read above found the
  // real cause (EBADFD once the device is gone); fall back to libuv's code if it did not.
  if (status < 0 && err == 0) err = -status;
  if (count == 0 && err == 0) return;

  napi_env env = t->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value self;
  napi_get_reference_value(env, t->self_ref, &self);  // strong while polling; rooted from here on

  if (count > 0) {
    t->stats.rx_frames += count;
    t->stats.rx_batches++;
    if (count > t->stats.rx_max_batch) t->stats.rx_max_batch = count;
    napi_value fn, argv[3];
    napi_get_reference_value(env, t->on_batch_ref, &fn);
    napi_get_reference_value(env, t->arena_ref, &argv[0]);
    napi_get_reference_value(env, t->offsets_ref, &argv[1]);
    napi_create_uint32(env, count, &argv[2]);
    CallJs(t, self, fn, 3, argv);
  }
  // The handler may have stopped or closed the device, or even restarted it.
  if (err != 0 && !t->closed && t->polling) ReportFatal(t, self, err);
  MaybeDestroyAsyncContext(t);
  napi_close_handle_scope(env, scope);
}

// ---------------------------------------------------------------------------------------------
// Argument helpers

Tap* Unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  void* data = nullptr;
  if (napi_unwrap(env, self, &data) != napi_ok || data == nullptr) {
    ThrowType(env, "not a TapHandle");
    return nullptr;
  }
  return static_cast<Tap*>(data);
}

bool GetBytes(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  size_t length;
  void* ptr;
  napi_value ab;
  size_t byte_offset;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, &ab, &byte_offset) != napi_ok ||
      type != napi_uint8_array) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    ThrowType(env, "buffer must be a Buffer or Uint8Array");
    return false;
  }
  *data = static_cast<uint8_t*>(ptr);
  *len = length;
  return true;
}

bool GetInt64(napi_env env, napi_value v, int64_t* out, const char* what) {
  napi_valuetype type;
  napi_typeof(env, v, &type);
  if (type != napi_number || napi_get_value_int64(env, v, out) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    ThrowType(env, msg);
    return false;
  }
  return true;
}

bool IsFunction(napi_env env, napi_value v) {
  napi_valuetype type;
  return napi_typeof(env, v, &type) == napi_ok && type == napi_function;
}

napi_value Undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Methods

// new TapHandle(name, flags, arenaBytes, maxFrameBytes, maxBatch)
napi_value New(napi_env env, napi_callback_info info) {
  napi_value target;
  napi_get_new_target(env, info, &target);
  if (target == nullptr) return ThrowType(env, "TapHandle must be called with new");
  size_t argc = 5;
  napi_value argv[5];
  napi_value self;
  napi_get_cb_info(env, info, &argc, argv, &self, nullptr);
  if (argc < 5) return ThrowType(env, "TapHandle(name, flags, arenaBytes, maxFrameBytes, maxBatch)");

  char name[IFNAMSIZ + 1];
  size_t name_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok) {
    return ThrowType(env, "name must be a string");
  }
  if (name_len >= IFNAMSIZ) return ThrowRange(env, "name must be at most 15 bytes");
  int64_t flags, arena_bytes, max_frame, max_batch;
  if (!GetInt64(env, argv[1], &flags, "flags") ||
      !GetInt64(env, argv[2], &arena_bytes, "arenaBytes") ||
      !GetInt64(env, argv[3], &max_frame, "maxFrameBytes") ||
      !GetInt64(env, argv[4], &max_batch, "maxBatch")) {
    return nullptr;
  }
  if (max_frame < static_cast<int64_t>(kMinFrameBytes) || max_frame > 0xFFFFFF) {
    return ThrowRange(env, "maxFrameBytes out of range");
  }
  if (arena_bytes <= max_frame || arena_bytes > static_cast<int64_t>(kMaxArenaBytes)) {
    return ThrowRange(env, "arenaBytes must be > maxFrameBytes and <= 1 GiB");
  }
  if (max_batch < 1 || max_batch > kMaxBatchLimit) return ThrowRange(env, "maxBatch out of range");

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, errno, "open");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (flags & kFlagVnetHdr) ifr.ifr_flags |= IFF_VNET_HDR;
  if (flags & kFlagMultiQueue) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  memcpy(ifr.ifr_name, name, name_len);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return ThrowErrno(env, e, "ioctl(TUNSETIFF)");
  }
  char actual[IFNAMSIZ + 1];
  memcpy(actual, ifr.ifr_name, IFNAMSIZ);
  actual[IFNAMSIZ] = '\0';

  Tap* t = new (std::nothrow) Tap();
  if (t == nullptr) {
    close(fd);
    return ThrowErrno(env, ENOMEM, "open");
  }
  t->env = env;
  t->fd = fd;
  t->vnet_hdr = (flags & kFlagVnetHdr) != 0;
  t->arena_bytes = static_cast<size_t>(arena_bytes);
  t->max_frame = static_cast<size_t>(max_frame);
  t->max_batch = static_cast<uint32_t>(max_batch);

  napi_value arena, offsets_ab, offsets, v;
  void* arena_data = nullptr;
  void* offsets_data = nullptr;
  bool ok = napi_create_buffer(env, t->arena_bytes, &arena_data, &arena) == napi_ok &&
            napi_create_arraybuffer(env, size_t{t->max_batch} * 8, &offsets_data, &offsets_ab) ==
                napi_ok &&
            napi_create_typedarray(env, napi_uint32_array, size_t{t->max_batch} * 2, offsets_ab, 0,
                                   &offsets) == napi_ok;
  uv_loop_t* loop = nullptr;
  ok = ok && napi_get_uv_event_loop(env, &loop) == napi_ok;
  if (!ok) {
    close(fd);
    delete t;
    return nullptr;  // the failing call left an exception pending
  }
  t->arena = static_cast<uint8_t*>(arena_data);
  t->offsets = static_cast<uint32_t*>(offsets_data);

  int r = uv_poll_init(loop, &t->poll, fd);
  if (r < 0) {
    close(fd);
    delete t;
    return ThrowErrno(env, -r, "uv_poll_init");
  }
  t->poll.data = t;

  if (napi_wrap(env, self, t, Finalize, nullptr, nullptr) != napi_ok) {
    // Not wrapped: nobody will finalize; close the handle and free from its close callback.
    t->finalized = true;
    DoClose(t);
    return nullptr;
  }
  napi_create_reference(env, self, 0, &t->self_ref);
  napi_create_reference(env, arena, 1, &t->arena_ref);
  napi_create_reference(env, offsets, 1, &t->offsets_ref);
  napi_add_async_cleanup_hook(env, OnCleanupHook, t, &t->cleanup_hook);

  napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, self, "name", v);
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, self, "fd", v);
  napi_create_int32(env, t->vnet_hdr ? kVnetHdrBytes : 0, &v);
  napi_set_named_property(env, self, "vnetHdrBytes", v);
  napi_set_named_property(env, self, "arena", arena);
  napi_set_named_property(env, self, "offsets", offsets);
  return self;
}

// start(onBatch, onError | null)
napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Tap* t = Unwrap(env, info, &argc, argv);
  if (t == nullptr) return nullptr;
  if (t->closed) return ThrowErrno(env, EBADF, "start");
  if (argc < 1 || !IsFunction(env, argv[0])) return ThrowType(env, "onBatch must be a function");
  bool has_on_error = argc >= 2 && IsFunction(env, argv[1]);
  if (t->async_ctx == nullptr) {
    napi_value resource_name;
    napi_create_string_utf8(env, "kubewire:TapDevice", NAPI_AUTO_LENGTH, &resource_name);
    if (napi_async_init(env, nullptr, resource_name, &t->async_ctx) != napi_ok) return nullptr;
  }
  if (!t->polling) {
    int r = uv_poll_start(&t->poll, UV_READABLE, OnPoll);
    if (r < 0) return ThrowErrno(env, -r, "uv_poll_start");
    t->polling = true;
    napi_reference_ref(env, t->self_ref, nullptr);
  }
  ReleaseCallbacks(t);  // start() while started replaces the handlers
  napi_create_reference(env, argv[0], 1, &t->on_batch_ref);
  if (has_on_error) napi_create_reference(env, argv[1], 1, &t->on_error_ref);
  return Undefined(env);
}

napi_value Stop(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Tap* t = Unwrap(env, info, &argc, nullptr);
  if (t == nullptr) return nullptr;
  StopPolling(t);
  return Undefined(env);
}

napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Tap* t = Unwrap(env, info, &argc, nullptr);
  if (t == nullptr) return nullptr;
  DoClose(t);
  return Undefined(env);
}

// write(buf, offset, length) -> true | false (EAGAIN/ENOBUFS)
napi_value Write(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  Tap* t = Unwrap(env, info, &argc, argv);
  if (t == nullptr) return nullptr;
  if (t->closed) return ThrowErrno(env, EBADF, "write");
  if (argc < 3) return ThrowType(env, "write(buf, offset, length)");
  uint8_t* data;
  size_t len;
  int64_t off, n;
  if (!GetBytes(env, argv[0], &data, &len) || !GetInt64(env, argv[1], &off, "offset") ||
      !GetInt64(env, argv[2], &n, "length")) {
    return nullptr;
  }
  if (off < 0 || n < 0 || static_cast<uint64_t>(off) + static_cast<uint64_t>(n) > len) {
    return ThrowRange(env, "offset/length outside the buffer");
  }
  ssize_t w;
  do {
    w = write(t->fd, data + off, static_cast<size_t>(n));
  } while (w < 0 && errno == EINTR);
  napi_value result;
  if (w < 0) {
    int e = errno;
    if (e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS) return ThrowErrno(env, e, "write");
    t->stats.tx_again++;
    napi_get_boolean(env, false, &result);
    return result;
  }
  t->stats.tx_frames++;
  t->stats.tx_bytes += static_cast<uint64_t>(w);
  napi_get_boolean(env, true, &result);
  return result;
}

// writeBatch(buf, offsets: Uint32Array, count, aux?) -> frames written
//
// `count` pairs (start, length); a pair whose length has kContinues set is one more part of the
// frame begun by the pairs before it; a pair whose start has kAux set lies in `aux`. Each frame
// is one write(2), or one writev(2) of its parts.
napi_value WriteBatch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  Tap* t = Unwrap(env, info, &argc, argv);
  if (t == nullptr) return nullptr;
  if (t->closed) return ThrowErrno(env, EBADF, "write");
  if (argc < 3) return ThrowType(env, "writeBatch(buf, offsets, count, aux?)");
  uint8_t* data;
  size_t len;
  int64_t count;
  if (!GetBytes(env, argv[0], &data, &len) || !GetInt64(env, argv[2], &count, "count")) {
    return nullptr;
  }
  uint8_t* aux_data = nullptr;
  size_t aux_len = 0;
  if (argc >= 4) {
    napi_valuetype aux_type;
    napi_typeof(env, argv[3], &aux_type);
    if (aux_type != napi_undefined && aux_type != napi_null &&
        !GetBytes(env, argv[3], &aux_data, &aux_len)) {
      return nullptr;
    }
  }
  napi_typedarray_type type;
  size_t n_offsets;
  void* ptr;
  napi_value ab;
  size_t byte_offset;
  if (napi_get_typedarray_info(env, argv[1], &type, &n_offsets, &ptr, &ab, &byte_offset) !=
          napi_ok ||
      type != napi_uint32_array) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    return ThrowType(env, "offsets must be a Uint32Array");
  }
  if (count < 0 || static_cast<uint64_t>(count) * 2 > n_offsets) {
    return ThrowRange(env, "count exceeds offsets.length / 2");
  }
  const uint32_t* offs = static_cast<const uint32_t*>(ptr);
  const uint32_t pairs = static_cast<uint32_t>(count);
  // Everything is checked before anything is written.
  uint32_t parts = 0;
  for (uint32_t i = 0; i < pairs; i++) {
    const bool continues = (offs[2 * i + 1] & kContinues) != 0;
    const bool in_aux = (offs[2 * i] & kAux) != 0;
    const uint32_t n = offs[2 * i + 1] & ~kContinues;
    if (in_aux && aux_data == nullptr) {
      char msg[96];
      snprintf(msg, sizeof msg, "pair %u lies in a second buffer that was not given", i);
      return ThrowRange(env, msg);
    }
    if (static_cast<uint64_t>(offs[2 * i] & ~kAux) + n > (in_aux ? aux_len : len)) {
      char msg[96];
      snprintf(msg, sizeof msg, "frame %u lies outside the buffer", i);
      return ThrowRange(env, msg);
    }
    if (continues && i == 0) return ThrowRange(env, "pair 0 continues no frame");
    parts = continues ? parts + 1 : 1;
    if (parts > kMaxFrameParts) return ThrowRange(env, "a frame has more than 1024 parts");
  }
  struct iovec iov[kMaxFrameParts];
  uint32_t written = 0;
  uint32_t i = 0;
  while (i < pairs) {
    uint32_t n = 0;
    do {
      const uint32_t start = offs[2 * i];
      iov[n].iov_base = ((start & kAux) != 0 ? aux_data : data) + (start & ~kAux);
      iov[n].iov_len = offs[2 * i + 1] & ~kContinues;
      n++;
      i++;
    } while (i < pairs && (offs[2 * i + 1] & kContinues) != 0);
    ssize_t w;
    do {
      w = n == 1 ? write(t->fd, iov[0].iov_base, iov[0].iov_len) : writev(t->fd, iov, n);
    } while (w < 0 && errno == EINTR);
    if (w >= 0) {
      written++;
      t->stats.tx_frames++;
      t->stats.tx_bytes += static_cast<uint64_t>(w);
      continue;
    }
    int e = errno;
    if (e == EIO) {
      t->stats.tx_dropped++;
      continue;
    }
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
      t->stats.tx_again++;
      break;
    }
    return ThrowErrno(env, e, "write");
  }
  napi_value result;
  napi_create_uint32(env, written, &result);
  return result;
}

napi_value SetOffload(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  Tap* t = Unwrap(env, info, &argc, argv);
  if (t == nullptr) return nullptr;
  if (t->closed) return ThrowErrno(env, EBADF, "ioctl(TUNSETOFFLOAD)");
  int64_t flags;
  if (argc < 1 || !GetInt64(env, argv[0], &flags, "flags")) return nullptr;
  if (flags < 0 || flags > 0xFFFFFFFFll) return ThrowRange(env, "flags out of range");
  if (ioctl(t->fd, TUNSETOFFLOAD, static_cast<unsigned long>(flags)) < 0) {
    return ThrowErrno(env, errno, "ioctl(TUNSETOFFLOAD)");
  }
  return Undefined(env);
}

napi_value SetRef(napi_env env, napi_callback_info info, bool ref) {
  size_t argc = 0;
  Tap* t = Unwrap(env, info, &argc, nullptr);
  if (t == nullptr) return nullptr;
  if (!t->closed) {
    if (ref) {
      uv_ref(reinterpret_cast<uv_handle_t*>(&t->poll));
    } else {
      uv_unref(reinterpret_cast<uv_handle_t*>(&t->poll));
    }
  }
  return Undefined(env);
}

napi_value Ref(napi_env env, napi_callback_info info) { return SetRef(env, info, true); }
napi_value Unref(napi_env env, napi_callback_info info) { return SetRef(env, info, false); }

void SetNumber(napi_env env, napi_value obj, const char* key, uint64_t value) {
  napi_value v;
  napi_create_double(env, static_cast<double>(value), &v);
  napi_set_named_property(env, obj, key, v);
}

napi_value GetStats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Tap* t = Unwrap(env, info, &argc, nullptr);
  if (t == nullptr) return nullptr;
  napi_value obj;
  napi_create_object(env, &obj);
  const Stats& s = t->stats;
  SetNumber(env, obj, "rxFrames", s.rx_frames);
  SetNumber(env, obj, "rxBytes", s.rx_bytes);
  SetNumber(env, obj, "rxBatches", s.rx_batches);
  SetNumber(env, obj, "rxTruncated", s.rx_truncated);
  SetNumber(env, obj, "rxMaxBatch", s.rx_max_batch);
  SetNumber(env, obj, "txFrames", s.tx_frames);
  SetNumber(env, obj, "txBytes", s.tx_bytes);
  SetNumber(env, obj, "txDropped", s.tx_dropped);
  SetNumber(env, obj, "txAgain", s.tx_again);
  return obj;
}

napi_value DroppedWrites(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Tap* t = Unwrap(env, info, &argc, nullptr);
  if (t == nullptr) return nullptr;
  napi_value v;
  napi_create_double(env, static_cast<double>(t->stats.tx_dropped), &v);
  return v;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stop", nullptr, Stop, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"write", nullptr, Write, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"writeBatch", nullptr, WriteBatch, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setOffload", nullptr, SetOffload, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ref", nullptr, Ref, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unref", nullptr, Unref, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, GetStats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"droppedWrites", nullptr, DroppedWrites, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value cls;
  if (napi_define_class(env, "TapHandle", NAPI_AUTO_LENGTH, New, nullptr,
                        sizeof methods / sizeof methods[0], methods, &cls) != napi_ok) {
    return nullptr;
  }
  napi_set_named_property(env, exports, "TapHandle", cls);
  if (!InitPacketSocket(env, exports)) return nullptr;
  return exports;
}

}  // namespace
}  // namespace kubewire

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) { return kubewire::Init(env, exports); }
