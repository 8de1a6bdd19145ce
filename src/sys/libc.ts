/**
 * The libc functions Node lacks, declared once through koffi. Everything here
 * is a thin binding; the friendly wrappers live in index.ts.
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const c = {
  close: libc.func('int close(int fd)'),
  // fcntl is variadic; its third argument is an int for the commands used here.
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  read: libc.func('long read(int fd, _Out_ void *buf, size_t count)'),
  write: libc.func('long write(int fd, const void *buf, size_t count)'),
  strerror: libc.func('const char *strerror(int errnum)'),
  epollCreate1: libc.func('int epoll_create1(int flags)'),
  epollCtl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epollWait: libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
  ifNameToIndex: libc.func('unsigned int if_nametoindex(const char *ifname)'),
  statfs: libc.func('int statfs(const char *path, _Out_ uint8_t *buf)'),
  getuid: libc.func('unsigned int getuid(void)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *value, unsigned int len)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ unsigned int *len)'),
  setns: libc.func('int setns(int fd, int nstype)'),
  bind: libc.func('int bind(int fd, const void *addr, unsigned int len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  schedGetaffinity: libc.func('int sched_getaffinity(int pid, size_t size, _Out_ uint8_t *mask)'),
  schedSetaffinity: libc.func('int sched_setaffinity(int pid, size_t size, const uint8_t *mask)'),
};

/** errno of the last koffi call on this thread (koffi saves it right after the call). */
export const lastErrno = (): number => koffi.errno();
