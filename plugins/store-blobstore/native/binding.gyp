{
  "targets": [
    {
      "target_name": "blobstore_native",
      "sources": ["src/addon.cc", "src/ring.cc", "src/crc32c.cc", "src/device.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-fno-exceptions"],
      "libraries": ["-luring"]
    }
  ]
}
