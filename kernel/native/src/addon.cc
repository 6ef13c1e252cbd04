// The kernel's native helpers: the frame checksum (crc32.cc), flock for lock files that must be
// released when their process dies however it dies, and shared file mappings (the write-back log).
#include <errno.h>
#include <napi.h>
#include <sys/file.h>
#include <sys/mman.h>

#include "crc32.h"

namespace {

// crc32(data: Uint8Array, seed = 0) -> uint32
Napi::Value Crc32Js(const Napi::CallbackInfo& info) {
  auto data = info[0].As<Napi::Uint8Array>();
  uint32_t seed = info.Length() > 1 ? info[1].As<Napi::Number>().Uint32Value() : 0;
  return Napi::Number::New(info.Env(), Crc32(seed, data.Data(), data.ByteLength()));
}

// flockExclusive(fd) -> 0, or the errno (EWOULDBLOCK: another open file description holds it).
// Never blocks: LOCK_NB.
Napi::Value FlockExclusiveJs(const Napi::CallbackInfo& info) {
  const int fd = info[0].As<Napi::Number>().Int32Value();
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), rc == 0 ? 0 : errno);
}

// mmapShared(fd, offset, length) -> ArrayBuffer over a MAP_SHARED mapping of the file, or the
// errno. Stores into it are stores into the file's pages: they outlive this process as a write()
// would, without a syscall or a copy each. Unmapped when the ArrayBuffer is collected, so views of
// it never outlive the mapping.
Napi::Value MmapSharedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const int64_t offset = info[1].As<Napi::Number>().Int64Value();
  const int64_t length = info[2].As<Napi::Number>().Int64Value();
  if (fd < 0 || offset < 0 || length <= 0) return Napi::Number::New(env, EINVAL);
  void* at = mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, static_cast<off_t>(offset));
  if (at == MAP_FAILED) return Napi::Number::New(env, errno);
  auto* bytes = new size_t(static_cast<size_t>(length));
  return Napi::ArrayBuffer::New(
      env, at, *bytes,
      [](Napi::Env, void* data, size_t* mapped) {
        munmap(data, *mapped);
        delete mapped;
      },
      bytes);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Crc32Init();
  exports.Set("crc32", Napi::Function::New(env, Crc32Js));
  exports.Set("crc32Accelerated", Napi::Boolean::New(env, Crc32Accelerated()));
  exports.Set("crc32Path", Napi::String::New(env, Crc32Path()));
  exports.Set("flockExclusive", Napi::Function::New(env, FlockExclusiveJs));
  exports.Set("mmapShared", Napi::Function::New(env, MmapSharedJs));
  return exports;
}

}  // namespace

NODE_API_MODULE(kernel_native, Init)
