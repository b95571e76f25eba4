#ifndef KUBEWIRE_TAP_PACKET_H_
#define KUBEWIRE_TAP_PACKET_H_

#include <node_api.h>

namespace kubewire {

// Adds the PacketSocketHandle class (packet.cc) to the addon's exports.
bool InitPacketSocket(napi_env env, napi_value exports);

}  // namespace kubewire

#endif  // KUBEWIRE_TAP_PACKET_H_
