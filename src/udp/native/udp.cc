// kubewire_udp: a UDP socket for Node.js with batched, event-driven I/O (recvmmsg / sendmmsg).
//
// One UdpHandle owns one datagram socket (AF_INET or AF_INET6; SOCK_NONBLOCK | SOCK_CLOEXEC),
// bound when it is made. Reads are driven by a uv_poll handle on the environment's libuv loop:
// on every readable wake-up ONE recvmmsg(2) reads up to maxBatch datagrams into a preallocated
// arena of maxBatch slots of slotBytes each. Per datagram, (offset, length, wire length) go into
// one preallocated Uint32Array (`meta`, kMetaWords per datagram) and the sender into another
// (`peers`, kPeerWords per datagram: family 4|6, port, IPv6 scope id, 0, then the 16 address
// bytes in network order, IPv4 in the first 4); JavaScript is called ONCE per wake-up with
// (arena, meta, peers, count). Nothing is allocated per datagram, nothing per wake-up besides
// the handle scope of the call. A datagram longer than its slot is cut to the slot: its wire
// length (MSG_TRUNC) is then larger than its length.
//
// Writes are synchronous calls on the non-blocking socket from the JS thread: sendBatch() sends
// datagrams described by (start, length) pairs and peers in the format above with sendmmsg(2),
// in as few calls as the kernel allows; send() sends one with sendto(2).
//
// Lifetime (as kubewire_tap, src/tap/native/tap.cc): the JS object owns a heap-allocated Udp.
// While polling, a strong reference keeps the JS object (and thus the Udp) alive. close() stops
// the poll, uv_close()s the handle and closes the socket; the Udp memory is freed once both the JS
// object has been finalized and the uv handle's close callback has run, so closing from inside
// the batch callback is safe. An async cleanup hook closes everything when the environment (main
// thread or worker) is torn down.

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <uv.h>

#include <new>

#include "../../tap/native/errno_name.h"

namespace kubewire {
namespace {

constexpr uint32_t kMetaWords = 3;  // offset, length, wire length
constexpr uint32_t kPeerWords = 8;  // family, port, scope id, 0, address (4 words)
constexpr size_t kMinSlotBytes = 12;
constexpr size_t kMaxSlotBytes = 65536;
constexpr size_t kMaxArenaBytes = size_t{1} << 30;  // 1 GiB
constexpr uint32_t kMaxBatchLimit = 1024;           // UIO_MAXIOV
constexpr uint32_t kTxChunk = 256;                  // datagrams per sendmmsg call

struct Stats {
  uint64_t rx_datagrams = 0;
  uint64_t rx_bytes = 0;
  uint64_t rx_batches = 0;
  uint64_t rx_truncated = 0;
  uint64_t rx_max_batch = 0;
  uint64_t rx_errors = 0;  // transient receive errors (ENOMEM, ENOBUFS, a pending ICMP error)
  uint64_t tx_datagrams = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_calls = 0;   // sendmmsg / sendto calls
  uint64_t tx_errors = 0;  // datagrams refused one by one (EMSGSIZE, EHOSTUNREACH, EPERM, ...)
  uint64_t tx_again = 0;   // datagrams not sent: EAGAIN / ENOBUFS (socket buffer full)
};

struct Udp {
  napi_env env = nullptr;
  int fd = -1;
  int family = AF_INET;
  int bound_port = 0;

  uint8_t* arena = nullptr;
  size_t slot_bytes = 0;
  uint32_t* meta = nullptr;
  uint32_t* peers = nullptr;
  uint32_t max_batch = 0;

  // recvmmsg descriptors, one per slot, filled once.
  mmsghdr* rx_msgs = nullptr;
  iovec* rx_iov = nullptr;
  sockaddr_in6* rx_names = nullptr;  // large enough for sockaddr_in too
  // sendmmsg descriptors, kTxChunk of them, refilled per call.
  mmsghdr* tx_msgs = nullptr;
  iovec* tx_iov = nullptr;
  sockaddr_in6* tx_names = nullptr;

  napi_ref self_ref = nullptr;  // weak (0) when idle, strong (1) while polling
  napi_ref arena_ref = nullptr;
  napi_ref meta_ref = nullptr;
  napi_ref peers_ref = nullptr;
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

  ~Udp() {
    delete[] rx_msgs;
    delete[] rx_iov;
    delete[] rx_names;
    delete[] tx_msgs;
    delete[] tx_iov;
    delete[] tx_names;
  }
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

// Error like Node's system errors: message "EADDRINUSE: Address already in use, bind", .code
// "EADDRINUSE", .errno -98, .syscall "bind".
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
// Node's uncaught-exception machinery, as a callback from any other libuv-driven source would.
void RaisePendingException(napi_env env, napi_status status) {
  if (status != napi_pending_exception) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
  }
  napi_value exc;
  if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
}

// Receive errors that concern one earlier datagram or a momentary shortage, not the socket.
bool TransientRecvError(int e) {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN ||
         e == ENETDOWN || e == ENOMEM || e == ENOBUFS || e == EPROTO || e == ETIMEDOUT ||
         e == EMSGSIZE || e == ECONNRESET;
}

// Send errors that say the socket itself is unusable; anything else concerns one datagram.
bool FatalSendError(int e) { return e == EBADF || e == ENOTSOCK || e == EFAULT || e == ENOTCONN; }

// ---------------------------------------------------------------------------------------------
// Addresses

void StorePeer(const sockaddr_in6* name, uint32_t* p) {
  uint8_t* addr = reinterpret_cast<uint8_t*>(p + 4);
  if (name->sin6_family == AF_INET6) {
    p[0] = 6;
    p[1] = ntohs(name->sin6_port);
    p[2] = name->sin6_scope_id;
    p[3] = 0;
    memcpy(addr, &name->sin6_addr, 16);
    return;
  }
  if (name->sin6_family == AF_INET) {
    const sockaddr_in* in = reinterpret_cast<const sockaddr_in*>(name);
    p[0] = 4;
    p[1] = ntohs(in->sin_port);
    p[2] = 0;
    p[3] = 0;
    memcpy(addr, &in->sin_addr, 4);
    memset(addr + 4, 0, 12);
    return;
  }
  memset(p, 0, kPeerWords * 4);
}

// Fills `name` for a peer in the 8-word format; 0 or an errno for this datagram. An IPv4 peer on
// an IPv6 socket is sent to its v4-mapped address (the socket is dual-stack).
int LoadPeer(const uint32_t* p, int family, sockaddr_in6* name, socklen_t* len) {
  const uint8_t* addr = reinterpret_cast<const uint8_t*>(p + 4);
  if (p[1] > 0xFFFF) return EINVAL;
  if (family == AF_INET) {
    if (p[0] != 4) return EAFNOSUPPORT;
    sockaddr_in* in = reinterpret_cast<sockaddr_in*>(name);
    memset(in, 0, sizeof *in);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(p[1]));
    memcpy(&in->sin_addr, addr, 4);
    *len = sizeof *in;
    return 0;
  }
  memset(name, 0, sizeof *name);
  name->sin6_family = AF_INET6;
  name->sin6_port = htons(static_cast<uint16_t>(p[1]));
  if (p[0] == 6) {
    memcpy(&name->sin6_addr, addr, 16);
    name->sin6_scope_id = p[2];
  } else if (p[0] == 4) {
    uint8_t* a = reinterpret_cast<uint8_t*>(&name->sin6_addr);
    a[10] = 0xFF;
    a[11] = 0xFF;
    memcpy(a + 12, addr, 4);
  } else {
    return EAFNOSUPPORT;
  }
  *len = sizeof *name;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Lifetime

void MaybeFree(Udp* u) {
  if (u->finalized && !u->poll_close_pending) delete u;
}

void OnPollClosed(uv_handle_t* handle) {
  Udp* u = static_cast<Udp*>(handle->data);
  u->poll_close_pending = false;
  if (u->cleanup_hook != nullptr) {
    napi_async_cleanup_hook_handle hook = u->cleanup_hook;
    u->cleanup_hook = nullptr;
    napi_remove_async_cleanup_hook(hook);
  }
  MaybeFree(u);
}

void ReleaseCallbacks(Udp* u) {
  if (u->teardown) {
    u->on_batch_ref = nullptr;  // the environment frees its references itself
    u->on_error_ref = nullptr;
    return;
  }
  if (u->on_batch_ref != nullptr) napi_delete_reference(u->env, u->on_batch_ref);
  if (u->on_error_ref != nullptr) napi_delete_reference(u->env, u->on_error_ref);
  u->on_batch_ref = nullptr;
  u->on_error_ref = nullptr;
}

void MaybeDestroyAsyncContext(Udp* u) {
  if (u->async_ctx == nullptr || u->in_callback || !u->closed) return;
  if (!u->teardown) napi_async_destroy(u->env, u->async_ctx);
  u->async_ctx = nullptr;
}

void StopPolling(Udp* u) {
  if (!u->polling) return;
  u->polling = false;
  uv_poll_stop(&u->poll);
  if (!u->teardown) napi_reference_unref(u->env, u->self_ref, nullptr);
  ReleaseCallbacks(u);
}

void DoClose(Udp* u) {
  if (u->closed) return;
  u->closed = true;
  StopPolling(u);
  ReleaseCallbacks(u);
  // The poll handle is stopped (epoll registration removed) before the socket is closed.
  u->poll_close_pending = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&u->poll), OnPollClosed);
  close(u->fd);  // never retried: on Linux the fd is released even on EINTR
  u->fd = -1;
  MaybeDestroyAsyncContext(u);
}

void OnCleanupHook(napi_async_cleanup_hook_handle /*handle*/, void* arg) {
  Udp* u = static_cast<Udp*>(arg);
  u->teardown = true;
  if (u->closed) {
    if (!u->poll_close_pending && u->cleanup_hook != nullptr) {
      napi_async_cleanup_hook_handle hook = u->cleanup_hook;
      u->cleanup_hook = nullptr;
      napi_remove_async_cleanup_hook(hook);
    }
    return;
  }
  DoClose(u);
}

void Finalize(napi_env env, void* data, void* /*hint*/) {
  Udp* u = static_cast<Udp*>(data);
  DoClose(u);  // no-op if closed; cannot be polling here (the strong self reference)
  if (!u->teardown) {
    if (u->async_ctx != nullptr) napi_async_destroy(env, u->async_ctx);
    if (u->self_ref != nullptr) napi_delete_reference(env, u->self_ref);
    if (u->arena_ref != nullptr) napi_delete_reference(env, u->arena_ref);
    if (u->meta_ref != nullptr) napi_delete_reference(env, u->meta_ref);
    if (u->peers_ref != nullptr) napi_delete_reference(env, u->peers_ref);
  }
  u->async_ctx = nullptr;
  u->self_ref = u->arena_ref = u->meta_ref = u->peers_ref = nullptr;
  u->finalized = true;
  MaybeFree(u);
}

// ---------------------------------------------------------------------------------------------
// Read path

void CallJs(Udp* u, napi_value self, napi_value fn, size_t argc, const napi_value* argv) {
  napi_value result;
  u->in_callback = true;
  napi_status status = napi_make_callback(u->env, u->async_ctx, self, fn, argc, argv, &result);
  u->in_callback = false;
  if (status != napi_ok) RaisePendingException(u->env, status);
}

void ReportFatal(Udp* u, napi_value self, int err) {
  napi_env env = u->env;
  napi_value error = MakeErrnoError(env, err, "recvmmsg");
  napi_value on_error = nullptr;
  if (u->on_error_ref != nullptr) napi_get_reference_value(env, u->on_error_ref, &on_error);
  StopPolling(u);  // releases the callback references; `on_error` stays rooted in our scope
  if (on_error != nullptr) CallJs(u, self, on_error, 1, &error);
}

void OnPoll(uv_poll_t* handle, int status, int events);

// libuv stops a poll handle that saw POLLERR and reports UV_EBADF. For a UDP socket POLLERR means
// a pending socket error (an ICMP error for an earlier datagram): read and clear it; a transient
// one is counted and polling resumes. Returns the errno to report as fatal, or 0.
int RecoverPollError(Udp* u, int status) {
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) return errno;
  if (soerr == 0 || TransientRecvError(soerr)) {
    if (soerr != 0) u->stats.rx_errors++;
    int r = uv_poll_start(&u->poll, UV_READABLE, OnPoll);
    return r < 0 ? -r : 0;
  }
  return soerr != 0 ? soerr : -status;
}

void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  Udp* u = static_cast<Udp*>(handle->data);
  if (u->closed || !u->polling) return;

  int err = 0;
  if (status < 0) err = RecoverPollError(u, status);
  int n = 0;
  if (err == 0) {
    do {
      n = recvmmsg(u->fd, u->rx_msgs, u->max_batch, MSG_TRUNC, nullptr);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      int e = errno;
      n = 0;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        // spurious wake-up
      } else if (TransientRecvError(e)) {
        u->stats.rx_errors++;
      } else {
        err = e;
      }
    }
  }
  const uint32_t count = static_cast<uint32_t>(n);
  if (count == 0 && err == 0) return;

  uint32_t* const meta = u->meta;
  uint32_t* const peers = u->peers;
  const size_t slot = u->slot_bytes;
  for (uint32_t i = 0; i < count; i++) {
    mmsghdr& m = u->rx_msgs[i];
    const uint32_t wire_len = m.msg_len;
    const uint32_t len = wire_len > slot ? static_cast<uint32_t>(slot) : wire_len;
    if (wire_len > slot) u->stats.rx_truncated++;
    meta[kMetaWords * i] = static_cast<uint32_t>(i * slot);
    meta[kMetaWords * i + 1] = len;
    meta[kMetaWords * i + 2] = wire_len;
    StorePeer(&u->rx_names[i], peers + kPeerWords * i);
    u->stats.rx_bytes += len;
    // recvmmsg wrote the address lengths and flags: restore them for the next call.
    m.msg_hdr.msg_namelen = sizeof(sockaddr_in6);
    m.msg_hdr.msg_flags = 0;
  }

  napi_env env = u->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value self;
  napi_get_reference_value(env, u->self_ref, &self);  // strong while polling; rooted from here on

  if (count > 0) {
    u->stats.rx_datagrams += count;
    u->stats.rx_batches++;
    if (count > u->stats.rx_max_batch) u->stats.rx_max_batch = count;
    napi_value fn, argv[4];
    napi_get_reference_value(env, u->on_batch_ref, &fn);
    napi_get_reference_value(env, u->arena_ref, &argv[0]);
    napi_get_reference_value(env, u->meta_ref, &argv[1]);
    napi_get_reference_value(env, u->peers_ref, &argv[2]);
    napi_create_uint32(env, count, &argv[3]);
    CallJs(u, self, fn, 4, argv);
  }
  // The handler may have stopped or closed the socket, or even restarted it.
  if (err != 0 && !u->closed && u->polling) ReportFatal(u, self, err);
  MaybeDestroyAsyncContext(u);
  napi_close_handle_scope(env, scope);
}

// ---------------------------------------------------------------------------------------------
// Argument helpers

Udp* Unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  void* data = nullptr;
  if (napi_unwrap(env, self, &data) != napi_ok || data == nullptr) {
    ThrowType(env, "not a UdpHandle");
    return nullptr;
  }
  return static_cast<Udp*>(data);
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

bool GetWords(napi_env env, napi_value v, const uint32_t** data, size_t* len, const char* what) {
  napi_typedarray_type type;
  size_t length;
  void* ptr;
  napi_value ab;
  size_t byte_offset;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, &ab, &byte_offset) != napi_ok ||
      type != napi_uint32_array) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a Uint32Array", what);
    ThrowType(env, msg);
    return false;
  }
  *data = static_cast<const uint32_t*>(ptr);
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
// Construction: socket, options, bind

// Makes and binds the socket; returns the fd or -errno with *syscall naming the failing call.
int OpenSocket(int family, const sockaddr_in6* addr, socklen_t addr_len, int rcvbuf, int sndbuf,
               const char** syscall) {
  *syscall = "socket";
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int e = 0;
  if (family == AF_INET6) {
    int off = 0;  // dual-stack, as Node's dgram without ipv6Only
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) {
      e = errno;
      *syscall = "setsockopt(IPV6_V6ONLY)";
    }
  }
  if (e == 0 && rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) {
    e = errno;
    *syscall = "setsockopt(SO_RCVBUF)";
  }
  if (e == 0 && sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0) {
    e = errno;
    *syscall = "setsockopt(SO_SNDBUF)";
  }
  if (e == 0 && bind(fd, reinterpret_cast<const sockaddr*>(addr), addr_len) < 0) {
    e = errno;
    *syscall = "bind";
  }
  if (e != 0) {
    close(fd);
    return -e;
  }
  return fd;
}

// new UdpHandle(host, port, slotBytes, maxBatch, recvBufferSize, sendBufferSize)
napi_value New(napi_env env, napi_callback_info info) {
  napi_value target;
  napi_get_new_target(env, info, &target);
  if (target == nullptr) return ThrowType(env, "UdpHandle must be called with new");
  size_t argc = 6;
  napi_value argv[6];
  napi_value self;
  napi_get_cb_info(env, info, &argc, argv, &self, nullptr);
  if (argc < 6) {
    return ThrowType(env,
                     "UdpHandle(host, port, slotBytes, maxBatch, recvBufferSize, sendBufferSize)");
  }
  char host[INET6_ADDRSTRLEN + 1];
  size_t host_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], host, sizeof host, &host_len) != napi_ok) {
    return ThrowType(env, "host must be a string");
  }
  int64_t port, slot_bytes, max_batch, rcvbuf, sndbuf;
  if (!GetInt64(env, argv[1], &port, "port") ||
      !GetInt64(env, argv[2], &slot_bytes, "slotBytes") ||
      !GetInt64(env, argv[3], &max_batch, "maxBatch") ||
      !GetInt64(env, argv[4], &rcvbuf, "recvBufferSize") ||
      !GetInt64(env, argv[5], &sndbuf, "sendBufferSize")) {
    return nullptr;
  }
  if (port < 0 || port > 0xFFFF) return ThrowRange(env, "port out of range");
  if (slot_bytes < static_cast<int64_t>(kMinSlotBytes) ||
      slot_bytes > static_cast<int64_t>(kMaxSlotBytes)) {
    return ThrowRange(env, "slotBytes out of range");
  }
  if (max_batch < 1 || max_batch > kMaxBatchLimit) return ThrowRange(env, "maxBatch out of range");
  if (static_cast<uint64_t>(slot_bytes) * static_cast<uint64_t>(max_batch) > kMaxArenaBytes) {
    return ThrowRange(env, "slotBytes * maxBatch must be <= 1 GiB");
  }
  if (rcvbuf < 0 || rcvbuf > 0x7FFFFFFF || sndbuf < 0 || sndbuf > 0x7FFFFFFF) {
    return ThrowRange(env, "buffer sizes out of range");
  }

  sockaddr_in6 addr;
  memset(&addr, 0, sizeof addr);
  socklen_t addr_len;
  int family;
  sockaddr_in* in = reinterpret_cast<sockaddr_in*>(&addr);
  if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
    family = AF_INET;
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    addr_len = sizeof *in;
  } else if (inet_pton(AF_INET6, host, &addr.sin6_addr) == 1) {
    family = AF_INET6;
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(static_cast<uint16_t>(port));
    addr_len = sizeof addr;
  } else {
    return ThrowErrno(env, EINVAL, "inet_pton");
  }

  const char* syscall = nullptr;
  int fd = OpenSocket(family, &addr, addr_len, static_cast<int>(rcvbuf), static_cast<int>(sndbuf),
                      &syscall);
  if (fd < 0) return ThrowErrno(env, -fd, syscall);
  sockaddr_in6 bound;
  socklen_t bound_len = sizeof bound;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len) < 0) {
    int e = errno;
    close(fd);
    return ThrowErrno(env, e, "getsockname");
  }

  Udp* u = new (std::nothrow) Udp();
  const uint32_t batch = static_cast<uint32_t>(max_batch);
  if (u != nullptr) {
    u->rx_msgs = new (std::nothrow) mmsghdr[batch]();
    u->rx_iov = new (std::nothrow) iovec[batch]();
    u->rx_names = new (std::nothrow) sockaddr_in6[batch]();
    u->tx_msgs = new (std::nothrow) mmsghdr[kTxChunk]();
    u->tx_iov = new (std::nothrow) iovec[kTxChunk]();
    u->tx_names = new (std::nothrow) sockaddr_in6[kTxChunk]();
  }
  if (u == nullptr || u->rx_msgs == nullptr || u->rx_iov == nullptr || u->rx_names == nullptr ||
      u->tx_msgs == nullptr || u->tx_iov == nullptr || u->tx_names == nullptr) {
    close(fd);
    delete u;
    return ThrowErrno(env, ENOMEM, "socket");
  }
  u->env = env;
  u->fd = fd;
  u->family = family;
  u->bound_port = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                    : ntohs(bound.sin6_port);
  u->slot_bytes = static_cast<size_t>(slot_bytes);
  u->max_batch = batch;

  napi_value arena, meta_ab, meta, peers_ab, peers, v;
  void* arena_data = nullptr;
  void* meta_data = nullptr;
  void* peers_data = nullptr;
  bool ok =
      napi_create_buffer(env, u->slot_bytes * batch, &arena_data, &arena) == napi_ok &&
      napi_create_arraybuffer(env, size_t{batch} * kMetaWords * 4, &meta_data, &meta_ab) ==
          napi_ok &&
      napi_create_typedarray(env, napi_uint32_array, size_t{batch} * kMetaWords, meta_ab, 0,
                             &meta) == napi_ok &&
      napi_create_arraybuffer(env, size_t{batch} * kPeerWords * 4, &peers_data, &peers_ab) ==
          napi_ok &&
      napi_create_typedarray(env, napi_uint32_array, size_t{batch} * kPeerWords, peers_ab, 0,
                             &peers) == napi_ok;
  uv_loop_t* loop = nullptr;
  ok = ok && napi_get_uv_event_loop(env, &loop) == napi_ok;
  if (!ok) {
    close(fd);
    delete u;
    return nullptr;  // the failing call left an exception pending
  }
  u->arena = static_cast<uint8_t*>(arena_data);
  u->meta = static_cast<uint32_t*>(meta_data);
  u->peers = static_cast<uint32_t*>(peers_data);
  for (uint32_t i = 0; i < batch; i++) {
    u->rx_iov[i].iov_base = u->arena + size_t{i} * u->slot_bytes;
    u->rx_iov[i].iov_len = u->slot_bytes;
    msghdr& h = u->rx_msgs[i].msg_hdr;
    h.msg_name = &u->rx_names[i];
    h.msg_namelen = sizeof(sockaddr_in6);
    h.msg_iov = &u->rx_iov[i];
    h.msg_iovlen = 1;
  }

  int r = uv_poll_init(loop, &u->poll, fd);
  if (r < 0) {
    close(fd);
    delete u;
    return ThrowErrno(env, -r, "uv_poll_init");
  }
  u->poll.data = u;

  if (napi_wrap(env, self, u, Finalize, nullptr, nullptr) != napi_ok) {
    // Not wrapped: nobody will finalize; close the handle and free from its close callback.
    u->finalized = true;
    DoClose(u);
    return nullptr;
  }
  napi_create_reference(env, self, 0, &u->self_ref);
  napi_create_reference(env, arena, 1, &u->arena_ref);
  napi_create_reference(env, meta, 1, &u->meta_ref);
  napi_create_reference(env, peers, 1, &u->peers_ref);
  napi_add_async_cleanup_hook(env, OnCleanupHook, u, &u->cleanup_hook);

  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, self, "fd", v);
  napi_create_int32(env, family == AF_INET ? 4 : 6, &v);
  napi_set_named_property(env, self, "family", v);
  napi_create_int32(env, u->bound_port, &v);
  napi_set_named_property(env, self, "port", v);
  napi_set_named_property(env, self, "arena", arena);
  napi_set_named_property(env, self, "meta", meta);
  napi_set_named_property(env, self, "peers", peers);
  return self;
}

// ---------------------------------------------------------------------------------------------
// Methods

// start(onBatch, onError | null)
napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Udp* u = Unwrap(env, info, &argc, argv);
  if (u == nullptr) return nullptr;
  if (u->closed) return ThrowErrno(env, EBADF, "start");
  if (argc < 1 || !IsFunction(env, argv[0])) return ThrowType(env, "onBatch must be a function");
  bool has_on_error = argc >= 2 && IsFunction(env, argv[1]);
  if (u->async_ctx == nullptr) {
    napi_value resource_name;
    napi_create_string_utf8(env, "kubewire:UdpSocket", NAPI_AUTO_LENGTH, &resource_name);
    if (napi_async_init(env, nullptr, resource_name, &u->async_ctx) != napi_ok) return nullptr;
  }
  if (!u->polling) {
    int r = uv_poll_start(&u->poll, UV_READABLE, OnPoll);
    if (r < 0) return ThrowErrno(env, -r, "uv_poll_start");
    u->polling = true;
    napi_reference_ref(env, u->self_ref, nullptr);
  }
  ReleaseCallbacks(u);  // start() while started replaces the handlers
  napi_create_reference(env, argv[0], 1, &u->on_batch_ref);
  if (has_on_error) napi_create_reference(env, argv[1], 1, &u->on_error_ref);
  return Undefined(env);
}

napi_value Stop(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Udp* u = Unwrap(env, info, &argc, nullptr);
  if (u == nullptr) return nullptr;
  StopPolling(u);
  return Undefined(env);
}

napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Udp* u = Unwrap(env, info, &argc, nullptr);
  if (u == nullptr) return nullptr;
  DoClose(u);
  return Undefined(env);
}

// send(buf, offset, length, peers: Uint32Array, peerIndex) -> true | false (EAGAIN/ENOBUFS)
napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  Udp* u = Unwrap(env, info, &argc, argv);
  if (u == nullptr) return nullptr;
  if (u->closed) return ThrowErrno(env, EBADF, "sendto");
  if (argc < 5) return ThrowType(env, "send(buf, offset, length, peers, peerIndex)");
  uint8_t* data;
  size_t len;
  const uint32_t* peers;
  size_t n_peers;
  int64_t off, n, index;
  if (!GetBytes(env, argv[0], &data, &len) || !GetInt64(env, argv[1], &off, "offset") ||
      !GetInt64(env, argv[2], &n, "length") || !GetWords(env, argv[3], &peers, &n_peers, "peers") ||
      !GetInt64(env, argv[4], &index, "peerIndex")) {
    return nullptr;
  }
  if (off < 0 || n < 0 || static_cast<uint64_t>(off) + static_cast<uint64_t>(n) > len) {
    return ThrowRange(env, "offset/length outside the buffer");
  }
  if (index < 0 || (static_cast<uint64_t>(index) + 1) * kPeerWords > n_peers) {
    return ThrowRange(env, "peerIndex outside peers");
  }
  sockaddr_in6 name;
  socklen_t name_len = 0;
  int e = LoadPeer(peers + kPeerWords * index, u->family, &name, &name_len);
  if (e != 0) return ThrowErrno(env, e, "sendto");
  ssize_t w;
  do {
    w = sendto(u->fd, data + off, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&name),
               name_len);
  } while (w < 0 && errno == EINTR);
  u->stats.tx_calls++;
  napi_value result;
  if (w < 0) {
    e = errno;
    if (e != EAGAIN && e != EWOULDBLOCK && e != ENOBUFS) {
      u->stats.tx_errors++;
      return ThrowErrno(env, e, "sendto");
    }
    u->stats.tx_again++;
    napi_get_boolean(env, false, &result);
    return result;
  }
  u->stats.tx_datagrams++;
  u->stats.tx_bytes += static_cast<uint64_t>(w);
  napi_get_boolean(env, true, &result);
  return result;
}

// sendBatch(buf, meta: Uint32Array (start, length pairs), peers: Uint32Array, count)
//   -> datagrams done (sent, or refused one by one and counted in txErrors); fewer than count
//      when the socket buffer is full (EAGAIN / ENOBUFS): the rest was not sent.
napi_value SendBatch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  Udp* u = Unwrap(env, info, &argc, argv);
  if (u == nullptr) return nullptr;
  if (u->closed) return ThrowErrno(env, EBADF, "sendmmsg");
  if (argc < 4) return ThrowType(env, "sendBatch(buf, meta, peers, count)");
  uint8_t* data;
  size_t len;
  const uint32_t* meta;
  size_t n_meta;
  const uint32_t* peers;
  size_t n_peers;
  int64_t count;
  if (!GetBytes(env, argv[0], &data, &len) || !GetWords(env, argv[1], &meta, &n_meta, "meta") ||
      !GetWords(env, argv[2], &peers, &n_peers, "peers") ||
      !GetInt64(env, argv[3], &count, "count")) {
    return nullptr;
  }
  if (count < 0 || static_cast<uint64_t>(count) * 2 > n_meta) {
    return ThrowRange(env, "count exceeds meta.length / 2");
  }
  if (static_cast<uint64_t>(count) * kPeerWords > n_peers) {
    return ThrowRange(env, "count exceeds peers.length / 8");
  }
  const uint32_t total = static_cast<uint32_t>(count);
  for (uint32_t i = 0; i < total; i++) {
    if (static_cast<uint64_t>(meta[2 * i]) + meta[2 * i + 1] > len) {
      char msg[96];
      snprintf(msg, sizeof msg, "datagram %u lies outside the buffer", i);
      return ThrowRange(env, msg);
    }
  }

  uint32_t done = 0;
  while (done < total) {
    // Fill up to kTxChunk descriptors; a peer that cannot be addressed is refused here.
    uint32_t k = 0;
    uint32_t idx[kTxChunk];
    for (uint32_t i = done; i < total && k < kTxChunk; i++) {
      socklen_t name_len = 0;
      if (LoadPeer(peers + kPeerWords * i, u->family, &u->tx_names[k], &name_len) != 0) {
        if (k > 0) break;  // send what is queued first; this one is refused on the next round
        u->stats.tx_errors++;
        done = i + 1;
        continue;
      }
      u->tx_iov[k].iov_base = data + meta[2 * i];
      u->tx_iov[k].iov_len = meta[2 * i + 1];
      msghdr& h = u->tx_msgs[k].msg_hdr;
      h.msg_name = &u->tx_names[k];
      h.msg_namelen = name_len;
      h.msg_iov = &u->tx_iov[k];
      h.msg_iovlen = 1;
      h.msg_control = nullptr;
      h.msg_controllen = 0;
      h.msg_flags = 0;
      idx[k] = i;
      k++;
    }
    if (k == 0) continue;
    uint32_t sent = 0;
    while (sent < k) {
      int r;
      do {
        r = sendmmsg(u->fd, u->tx_msgs + sent, k - sent, 0);
      } while (r < 0 && errno == EINTR);
      u->stats.tx_calls++;
      if (r > 0) {
        for (int j = 0; j < r; j++) u->stats.tx_bytes += u->tx_msgs[sent + j].msg_len;
        u->stats.tx_datagrams += static_cast<uint64_t>(r);
        sent += static_cast<uint32_t>(r);
        continue;
      }
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
        u->stats.tx_again += total - idx[sent];
        napi_value result;
        napi_create_uint32(env, idx[sent], &result);
        return result;
      }
      if (FatalSendError(e)) return ThrowErrno(env, e, "sendmmsg");
      // The first datagram of the rest was refused (EMSGSIZE, EHOSTUNREACH, EPERM, ...): skip it.
      u->stats.tx_errors++;
      sent++;
    }
    done = idx[k - 1] + 1;
  }
  napi_value result;
  napi_create_uint32(env, done, &result);
  return result;
}

napi_value SetRef(napi_env env, napi_callback_info info, bool ref) {
  size_t argc = 0;
  Udp* u = Unwrap(env, info, &argc, nullptr);
  if (u == nullptr) return nullptr;
  if (!u->closed) {
    if (ref) {
      uv_ref(reinterpret_cast<uv_handle_t*>(&u->poll));
    } else {
      uv_unref(reinterpret_cast<uv_handle_t*>(&u->poll));
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
  Udp* u = Unwrap(env, info, &argc, nullptr);
  if (u == nullptr) return nullptr;
  napi_value obj;
  napi_create_object(env, &obj);
  const Stats& s = u->stats;
  SetNumber(env, obj, "rxDatagrams", s.rx_datagrams);
  SetNumber(env, obj, "rxBytes", s.rx_bytes);
  SetNumber(env, obj, "rxBatches", s.rx_batches);
  SetNumber(env, obj, "rxTruncated", s.rx_truncated);
  SetNumber(env, obj, "rxMaxBatch", s.rx_max_batch);
  SetNumber(env, obj, "rxErrors", s.rx_errors);
  SetNumber(env, obj, "txDatagrams", s.tx_datagrams);
  SetNumber(env, obj, "txBytes", s.tx_bytes);
  SetNumber(env, obj, "txCalls", s.tx_calls);
  SetNumber(env, obj, "txErrors", s.tx_errors);
  SetNumber(env, obj, "txAgain", s.tx_again);
  return obj;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stop", nullptr, Stop, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"send", nullptr, Send, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sendBatch", nullptr, SendBatch, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ref", nullptr, Ref, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unref", nullptr, Unref, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, GetStats, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value cls;
  if (napi_define_class(env, "UdpHandle", NAPI_AUTO_LENGTH, New, nullptr,
                        sizeof methods / sizeof methods[0], methods, &cls) != napi_ok) {
    return nullptr;
  }
  napi_set_named_property(env, exports, "UdpHandle", cls);
  return exports;
}

}  // namespace
}  // namespace kubewire

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) { return kubewire::Init(env, exports); }
