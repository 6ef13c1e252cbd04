// The kernel's native helpers: the frame checksum (crc32.cc), and flock for lock files that
// must be released when their process dies however it dies.
#include <errno.h>
#include <napi.h>
#include <sys/file.h>

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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Crc32Init();
  exports.Set("crc32", Napi::Function::New(env, Crc32Js));
  exports.Set("crc32Accelerated", Napi::Boolean::New(env, Crc32Accelerated()));
  exports.Set("crc32Path", Napi::String::New(env, Crc32Path()));
  exports.Set("flockExclusive", Napi::Function::New(env, FlockExclusiveJs));
  return exports;
}

}  // namespace

NODE_API_MODULE(kernel_native, Init)
