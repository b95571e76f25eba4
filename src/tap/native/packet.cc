// kubewire_tap: PacketSocketHandle, a transmit-only AF_PACKET socket bound to one interface.
//
// The agent writes the frames it sends on the node's uplink through it: straight into the
// interface's transmit path (dev_queue_xmit, so taps such as tcpdump still see them) instead of
// through the uplink TAP and the tc redirect behind it, and many frames per system call
// (sendmmsg). Frames carry a virtio_net_hdr (PACKET_VNET_HDR), as on the agent's TAPs, so the
// same queued (start, length) pairs work for both: the writeBatch contract is the TAP's (pairs
// with bit 31 of the length continue the previous frame, pairs with bit 31 of the start lie in
// the second buffer). The socket is bound with protocol 0: it receives nothing.

#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <new>

#include "errno_name.h"
#include "packet.h"

namespace kubewire {
namespace {

constexpr uint32_t kContinues = 0x80000000u;
constexpr uint32_t kAux = 0x80000000u;
constexpr uint32_t kMaxFrameParts = 1024;  // IOV_MAX
// Frames per sendmmsg call, and iovecs across them.
constexpr uint32_t kChunkFrames = 64;
constexpr uint32_t kChunkParts = 1024;

struct PacketSock {
  int fd = -1;
  mmsghdr msgs[kChunkFrames];
  iovec iov[kChunkParts];
  uint64_t tx_frames = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_again = 0;
  uint64_t tx_dropped = 0;
};

napi_value Throw(napi_env env, int err, const char* syscall) {
  const char* code = ErrnoName(err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s, %s", code, strerror(err), syscall);
  napi_value code_v, msg_v, error, errno_v, syscall_v;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_error(env, code_v, msg_v, &error);
  napi_create_int32(env, -err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, error, "syscall", syscall_v);
  napi_throw(env, error);
  return nullptr;
}

napi_value ThrowRange(napi_env env, const char* msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return nullptr;
}

napi_value ThrowType(napi_env env, const char* msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return nullptr;
}

bool Bytes(napi_env env, napi_value v, uint8_t** data, size_t* len) {
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

void Finalize(napi_env /*env*/, void* data, void* /*hint*/) {
  PacketSock* p = static_cast<PacketSock*>(data);
  if (p->fd >= 0) close(p->fd);
  delete p;
}

PacketSock* Unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  void* data = nullptr;
  if (napi_unwrap(env, self, &data) != napi_ok || data == nullptr) {
    ThrowType(env, "not a PacketSocketHandle");
    return nullptr;
  }
  return static_cast<PacketSock*>(data);
}

// new PacketSocketHandle(ifname, vnetHdr: boolean, sndbufBytes: number)
napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_value self;
  napi_get_cb_info(env, info, &argc, argv, &self, nullptr);
  if (argc < 3) return ThrowType(env, "PacketSocketHandle(ifname, vnetHdr, sndbufBytes)");
  char name[IFNAMSIZ + 1];
  size_t name_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok) {
    return ThrowType(env, "ifname must be a string");
  }
  bool vnet = false;
  napi_get_value_bool(env, argv[1], &vnet);
  int64_t sndbuf = 0;
  napi_get_value_int64(env, argv[2], &sndbuf);

  unsigned int ifindex = if_nametoindex(name);
  if (ifindex == 0) return Throw(env, errno, "if_nametoindex");
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Throw(env, errno, "socket(AF_PACKET)");
  int one = 1;
  if (vnet && setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) {
    int e = errno;
    close(fd);
    return Throw(env, e, "setsockopt(PACKET_VNET_HDR)");
  }
  if (sndbuf > 0) {
    int v = static_cast<int>(sndbuf);
    // SO_SNDBUFFORCE needs CAP_NET_ADMIN (the agent has it); SO_SNDBUF is capped by wmem_max.
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
  }
  sockaddr_ll addr;
  memset(&addr, 0, sizeof addr);
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = 0;  // transmit only: no protocol, nothing is received
  addr.sll_ifindex = static_cast<int>(ifindex);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int e = errno;
    close(fd);
    return Throw(env, e, "bind(AF_PACKET)");
  }
  PacketSock* p = new (std::nothrow) PacketSock();
  if (p == nullptr) {
    close(fd);
    return Throw(env, ENOMEM, "socket(AF_PACKET)");
  }
  p->fd = fd;
  if (napi_wrap(env, self, p, Finalize, nullptr, nullptr) != napi_ok) {
    close(fd);
    delete p;
    return nullptr;
  }
  napi_value v;
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, self, "fd", v);
  return self;
}

// Sends msgs[0, n): returns frames sent and counts them; stops at EAGAIN / ENOBUFS (returns
// early, *stop set); a frame refused because the device is down is dropped and counted.
// Returns -errno for other errors.
int64_t SendChunk(PacketSock* p, uint32_t n, bool* stop) {
  uint32_t done = 0;
  int64_t sent = 0;
  while (done < n) {
    int r = sendmmsg(p->fd, p->msgs + done, n - done, MSG_DONTWAIT);
    if (r < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
        p->tx_again++;
        *stop = true;
        return sent;
      }
      if (e == ENETDOWN || e == ENXIO || e == EIO) {
        p->tx_dropped++;
        done++;
        continue;
      }
      return -e;
    }
    for (int k = 0; k < r; k++) p->tx_bytes += p->msgs[done + k].msg_len;
    p->tx_frames += static_cast<uint64_t>(r);
    sent += r;
    done += static_cast<uint32_t>(r);
  }
  return sent;
}

// writeBatch(buf, offsets: Uint32Array, count, aux?) -> frames written (see the file comment)
napi_value WriteBatch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  PacketSock* p = Unwrap(env, info, &argc, argv);
  if (p == nullptr) return nullptr;
  if (p->fd < 0) return Throw(env, EBADF, "sendmmsg");
  if (argc < 3) return ThrowType(env, "writeBatch(buf, offsets, count, aux?)");
  uint8_t* data;
  size_t len;
  if (!Bytes(env, argv[0], &data, &len)) return nullptr;
  int64_t count = 0;
  if (napi_get_value_int64(env, argv[2], &count) != napi_ok) {
    return ThrowType(env, "count must be a number");
  }
  uint8_t* aux_data = nullptr;
  size_t aux_len = 0;
  if (argc >= 4) {
    napi_valuetype t;
    napi_typeof(env, argv[3], &t);
    if (t != napi_undefined && t != napi_null && !Bytes(env, argv[3], &aux_data, &aux_len)) {
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
  uint32_t parts = 0;
  for (uint32_t i = 0; i < pairs; i++) {
    const bool continues = (offs[2 * i + 1] & kContinues) != 0;
    const bool in_aux = (offs[2 * i] & kAux) != 0;
    const uint32_t n = offs[2 * i + 1] & ~kContinues;
    if (in_aux && aux_data == nullptr) {
      return ThrowRange(env, "a pair lies in a second buffer that was not given");
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
  int64_t written = 0;
  uint32_t i = 0;
  bool stop = false;
  while (i < pairs && !stop) {
    // One chunk: as many whole frames as fit in the message and iovec arrays.
    uint32_t frames = 0;
    uint32_t used = 0;
    while (i < pairs && frames < kChunkFrames) {
      uint32_t end = i + 1;
      while (end < pairs && (offs[2 * end + 1] & kContinues) != 0) end++;
      if (used + (end - i) > kChunkParts) break;
      mmsghdr& m = p->msgs[frames];
      memset(&m, 0, sizeof m);
      m.msg_hdr.msg_iov = p->iov + used;
      m.msg_hdr.msg_iovlen = end - i;
      for (; i < end; i++) {
        const uint32_t start = offs[2 * i];
        p->iov[used].iov_base = ((start & kAux) != 0 ? aux_data : data) + (start & ~kAux);
        p->iov[used].iov_len = offs[2 * i + 1] & ~kContinues;
        used++;
      }
      frames++;
    }
    int64_t r = SendChunk(p, frames, &stop);
    if (r < 0) return Throw(env, static_cast<int>(-r), "sendmmsg");
    written += r;
  }
  napi_value result;
  napi_create_uint32(env, static_cast<uint32_t>(written), &result);
  return result;
}

napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  PacketSock* p = Unwrap(env, info, &argc, nullptr);
  if (p == nullptr) return nullptr;
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

void SetNumber(napi_env env, napi_value obj, const char* key, uint64_t value) {
  napi_value v;
  napi_create_double(env, static_cast<double>(value), &v);
  napi_set_named_property(env, obj, key, v);
}

napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  PacketSock* p = Unwrap(env, info, &argc, nullptr);
  if (p == nullptr) return nullptr;
  napi_value obj;
  napi_create_object(env, &obj);
  SetNumber(env, obj, "txFrames", p->tx_frames);
  SetNumber(env, obj, "txBytes", p->tx_bytes);
  SetNumber(env, obj, "txAgain", p->tx_again);
  SetNumber(env, obj, "txDropped", p->tx_dropped);
  return obj;
}

}  // namespace

bool InitPacketSocket(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"writeBatch", nullptr, WriteBatch, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value cls;
  if (napi_define_class(env, "PacketSocketHandle", NAPI_AUTO_LENGTH, New, nullptr,
                        sizeof methods / sizeof methods[0], methods, &cls) != napi_ok) {
    return false;
  }
  return napi_set_named_property(env, exports, "PacketSocketHandle", cls) == napi_ok;
}

}  // namespace kubewire
