#pragma once
#include <napi.h>

// Device helpers Node's fs module lacks: region locks, block device size, alignment, growing a file, probing.
Napi::Value LockRegion(const Napi::CallbackInfo& info);
Napi::Value DeviceSize(const Napi::CallbackInfo& info);
Napi::Value AlignmentOffset(const Napi::CallbackInfo& info);
Napi::Value ProbeUring(const Napi::CallbackInfo& info);
Napi::Value ExtendTo(const Napi::CallbackInfo& info);
