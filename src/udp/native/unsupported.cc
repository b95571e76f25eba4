// Non-Linux stub: the addon builds everywhere (so `npm install` works on developer machines) but
// recvmmsg / sendmmsg are Linux calls; constructing a UdpHandle throws ENOTSUP and callers fall
// back to node:dgram.
#include <node_api.h>

namespace {

napi_value New(napi_env env, napi_callback_info /*info*/) {
  napi_value code, msg, error;
  napi_create_string_utf8(env, "ENOTSUP", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, "ENOTSUP: batched UDP I/O requires Linux, socket",
                          NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_throw(env, error);
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value cls;
  if (napi_define_class(env, "UdpHandle", NAPI_AUTO_LENGTH, New, nullptr, 0, nullptr, &cls) !=
      napi_ok) {
    return nullptr;
  }
  napi_set_named_property(env, exports, "UdpHandle", cls);
  return exports;
}
