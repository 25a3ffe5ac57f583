/*
 * bulkhead-spawner: starts programs for the process that started it.
 *
 * Why: a Node process forks itself for every child_process.spawn(), copying the page tables of its
 * whole heap (about 1.5 ms at 60 MB, 4 ms at 300 MB here, and more while other sandboxes compete for
 * the CPU), on the thread that runs every other launch. This process is a few hundred kilobytes: its
 * fork costs next to nothing, and it forks on another core while the caller goes on.
 *
 * Started as `bulkhead-spawner <parent pid>` with a unix stream socket on fd 3. It dies with its
 * parent (PR_SET_PDEATHSIG), and so does everything it started with bubblewrap's --die-with-parent
 * or the exec shim's parent line. When the socket ends, it exits.
 *
 * Request (caller -> spawner), one sendmsg each, the child's stdio fds attached (SCM_RIGHTS):
 *   struct request_header (8 x uint32, native byte order), then header.body_bytes of body:
 *   path NUL cwd NUL argv[0] NUL ... argv[argc-1] NUL env[0] NUL ... env[envc-1] NUL
 *   The n attached fds become the child's fds 0..n-1; nothing else is inherited. uid/gid >= 0: the
 *   child drops its supplementary groups and switches to them before exec.
 * Replies (spawner -> caller), lines:
 *   s <id> <pid>            started: the exec succeeded
 *   f <id> <errno>          not started: fork, the id switch, chdir or exec failed with errno
 *   x <pid> <code> <signal> a child ended (code -1 when a signal killed it, signal 0 when it exited)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONTROL_FD 3
#define MAX_CHILD_FDS 16
#define MAX_BODY_BYTES (1u << 20)
#define MAX_STRINGS 4096

struct request_header {
  uint32_t body_bytes;
  uint32_t id;
  int32_t uid;
  int32_t gid;
  uint32_t fd_count;
  uint32_t argc;
  uint32_t envc;
  uint32_t reserved;
};

static void reply(const char *format, ...) __attribute__((format(printf, 1, 2)));

static void reply(const char *format, ...) {
  char line[96];
  va_list arguments;
  va_start(arguments, format);
  int length = vsnprintf(line, sizeof line, format, arguments);
  va_end(arguments);
  if (length <= 0 || (size_t)length >= sizeof line) return;
  for (int written = 0; written < length;) {
    ssize_t count = write(CONTROL_FD, line + written, (size_t)(length - written));
    if (count < 0 && errno == EINTR) continue;
    // The caller is gone: nothing is left to start programs for.
    if (count <= 0) _exit(0);
    written += (int)count;
  }
}

static int read_fully(int fd, void *buffer, size_t size) {
  for (size_t done = 0; done < size;) {
    ssize_t count = read(fd, (char *)buffer + done, size - done);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return -1;
    done += (size_t)count;
  }
  return 0;
}

static void close_from(int lowest, int keep) {
  /* close_range(2) where the kernel has it (5.9+), else one by one. */
  if (keep < lowest) {
    if (syscall(SYS_close_range, lowest, ~0U, 0) == 0) return;
  } else if (syscall(SYS_close_range, lowest, keep - 1, 0) == 0 &&
             syscall(SYS_close_range, keep + 1, ~0U, 0) == 0) {
    return;
  }
  long limit = sysconf(_SC_OPEN_MAX);
  for (int fd = lowest; fd < (limit > 0 ? limit : 1024); fd++)
    if (fd != keep) close(fd);
}

/* In the child: never returns. Reports errno on `report` (close-on-exec) when it cannot exec. */
static void become(const struct request_header *header, const int *fds, char **strings, int report) {
  sigset_t none;
  sigemptyset(&none);
  for (int signal_number = 1; signal_number < NSIG; signal_number++) signal(signal_number, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);

  if (header->gid >= 0 || header->uid >= 0) {
    if (setgroups(0, NULL) != 0 && errno != EPERM) goto failed;
    if (header->gid >= 0 && setgid((gid_t)header->gid) != 0) goto failed;
    if (header->uid >= 0 && setuid((uid_t)header->uid) != 0) goto failed;
  }
  /* Out of the way first (above every target), then into place: dup2 clears close-on-exec. */
  report = fcntl(report, F_DUPFD_CLOEXEC, MAX_CHILD_FDS + 1);
  if (report < 0) _exit(127);
  int moved[MAX_CHILD_FDS];
  int count = (int)header->fd_count;
  for (int index = 0; index < count; index++) {
    moved[index] = fcntl(fds[index], F_DUPFD_CLOEXEC, MAX_CHILD_FDS + 1);
    if (moved[index] < 0) goto failed;
  }
  for (int index = 0; index < count; index++)
    if (dup2(moved[index], index) < 0) goto failed;
  close_from(count, report);

  const char *path = strings[0];
  const char *cwd = strings[1];
  char **argv = strings + 2;
  char **envp = strings + 2 + header->argc + 1;
  if (cwd[0] != '\0' && chdir(cwd) != 0) goto failed;
  execve(path, argv, envp);
failed : {
  int error = errno;
  ssize_t ignored = write(report, &error, sizeof error);
  (void)ignored;
  _exit(127);
}
}

/* Reads one request and starts it. Returns -1 when the caller has gone. */
static int serve_one(void) {
  struct request_header header;
  union {
    char buffer[CMSG_SPACE(sizeof(int) * MAX_CHILD_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec vector = {.iov_base = &header, .iov_len = sizeof header};
  struct msghdr message = {
      .msg_iov = &vector,
      .msg_iovlen = 1,
      .msg_control = control.buffer,
      .msg_controllen = sizeof control.buffer,
  };
  ssize_t received;
  do {
    received = recvmsg(CONTROL_FD, &message, MSG_WAITALL | MSG_CMSG_CLOEXEC);
  } while (received < 0 && errno == EINTR);
  if (received <= 0) return -1;

  int fds[MAX_CHILD_FDS];
  int fd_count = 0;
  for (struct cmsghdr *entry = CMSG_FIRSTHDR(&message); entry; entry = CMSG_NXTHDR(&message, entry)) {
    if (entry->cmsg_level != SOL_SOCKET || entry->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((entry->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int index = 0; index < count; index++) {
      int fd;
      memcpy(&fd, CMSG_DATA(entry) + index * sizeof(int), sizeof fd);
      if (fd_count < MAX_CHILD_FDS) fds[fd_count++] = fd;
      else close(fd);
    }
  }
  if ((size_t)received != sizeof header || header.body_bytes > MAX_BODY_BYTES ||
      header.argc + header.envc + 4 > MAX_STRINGS || (message.msg_flags & MSG_CTRUNC)) {
    /* Not a request this spawner understands: the stream cannot be trusted any further. */
    return -1;
  }
  char *body = malloc(header.body_bytes + 1);
  if (!body || read_fully(CONTROL_FD, body, header.body_bytes) != 0) return -1;
  body[header.body_bytes] = '\0';

  /* path, cwd, argv..., NULL, env..., NULL */
  char **strings = calloc(header.argc + header.envc + 4, sizeof(char *));
  if (!strings) return -1;
  uint32_t expected = 2 + header.argc + header.envc;
  uint32_t found = 0;
  int slot = 0;
  for (char *cursor = body; found < expected && cursor < body + header.body_bytes; found++) {
    if (found == 2 + header.argc) slot++; /* the NULL that ends argv */
    strings[slot++] = cursor;
    cursor += strlen(cursor) + 1;
  }
  int error = 0;
  if (found != expected || header.argc == 0 || (uint32_t)fd_count != header.fd_count) {
    error = EINVAL;
  } else {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
      error = errno;
    } else {
      pid_t pid = fork();
      if (pid == 0) {
        close(report[0]);
        become(&header, fds, strings, report[1]);
      }
      close(report[1]);
      if (pid < 0) {
        error = errno;
      } else {
        /* Ends at the child's exec (close-on-exec) or carries its errno. */
        int child_error = 0;
        ssize_t count;
        do {
          count = read(report[0], &child_error, sizeof child_error);
        } while (count < 0 && errno == EINTR);
        if (count == sizeof child_error) {
          error = child_error;
          waitpid(pid, NULL, 0);
        } else {
          reply("s %u %d\n", header.id, (int)pid);
        }
      }
      close(report[0]);
    }
  }
  if (error != 0) reply("f %u %d\n", header.id, error);
  for (int index = 0; index < fd_count; index++) close(fds[index]);
  free(strings);
  free(body);
  return 0;
}

static void report_exits(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (WIFEXITED(status)) reply("x %d %d 0\n", (int)pid, WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) reply("x %d -1 %d\n", (int)pid, WTERMSIG(status));
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: bulkhead-spawner PARENT-PID (with a unix socket on fd 3)\n");
    return 2;
  }
  pid_t parent = (pid_t)strtol(argv[1], NULL, 10);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  /* The parent may have died before the prctl. */
  if (getppid() != parent) return 1;
  /* Blocking, and never inherited by what it starts. */
  int flags = fcntl(CONTROL_FD, F_GETFL);
  if (flags < 0 || fcntl(CONTROL_FD, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
      fcntl(CONTROL_FD, F_SETFD, FD_CLOEXEC) != 0) {
    fprintf(stderr, "bulkhead-spawner: fd %d is not usable: %s\n", CONTROL_FD, strerror(errno));
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  sigset_t children;
  sigemptyset(&children);
  sigaddset(&children, SIGCHLD);
  sigprocmask(SIG_BLOCK, &children, NULL);
  int signals = signalfd(-1, &children, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signals < 0) {
    fprintf(stderr, "bulkhead-spawner: signalfd: %s\n", strerror(errno));
    return 2;
  }
  struct pollfd watched[2] = {{.fd = CONTROL_FD, .events = POLLIN}, {.fd = signals, .events = POLLIN}};
  for (;;) {
    if (poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 2;
    }
    if (watched[1].revents) {
      struct signalfd_siginfo information;
      while (read(signals, &information, sizeof information) > 0) {
      }
      report_exits();
    }
    if (watched[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (serve_one() != 0) return 0;
      /* A child that failed fast may have ended while this one was served. */
      report_exits();
    }
  }
}
