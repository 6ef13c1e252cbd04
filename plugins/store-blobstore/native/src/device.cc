#include "device.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <liburing.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

// lockRegion(fd, offset, length) -> 0 or errno. An open-file-description lock: it conflicts with
// other opens of the same file, also from this process (another shard thread), and is released
// when the descriptor closes.
Napi::Value LockRegion(const Napi::CallbackInfo& info) {
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = static_cast<off_t>(info[1].As<Napi::Number>().Int64Value());
  lock.l_len = static_cast<off_t>(info[2].As<Napi::Number>().Int64Value());
  int rc = fcntl(info[0].As<Napi::Number>().Int32Value(), F_OFD_SETLK, &lock);
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : errno);
}

// deviceSize(fd) -> bytes of a block device, or -errno.
Napi::Value DeviceSize(const Napi::CallbackInfo& info) {
  uint64_t bytes = 0;
  if (ioctl(info[0].As<Napi::Number>().Int32Value(), BLKGETSIZE64, &bytes) != 0) {
    return Napi::Number::New(info.Env(), -errno);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(bytes));
}

// alignmentOffset(bytes: Uint8Array, alignment) -> how far into `bytes` the first aligned address is.
Napi::Value AlignmentOffset(const Napi::CallbackInfo& info) {
  auto bytes = info[0].As<Napi::Uint8Array>();
  uint32_t alignment = info[1].As<Napi::Number>().Uint32Value();
  uintptr_t address = reinterpret_cast<uintptr_t>(bytes.Data());
  return Napi::Number::New(info.Env(), static_cast<double>((alignment - address % alignment) % alignment));
}

// probeUring() -> 0 when an io_uring can be created here, else errno (ENOSYS, EPERM, ...).
Napi::Value ProbeUring(const Napi::CallbackInfo& info) {
  io_uring ring;
  int rc = io_uring_queue_init(2, &ring, 0);
  if (rc == 0) io_uring_queue_exit(&ring);
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : -rc);
}

// extendTo(fd, bytes) -> 0 or errno. Grows a regular file to at least `bytes`, never shrinking
// it (several shard threads may each extend one shared file for their own region).
Napi::Value ExtendTo(const Napi::CallbackInfo& info) {
  off_t bytes = static_cast<off_t>(info[1].As<Napi::Number>().Int64Value());
  int rc = fallocate(info[0].As<Napi::Number>().Int32Value(), 0, bytes - 4096, 4096);
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : errno);
}

