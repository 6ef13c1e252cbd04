#include "ring.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002  // linux/fs.h: per-write O_DSYNC (Linux 4.7)
#endif

namespace {

bool IsAligned(const void* pointer, size_t length, size_t alignment) {
  return (reinterpret_cast<uintptr_t>(pointer) % alignment) == 0 && length % alignment == 0;
}

// Buffers arrive as one Uint8Array or an array of them (a scatter list).
bool CollectBuffers(Napi::Env env, Napi::Value value, std::vector<iovec>& out) {
  out.clear();
  auto add = [&](Napi::Value v) {
    if (!v.IsTypedArray()) return false;
    auto array = v.As<Napi::TypedArray>();
    if (array.TypedArrayType() != napi_uint8_array) return false;
    auto bytes = array.As<Napi::Uint8Array>();
    out.push_back(iovec{bytes.Data(), bytes.ByteLength()});
    return true;
  };
  if (value.IsArray()) {
    auto list = value.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      if (!add(list.Get(i))) return false;
    }
    return !out.empty();
  }
  return add(value);
}

}  // namespace

Napi::Function Ring::Define(Napi::Env env) {
  return DefineClass(env, "Ring",
                     {InstanceMethod<&Ring::Read>("read"), InstanceMethod<&Ring::Write>("write"),
                      InstanceMethod<&Ring::Fsync>("fsync"), InstanceMethod<&Ring::Zero>("zero"),
                      InstanceMethod<&Ring::Submit>("submit"), InstanceMethod<&Ring::Close>("close")});
}

// new Ring(entries, maxTags, alignment, completions: Int32Array, onComplete(count))
Ring::Ring(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Ring>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() ||
      !info[3].IsTypedArray() || !info[4].IsFunction()) {
    Napi::TypeError::New(env, "Ring(entries, maxTags, alignment, completions, onComplete)").ThrowAsJavaScriptException();
    return;
  }
  unsigned entries = info[0].As<Napi::Number>().Uint32Value();
  slots_.resize(info[1].As<Napi::Number>().Uint32Value());
  alignment_ = info[2].As<Napi::Number>().Uint32Value();
  auto completions = info[3].As<Napi::Int32Array>();
  completions_ = completions.Data();
  completionPairs_ = completions.ElementLength() / 2;
  completionsRef_ = Napi::Persistent(completions);
  onComplete_ = Napi::Persistent(info[4].As<Napi::Function>());

  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &ring_, &params);
  if (rc < 0) {
    Napi::Error error = Napi::Error::New(env, std::string("io_uring_queue_init: ") + strerror(-rc));
    error.Set("errno", Napi::Number::New(env, -rc));
    error.ThrowAsJavaScriptException();
    return;
  }
  open_ = true;
  eventFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (eventFd_ < 0 || io_uring_register_eventfd(&ring_, eventFd_) < 0) {
    Shutdown();
    Napi::Error::New(env, "eventfd registration failed").ThrowAsJavaScriptException();
    return;
  }
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  poll_ = new uv_poll_t;
  uv_poll_init(loop, poll_, eventFd_);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, &Ring::OnPoll);
  uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  // A worker thread's loop closes with it: the poll handle and the ring must go first.
  env_ = env;
  napi_add_env_cleanup_hook(env, &Ring::OnEnvCleanup, this);
}

Ring::~Ring() {
  if (env_ != nullptr) napi_remove_env_cleanup_hook(env_, &Ring::OnEnvCleanup, this);
  Shutdown();
}

void Ring::OnEnvCleanup(void* self) {
  auto* ring = static_cast<Ring*>(self);
  ring->env_ = nullptr;
  ring->Shutdown(true);
  ring->onComplete_.Reset();
  ring->completionsRef_.Reset();
}

void Ring::Shutdown(bool teardown) {
  if (poll_ != nullptr) {
    uv_poll_stop(poll_);
    // At environment teardown the addon may be unloaded before the loop finishes closing
    // handles, so no callback of ours may run then: the handle's few bytes are left behind.
    uv_close_cb freeHandle = [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); };
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), teardown ? nullptr : freeHandle);
    poll_ = nullptr;
  }
  if (open_) {
    io_uring_queue_exit(&ring_);
    open_ = false;
  }
  if (eventFd_ >= 0) {
    close(eventFd_);
    eventFd_ = -1;
  }
  for (auto& slot : slots_) {
    free(slot.bounce);
    slot.bounce = nullptr;
  }
  for (auto& pool : bouncePool_) {
    for (void* buffer : pool) free(buffer);
    pool.clear();
  }
  bounceKept_ = 0;
}

// An aligned buffer of at least `length` bytes: a kept one of its size class, or a new one.
void* Ring::TakeBounce(size_t length, size_t* capacity) {
  size_t k = 0;
  while (k < kBounceClasses && (alignment_ << k) < length) k++;
  if (k < kBounceClasses && !bouncePool_[k].empty()) {
    void* buffer = bouncePool_[k].back();
    bouncePool_[k].pop_back();
    *capacity = alignment_ << k;
    bounceKept_ -= *capacity;
    return buffer;
  }
  size_t size = k < kBounceClasses ? alignment_ << k : (length + alignment_ - 1) / alignment_ * alignment_;
  void* buffer = nullptr;
  if (posix_memalign(&buffer, alignment_, size) != 0) return nullptr;
  *capacity = size;
  return buffer;
}

void Ring::GiveBounce(void* buffer, size_t capacity) {
  size_t k = 0;
  while (k < kBounceClasses && (alignment_ << k) != capacity) k++;
  if (k == kBounceClasses || bounceKept_ + capacity > kBounceKeptBytes) {
    free(buffer);
    return;
  }
  bouncePool_[k].push_back(buffer);
  bounceKept_ += capacity;
}

io_uring_sqe* Ring::NextSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

Ring::Slot* Ring::SlotFor(Napi::Env env, uint32_t tag) {
  if (!open_) {
    Napi::Error::New(env, "ring is closed").ThrowAsJavaScriptException();
    return nullptr;
  }
  if (tag >= slots_.size()) {
    Napi::RangeError::New(env, "tag out of range").ThrowAsJavaScriptException();
    return nullptr;
  }
  return &slots_[tag];
}

void Ring::Started() {
  if (inflight_++ == 0 && poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
}

// read|write(fd, offset, buffers, tag[, durable]): a durable write is RWF_DSYNC (on the medium
// when it completes: FUA where the device has it, else the kernel flushes after it).
bool Ring::PrepareRw(const Napi::CallbackInfo& info, bool isRead) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint64_t offset = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
  Slot* slot = SlotFor(env, info[3].As<Napi::Number>().Uint32Value());
  if (slot == nullptr) return false;
  if (!CollectBuffers(env, info[2], slot->user)) {
    Napi::TypeError::New(env, "buffers must be a Uint8Array or a non-empty array of them").ThrowAsJavaScriptException();
    return false;
  }
  slot->isRead = isRead;
  size_t total = 0;
  bool aligned = true;
  for (auto& v : slot->user) {
    total += v.iov_len;
    aligned = aligned && IsAligned(v.iov_base, v.iov_len, alignment_);
  }
  if (aligned) {
    slot->iov = slot->user;
  } else {
    // O_DIRECT needs aligned memory: go through one aligned bounce buffer.
    slot->bounce = TakeBounce(total, &slot->bounceCapacity);
    if (slot->bounce == nullptr) {
      Napi::Error::New(env, "out of memory for a bounce buffer").ThrowAsJavaScriptException();
      return false;
    }
    slot->bounceLength = total;
    if (!isRead) {
      size_t at = 0;
      for (auto& v : slot->user) {
        memcpy(static_cast<char*>(slot->bounce) + at, v.iov_base, v.iov_len);
        at += v.iov_len;
      }
    }
    slot->iov.assign(1, iovec{slot->bounce, total});
  }
  io_uring_sqe* sqe = NextSqe();
  if (isRead) {
    io_uring_prep_readv(sqe, fd, slot->iov.data(), slot->iov.size(), offset);
  } else {
    io_uring_prep_writev(sqe, fd, slot->iov.data(), slot->iov.size(), offset);
    if (info.Length() > 4 && info[4].ToBoolean()) sqe->rw_flags = RWF_DSYNC;
  }
  io_uring_sqe_set_data64(sqe, info[3].As<Napi::Number>().Uint32Value());
  Started();
  return true;
}

Napi::Value Ring::Read(const Napi::CallbackInfo& info) {
  PrepareRw(info, true);
  return info.Env().Undefined();
}

Napi::Value Ring::Write(const Napi::CallbackInfo& info) {
  PrepareRw(info, false);
  return info.Env().Undefined();
}

// fsync(fd, tag): fdatasync
Napi::Value Ring::Fsync(const Napi::CallbackInfo& info) {
  uint32_t tag = info[1].As<Napi::Number>().Uint32Value();
  if (SlotFor(info.Env(), tag) == nullptr) return info.Env().Undefined();
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_fsync(sqe, info[0].As<Napi::Number>().Int32Value(), IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data64(sqe, tag);
  Started();
  return info.Env().Undefined();
}

// zero(fd, offset, length, tag): the range reads as zeroes afterwards, without writing data.
Napi::Value Ring::Zero(const Napi::CallbackInfo& info) {
  uint32_t tag = info[3].As<Napi::Number>().Uint32Value();
  if (SlotFor(info.Env(), tag) == nullptr) return info.Env().Undefined();
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_fallocate(sqe, info[0].As<Napi::Number>().Int32Value(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                          static_cast<off_t>(info[1].As<Napi::Number>().Int64Value()),
                          static_cast<off_t>(info[2].As<Napi::Number>().Int64Value()));
  io_uring_sqe_set_data64(sqe, tag);
  Started();
  return info.Env().Undefined();
}

Napi::Value Ring::Submit(const Napi::CallbackInfo& info) {
  if (!open_ || io_uring_sq_ready(&ring_) == 0) return Napi::Number::New(info.Env(), 0);
  int rc = io_uring_submit(&ring_);
  return Napi::Number::New(info.Env(), rc);
}

Napi::Value Ring::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

void Ring::OnPoll(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<Ring*>(handle->data);
  if (status < 0 || !self->open_) return;
  // One read resets the counter (not a semaphore eventfd); a second would only find EAGAIN.
  uint64_t ignored;
  if (read(self->eventFd_, &ignored, sizeof ignored) < 0 && errno != EAGAIN) return;
  self->Reap();
}

// Raw N-API here: a worker being terminated cannot run JS, and node-addon-api's error path would
// abort the process; a failed call instead just stops this ring.
void Ring::Reap() {
  napi_env env = Env();
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    Shutdown(true);
    return;
  }
  io_uring_cqe* cqes[256];
  for (;;) {
    if (!open_) break;
    unsigned count = io_uring_peek_batch_cqe(&ring_, cqes, std::min<unsigned>(256, completionPairs_));
    if (count == 0) break;
    for (unsigned i = 0; i < count; i++) {
      uint32_t tag = static_cast<uint32_t>(cqes[i]->user_data);
      int32_t res = cqes[i]->res;
      Slot& slot = slots_[tag];
      if (slot.bounce != nullptr) {
        if (slot.isRead && res > 0) {
          size_t at = 0;
          for (auto& v : slot.user) {
            size_t n = std::min(v.iov_len, static_cast<size_t>(res) - std::min(static_cast<size_t>(res), at));
            memcpy(v.iov_base, static_cast<char*>(slot.bounce) + at, n);
            at += v.iov_len;
          }
        }
        GiveBounce(slot.bounce, slot.bounceCapacity);
        slot.bounce = nullptr;
      }
      slot.user.clear();
      completions_[2 * i] = static_cast<int32_t>(tag);
      completions_[2 * i + 1] = res;
    }
    io_uring_cq_advance(&ring_, count);
    inflight_ -= count;
    if (inflight_ == 0 && poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    // make_callback drains microtasks, so I/O issued by continuations is already prepared here.
    napi_value fn, recv, arg, result;
    if (napi_get_reference_value(env, onComplete_, &fn) != napi_ok || fn == nullptr || napi_get_global(env, &recv) != napi_ok ||
        napi_create_uint32(env, count, &arg) != napi_ok || napi_make_callback(env, nullptr, recv, fn, 1, &arg, &result) != napi_ok) {
      napi_close_handle_scope(env, scope);
      Shutdown(true);
      return;
    }
    // What the handlers issued goes to the device before we look at more completions, so the
    // device queue does not run dry while we work.
    if (open_ && io_uring_sq_ready(&ring_) > 0) io_uring_submit(&ring_);
  }
  napi_close_handle_scope(env, scope);
}
