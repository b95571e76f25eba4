#ifndef KUBEWIRE_TAP_ERRNO_NAME_H_
#define KUBEWIRE_TAP_ERRNO_NAME_H_

namespace kubewire {

// Symbolic name of an errno value ("EIO", "EBADFD", ...); "EUNKNOWN" if unknown.
const char* ErrnoName(int err);

}  // namespace kubewire

#endif  // KUBEWIRE_TAP_ERRNO_NAME_H_
