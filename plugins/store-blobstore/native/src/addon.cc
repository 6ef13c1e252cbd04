#include <napi.h>

#include "crc32c.h"
#include "device.h"
#include "ring.h"

namespace {

// crc32c(data: Uint8Array, seed = 0) -> uint32
Napi::Value Crc32cJs(const Napi::CallbackInfo& info) {
  auto data = info[0].As<Napi::Uint8Array>();
  uint32_t seed = info.Length() > 1 ? info[1].As<Napi::Number>().Uint32Value() : 0;
  return Napi::Number::New(info.Env(), Crc32c(seed, data.Data(), data.ByteLength()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Crc32cInit();
  exports.Set("Ring", Ring::Define(env));
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs));
  exports.Set("crc32cHardware", Napi::Boolean::New(env, Crc32cHardware()));
  exports.Set("lockRegion", Napi::Function::New(env, LockRegion));
  exports.Set("deviceSize", Napi::Function::New(env, DeviceSize));
  exports.Set("alignmentOffset", Napi::Function::New(env, AlignmentOffset));
  exports.Set("probeUring", Napi::Function::New(env, ProbeUring));
  exports.Set("extendTo", Napi::Function::New(env, ExtendTo));
  return exports;
}

}  // namespace

NODE_API_MODULE(blobstore_native, Init)
