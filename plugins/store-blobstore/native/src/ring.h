// One io_uring per JS thread. Submission is explicit (prep* then submit), so a whole batch of
// I/Os costs one io_uring_enter; completions wake the event loop through an eventfd watched by a
// uv_poll handle, and are handed to JS in batches through a shared Int32Array.
#pragma once

#include <liburing.h>
#include <napi.h>
#include <uv.h>

#include <sys/uio.h>
#include <vector>

class Ring : public Napi::ObjectWrap<Ring> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Ring(const Napi::CallbackInfo& info);
  ~Ring() override;

 private:
  // Per in-flight operation: the iovecs the kernel reads, and a bounce buffer when the caller's
  // memory is not aligned for O_DIRECT (reads are copied back on completion).
  struct Slot {
    std::vector<iovec> iov;
    std::vector<iovec> user;
    void* bounce = nullptr;
    size_t bounceLength = 0;
    size_t bounceCapacity = 0;
    bool isRead = false;
  };

  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Fsync(const Napi::CallbackInfo& info);
  Napi::Value Zero(const Napi::CallbackInfo& info);
  Napi::Value Submit(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bool PrepareRw(const Napi::CallbackInfo& info, bool isRead);
  void* TakeBounce(size_t length, size_t* capacity);
  void GiveBounce(void* buffer, size_t capacity);
  io_uring_sqe* NextSqe();
  Slot* SlotFor(Napi::Env env, uint32_t tag);
  void Started();
  void Reap();
  void Shutdown(bool teardown = false);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnEnvCleanup(void* self);

  io_uring ring_{};
  bool open_ = false;
  napi_env env_ = nullptr;
  int eventFd_ = -1;
  uv_poll_t* poll_ = nullptr;
  uint32_t inflight_ = 0;
  size_t alignment_ = 4096;
  std::vector<Slot> slots_;
  // Bounce buffers kept for reuse, by size class (alignment_ << k bytes): freeing each one at its
  // completion gave its pages back to the kernel, and the next write faulted in zeroed ones (a
  // tenth of the machine's CPU under 4 KiB writes).
  static constexpr size_t kBounceClasses = 9;
  static constexpr size_t kBounceKeptBytes = 16u << 20;
  std::vector<void*> bouncePool_[kBounceClasses];
  size_t bounceKept_ = 0;
  int32_t* completions_ = nullptr;
  uint32_t completionPairs_ = 0;
  Napi::Reference<Napi::Int32Array> completionsRef_;
  Napi::FunctionReference onComplete_;
  Napi::ObjectReference self_;
};
