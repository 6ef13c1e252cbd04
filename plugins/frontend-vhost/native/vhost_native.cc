// What Node cannot do itself for a vhost-user back-end, and nothing more: unix sockets that carry
// file descriptors (SCM_RIGHTS), shared mappings of guest memory, eventfds, and readiness of any fd
// delivered to the event loop through uv_poll (kicks wake the loop; nothing spins). The protocol,
// the rings and virtio-blk are TypeScript.
#include <napi.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

constexpr size_t kMaxFds = 8;  // VHOST_MEMORY_BASELINE_NREGIONS: the most one message carries

Napi::Error SysError(Napi::Env env, const char* what, int err) {
  Napi::Error error = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, what));
  return error;
}

int FdArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "fd must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

// listen(path) -> fd of a non-blocking listening unix socket.
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) throw Napi::RangeError::New(env, "socket path too long: " + path);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw SysError(env, "socket", errno);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 || listen(fd, 16) < 0) {
    int err = errno;
    close(fd);
    throw SysError(env, "bind/listen", err);
  }
  return Napi::Number::New(env, fd);
}

// accept(fd) -> connected fd, or -1 when no connection is pending.
Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = accept4(FdArg(info, 0), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) return Napi::Number::New(env, -1);
    throw SysError(env, "accept4", errno);
  }
  return Napi::Number::New(env, fd);
}

// connect(path) -> fd of a blocking-free client socket (tests play the front-end with it).
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) throw Napi::RangeError::New(env, "socket path too long: " + path);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw SysError(env, "socket", errno);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    int err = errno;
    close(fd);
    throw SysError(env, "connect", err);
  }
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  return Napi::Number::New(env, fd);
}

// socketpair() -> [fd, fd], both non-blocking: unit tests drive a connection without a file.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) throw SysError(env, "socketpair", errno);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

// recv(fd, into: Uint8Array) -> [bytes, ...fds]; bytes is 0 at end of stream, -1 when nothing is
// ready. File descriptors that arrive with the bytes are returned, never silently dropped.
Napi::Value Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  Napi::Uint8Array into = info[1].As<Napi::Uint8Array>();
  iovec iov{into.Data(), into.ByteLength()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      Napi::Array none = Napi::Array::New(env, 1);
      none.Set(0u, -1);
      return none;
    }
    if (errno == ECONNRESET) n = 0;
    else throw SysError(env, "recvmsg", errno);
  }
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* p = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < count; i++) fds.push_back(p[i]);
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    for (int f : fds) close(f);
    throw Napi::Error::New(env, "recvmsg: more file descriptors than a vhost-user message may carry");
  }
  Napi::Array out = Napi::Array::New(env, 1 + fds.size());
  out.Set(0u, static_cast<double>(n));
  for (size_t i = 0; i < fds.size(); i++) out.Set(static_cast<uint32_t>(i + 1), fds[i]);
  return out;
}

// send(fd, data: Uint8Array, fds?: number[]) -> bytes sent (replies are small; a short or refused
// send is reported, the caller closes the connection).
Napi::Value Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    Napi::Array a = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) fds.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  }
  if (fds.size() > kMaxFds) throw Napi::RangeError::New(env, "too many file descriptors");
  iovec iov{data.Data(), data.ByteLength()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  if (n < 0) throw SysError(env, "sendmsg", errno);
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  close(FdArg(info, 0));
  return info.Env().Undefined();
}

// A shared mapping. The ArrayBuffer owns it: unmap() releases it early and detaches the buffer, so a
// stale view reads as empty instead of touching unmapped memory; otherwise the GC releases it.
struct Mapping {
  void* addr;
  size_t length;
  std::atomic<bool> mapped{true};
};

void ReleaseMapping(Napi::Env, void*, Mapping* m) {
  if (m->mapped.exchange(false)) munmap(m->addr, m->length);
  delete m;
}

// mmap(fd, length, offset) -> ArrayBuffer over MAP_SHARED memory.
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  double length = info[1].As<Napi::Number>().DoubleValue();
  double offset = info[2].As<Napi::Number>().DoubleValue();
  if (!(length > 0) || offset < 0 || length > 1ull << 46 || offset > 1ull << 46) throw Napi::RangeError::New(env, "bad mapping size or offset");
  void* addr = mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) throw SysError(env, "mmap", errno);
  auto* m = new Mapping{addr, static_cast<size_t>(length)};
  return Napi::ArrayBuffer::New(env, addr, m->length, ReleaseMapping, m);
}

Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.IsDetached()) return info.Env().Undefined();
  void* addr = buffer.Data();
  size_t length = buffer.ByteLength();
  buffer.Detach();
  // The finalizer still runs at GC; it must not unmap a range the kernel may have reused.
  // Finding the Mapping from here is not possible through N-API, so unmap and leave a guard page
  // mapping in place: MAP_FIXED with PROT_NONE keeps the address range reserved until the finalizer.
  mmap(addr, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  return info.Env().Undefined();
}

// memfd(name, size) -> fd of a zeroed anonymous file (the inflight region).
Napi::Value Memfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  double size = info[1].As<Napi::Number>().DoubleValue();
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) throw SysError(env, "memfd_create", errno);
  if (ftruncate(fd, static_cast<off_t>(size)) < 0) {
    int err = errno;
    close(fd);
    throw SysError(env, "ftruncate", err);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw SysError(info.Env(), "eventfd", errno);
  return Napi::Number::New(info.Env(), fd);
}

// eventfdWrite(fd): signal (the call fd: "used ring updated").
Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  uint64_t one = 1;
  ssize_t n;
  do n = write(FdArg(info, 0), &one, sizeof(one)); while (n < 0 && errno == EINTR);
  // EAGAIN means the counter is saturated: the reader is already signalled.
  if (n < 0 && errno != EAGAIN) throw SysError(info.Env(), "eventfd write", errno);
  return info.Env().Undefined();
}

// eventfdRead(fd) -> the counter (0 when not signalled), which the read resets.
Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  uint64_t value = 0;
  ssize_t n;
  do n = read(FdArg(info, 0), &value, sizeof(value)); while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN) throw SysError(info.Env(), "eventfd read", errno);
  return Napi::Number::New(info.Env(), n < 0 ? 0 : static_cast<double>(value));
}

// A full barrier: the event-idx protocol orders a store (used idx) before a load (used_event),
// which x86 may otherwise reorder.
Napi::Value Fence(const Napi::CallbackInfo& info) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return info.Env().Undefined();
}

// Watcher(fd, callback, drainEventfd): calls back on the event loop whenever fd is readable. With
// drainEventfd the counter is read first, so a kick costs one wake-up and one call into JS.
class Watcher : public Napi::ObjectWrap<Watcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Watcher", {InstanceMethod("stop", &Watcher::Stop)});
  }

  explicit Watcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Watcher>(info) {
    Napi::Env env = info.Env();
    fd_ = FdArg(info, 0);
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    drain_ = info.Length() > 2 && info[2].ToBoolean().Value();
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      throw Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(rc));
    }
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    Ref();  // alive while polling, whatever JS holds
  }

  ~Watcher() override { StopPolling(); }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<Watcher*>(handle->data);
    if (self == nullptr) return;
    if (self->drain_) {
      uint64_t value;
      while (read(self->fd_, &value, sizeof(value)) < 0 && errno == EINTR) {
      }
    }
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    try {
      self->callback_.MakeCallback(env.Global(), {Napi::Number::New(env, status)});
    } catch (const Napi::Error& e) {
      // The JS side catches its own errors; reaching here is a bug worth dying loudly for.
      napi_fatal_exception(env, e.Value());
    }
  }

  void StopPolling() {
    if (poll_ == nullptr) return;
    poll_->data = nullptr;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) {
      StopPolling();
      Unref();
    }
    return info.Env().Undefined();
  }

  int fd_ = -1;
  bool drain_ = false;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("listen", Napi::Function::New(env, Listen));
  exports.Set("accept", Napi::Function::New(env, Accept));
  exports.Set("connect", Napi::Function::New(env, Connect));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("recv", Napi::Function::New(env, Recv));
  exports.Set("send", Napi::Function::New(env, Send));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("mmap", Napi::Function::New(env, Mmap));
  exports.Set("unmap", Napi::Function::New(env, Unmap));
  exports.Set("memfd", Napi::Function::New(env, Memfd));
  exports.Set("eventfd", Napi::Function::New(env, EventfdCreate));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite));
  exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead));
  exports.Set("fence", Napi::Function::New(env, Fence));
  exports.Set("Watcher", Watcher::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(vhost_native, Init)
