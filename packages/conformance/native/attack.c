/*
 * bulkhead-attack: the payload of the Bulkhead conformance suite.
 *
 * One static binary with one subcommand per behaviour probe or escape attempt, so that the suite
 * runs the same way in a bare mount namespace, under Landlock with almost nothing readable, and
 * inside a busybox micro-VM guest: no shell, no libc on the sandbox's side, no interpreter.
 *
 * Contract of the escape subcommands (the TypeScript side parses it):
 *   - the last line starting with ESCAPED or REFUSED is the verdict of the helper itself;
 *       ESCAPED <detail>   the attempt worked                         exit status 3
 *       REFUSED <detail>   the attempt failed; detail names the errno  exit status 0
 *       ERROR <detail>     bad usage or a broken setup (inconclusive)  exit status 2
 *   - the host side still has the last word where it can observe the effect itself (a file that
 *     appeared, a server that received a token, a host process that died): a helper that claims an
 *     escape inside a private view of the world did not escape.
 *
 * argv[1] may be `--tag=ANYTHING`: ignored, it only marks the process (and every fork of it) in
 * /proc/PID/cmdline so that the host can find leftovers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define EXIT_REFUSED 0
#define EXIT_ERROR 2
#define EXIT_ESCAPED 3

static const char *error_name(int error) {
  switch (error) {
  case EPERM: return "EPERM";
  case ENOENT: return "ENOENT";
  case ESRCH: return "ESRCH";
  case EINTR: return "EINTR";
  case EIO: return "EIO";
  case ENXIO: return "ENXIO";
  case E2BIG: return "E2BIG";
  case EBADF: return "EBADF";
  case ECHILD: return "ECHILD";
  case EAGAIN: return "EAGAIN";
  case ENOMEM: return "ENOMEM";
  case EACCES: return "EACCES";
  case EFAULT: return "EFAULT";
  case EBUSY: return "EBUSY";
  case EEXIST: return "EEXIST";
  case EXDEV: return "EXDEV";
  case ENODEV: return "ENODEV";
  case ENOTDIR: return "ENOTDIR";
  case EISDIR: return "EISDIR";
  case EINVAL: return "EINVAL";
  case ENFILE: return "ENFILE";
  case EMFILE: return "EMFILE";
  case ENOTTY: return "ENOTTY";
  case EFBIG: return "EFBIG";
  case ENOSPC: return "ENOSPC";
  case EROFS: return "EROFS";
  case EMLINK: return "EMLINK";
  case EPIPE: return "EPIPE";
  case ENOSYS: return "ENOSYS";
  case ELOOP: return "ELOOP";
  case ENAMETOOLONG: return "ENAMETOOLONG";
  case EDQUOT: return "EDQUOT";
  case ENOTSOCK: return "ENOTSOCK";
  case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
  case EAFNOSUPPORT: return "EAFNOSUPPORT";
  case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
  case ENETDOWN: return "ENETDOWN";
  case ENETUNREACH: return "ENETUNREACH";
  case ECONNRESET: return "ECONNRESET";
  case ETIMEDOUT: return "ETIMEDOUT";
  case ECONNREFUSED: return "ECONNREFUSED";
  case EHOSTUNREACH: return "EHOSTUNREACH";
  default: return "EUNKNOWN";
  }
}

static int escaped(const char *format, ...) __attribute__((format(printf, 1, 2)));
static int refused(const char *format, ...) __attribute__((format(printf, 1, 2)));

#include <stdarg.h>
static int verdict(const char *word, int status, const char *format, va_list arguments) {
  printf("%s ", word);
  vprintf(format, arguments);
  printf("\n");
  fflush(stdout);
  return status;
}
static int escaped(const char *format, ...) {
  va_list arguments;
  va_start(arguments, format);
  int status = verdict("ESCAPED", EXIT_ESCAPED, format, arguments);
  va_end(arguments);
  return status;
}
static int refused(const char *format, ...) {
  va_list arguments;
  va_start(arguments, format);
  int status = verdict("REFUSED", EXIT_REFUSED, format, arguments);
  va_end(arguments);
  return status;
}
static int usage(const char *message) {
  printf("ERROR %s\n", message);
  fflush(stdout);
  return EXIT_ERROR;
}

static void sleep_ms(long milliseconds) {
  struct timespec remaining = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};
  while (nanosleep(&remaining, &remaining) == -1 && errno == EINTR) {
  }
}

static int write_all(int fd, const void *buffer, size_t length) {
  const char *cursor = buffer;
  while (length > 0) {
    ssize_t written = write(fd, cursor, length);
    if (written < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    cursor += written;
    length -= (size_t)written;
  }
  return 0;
}

/* Reads up to size-1 bytes of a file into buffer; returns bytes read or -1 with errno set. */
static ssize_t read_file(const char *path, char *buffer, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t total = 0;
  while (total + 1 < size) {
    ssize_t count = read(fd, buffer + total, size - 1 - total);
    if (count < 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      return -1;
    }
    if (count == 0) break;
    total += (size_t)count;
  }
  buffer[total] = '\0';
  close(fd);
  return (ssize_t)total;
}

/* Keeps a verdict on one line: content read from a file may hold anything. */
static void one_line(char *text) {
  for (char *cursor = text; *cursor; cursor++) {
    if (*cursor == '\n' || *cursor == '\r' || (unsigned char)*cursor < 0x20) *cursor = ' ';
  }
}

/* ---------------------------------------------------------------- behaviour probes */

static int command_exit(int argc, char **argv) {
  if (argc < 1) return usage("exit CODE");
  return atoi(argv[0]);
}

static int command_kill_self(int argc, char **argv) {
  if (argc < 1) return usage("kill-self TERM|KILL");
  int number = strcmp(argv[0], "KILL") == 0 ? SIGKILL : SIGTERM;
  signal(number == SIGTERM ? SIGTERM : SIGKILL, SIG_DFL);
  kill(getpid(), number);
  pause();
  return usage("still alive after killing itself");
}

static int command_print_environ(void) {
  extern char **environ;
  for (char **entry = environ; *entry; entry++) {
    if (write_all(1, *entry, strlen(*entry) + 1) < 0) return EXIT_ERROR;
  }
  return 0;
}

static int command_print_cwd(void) {
  char buffer[4096];
  if (!getcwd(buffer, sizeof buffer)) return usage("getcwd failed");
  printf("%s\n", buffer);
  return 0;
}

/* Says something on both streams, then waits for a line on stdin: output must arrive before exit. */
static int command_stream(void) {
  if (write_all(1, "ready-out\n", 10) < 0 || write_all(2, "ready-err\n", 10) < 0) return EXIT_ERROR;
  char byte;
  for (;;) {
    ssize_t count = read(0, &byte, 1);
    if (count <= 0 || byte == '\n') break;
  }
  return write_all(1, "done\n", 5) < 0 ? EXIT_ERROR : 0;
}

/* BYTES of a known pattern on stdout and on stderr, interleaved, so a reader that drains only one deadlocks. */
static int command_spew(int argc, char **argv) {
  if (argc < 1) return usage("spew BYTES");
  long long total = atoll(argv[0]);
  static unsigned char chunk[65536];
  long long sent = 0;
  while (sent < total) {
    size_t length = sizeof chunk;
    if ((long long)length > total - sent) length = (size_t)(total - sent);
    for (size_t index = 0; index < length; index++) chunk[index] = (unsigned char)((sent + (long long)index) % 251);
    if (write_all(1, chunk, length) < 0 || write_all(2, chunk, length) < 0) return EXIT_ERROR;
    sent += (long long)length;
  }
  return 0;
}

static int command_copy_stdin(void) {
  static char buffer[65536];
  for (;;) {
    ssize_t count = read(0, buffer, sizeof buffer);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return EXIT_ERROR;
    if (count == 0) return 0;
    if (write_all(1, buffer, (size_t)count) < 0) return EXIT_ERROR;
  }
}

static void write_marker_file(const char *prefix, const char *kind) {
  char path[4096];
  snprintf(path, sizeof path, "%s.%s", prefix, kind);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    write_all(fd, "alive\n", 6);
    close(fd);
  }
}

/* A descendant that outlives its parent as long as it is allowed to, then leaves a file as proof. */
static void linger(const char *file, long delay, const char *kind, int ready) {
  write_all(ready, "x", 1);
  close(ready);
  if (strcmp(file, "-") == 0) {
    for (;;) pause();
  }
  sleep_ms(delay);
  write_marker_file(file, kind);
  _exit(0);
}

/*
 * tree MODE FILE DELAY_MS: starts descendants (MODE: grandchild = double fork, setsid = own session,
 * both), says "ready" once they run, then waits to be killed. Each descendant writes FILE.<kind> after
 * DELAY_MS (FILE "-": it only waits), which proves it survived.
 */
static int command_tree(int argc, char **argv) {
  if (argc < 3) return usage("tree grandchild|setsid|both FILE DELAY_MS");
  const char *mode = argv[0];
  const char *file = argv[1];
  long delay = atol(argv[2]);
  int want_grandchild = strcmp(mode, "grandchild") == 0 || strcmp(mode, "both") == 0;
  int want_setsid = strcmp(mode, "setsid") == 0 || strcmp(mode, "both") == 0;
  int pipe_fds[2];
  if (pipe(pipe_fds) < 0) return usage("pipe failed");
  int expected = 0;
  if (want_grandchild) {
    pid_t child = fork();
    if (child < 0) return usage("fork failed");
    if (child == 0) {
      close(pipe_fds[0]);
      pid_t grandchild = fork();
      if (grandchild == 0) linger(file, delay, "grandchild", pipe_fds[1]);
      _exit(grandchild < 0 ? 1 : 0);
    }
    waitpid(child, NULL, 0);
    expected++;
  }
  if (want_setsid) {
    pid_t child = fork();
    if (child < 0) return usage("fork failed");
    if (child == 0) {
      close(pipe_fds[0]);
      setsid();
      linger(file, delay, "setsid", pipe_fds[1]);
    }
    expected++;
  }
  close(pipe_fds[1]);
  char byte;
  for (int seen = 0; seen < expected;) {
    ssize_t count = read(pipe_fds[0], &byte, 1);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return usage("a descendant did not start");
    seen++;
  }
  write_all(1, "ready\n", 6);
  for (;;) pause();
}

static int command_pause(void) {
  write_all(1, "ready\n", 6);
  for (;;) pause();
  return 0;
}

/* ---------------------------------------------------------------- filesystem attacks */

static int try_read(const char *path, const char *how) {
  static char buffer[4096];
  ssize_t count = read_file(path, buffer, 512);
  if (count < 0) return refused("%s %s: %s", how, path, error_name(errno));
  one_line(buffer);
  return escaped("%s %s: %zd bytes: %s", how, path, count, buffer);
}

static int command_read(int argc, char **argv) {
  if (argc < 1) return usage("read PATH...");
  int last = EXIT_REFUSED;
  for (int index = 0; index < argc; index++) {
    last = try_read(argv[index], "read");
    if (last == EXIT_ESCAPED) return last;
  }
  return last;
}

static int try_write(const char *path, const char *content, const char *how) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return refused("%s %s: open: %s", how, path, error_name(errno));
  if (write_all(fd, content, strlen(content)) < 0) {
    int saved = errno;
    close(fd);
    return refused("%s %s: write: %s", how, path, error_name(saved));
  }
  if (close(fd) < 0) return refused("%s %s: close: %s", how, path, error_name(errno));
  return escaped("%s %s", how, path);
}

static int command_write(int argc, char **argv) {
  if (argc < 2) return usage("write PATH CONTENT");
  return try_write(argv[0], argv[1], "wrote");
}

static int command_symlink_read(int argc, char **argv) {
  if (argc < 2) return usage("symlink-read LINK TARGET");
  if (symlink(argv[1], argv[0]) < 0) return refused("symlink %s: %s", argv[0], error_name(errno));
  return try_read(argv[0], "read through symlink");
}

static int command_symlink_write(int argc, char **argv) {
  if (argc < 3) return usage("symlink-write LINK TARGET CONTENT");
  if (symlink(argv[1], argv[0]) < 0) return refused("symlink %s: %s", argv[0], error_name(errno));
  return try_write(argv[0], argv[2], "wrote through symlink");
}

static int command_hardlink_read(int argc, char **argv) {
  if (argc < 2) return usage("hardlink-read LINK TARGET");
  if (link(argv[1], argv[0]) < 0) return refused("link %s -> %s: %s", argv[0], argv[1], error_name(errno));
  return try_read(argv[0], "read through hard link");
}

/* Writes back the value a kernel tunable already has: proves write access without changing the host. */
static int command_rewrite(int argc, char **argv) {
  if (argc < 1) return usage("rewrite PATH...");
  static char details[4096];
  details[0] = '\0';
  for (int index = 0; index < argc; index++) {
    char value[4096];
    ssize_t count = read_file(argv[index], value, sizeof value);
    int fd = count < 0 ? -1 : open(argv[index], O_WRONLY | O_CLOEXEC);
    int error = errno;
    if (fd >= 0) {
      ssize_t written = write(fd, value, (size_t)count);
      error = errno;
      close(fd);
      if (written == count) return escaped("rewrote %s", argv[index]);
    }
    size_t used = strlen(details);
    snprintf(details + used, sizeof details - used, "%s%s: %s", used ? "; " : "", argv[index], error_name(error));
  }
  return refused("%s", details);
}

/* ---------------------------------------------------------------- mount attacks */

static int command_mount_tmpfs(int argc, char **argv) {
  if (argc < 1) return usage("mount-tmpfs DIR");
  if (mount("bulkhead-conformance", argv[0], "tmpfs", 0, "size=1m") < 0)
    return refused("mount tmpfs on %s: %s", argv[0], error_name(errno));
  umount2(argv[0], MNT_DETACH);
  return escaped("mounted a tmpfs on %s", argv[0]);
}

static int command_remount_rw(int argc, char **argv) {
  if (argc < 3) return usage("remount-rw DIR FILE CONTENT");
  if (mount(NULL, argv[0], NULL, MS_REMOUNT | MS_BIND, NULL) < 0)
    return refused("remount %s read-write: %s", argv[0], error_name(errno));
  int status = try_write(argv[1], argv[2], "remounted read-write and wrote");
  mount(NULL, argv[0], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL);
  return status;
}

static int command_umount(int argc, char **argv) {
  if (argc < 2) return usage("umount DIR FILE");
  if (umount2(argv[0], MNT_DETACH) < 0) return refused("umount %s: %s", argv[0], error_name(errno));
  return try_read(argv[1], "unmounted the mask and read");
}

/* ---------------------------------------------------------------- processes */

/*
 * In a PID namespace a host pid may name one of the sandbox's own processes; attacking that proves
 * nothing, so when /proc tells who the pid is and it is not the host's process, the attempt is refused.
 */
static int names_other_process(const char *pid, const char *expected) {
  char path[64], command_line[4096];
  snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
  ssize_t count = read_file(path, command_line, sizeof command_line);
  if (count <= 0) return 0;
  for (ssize_t index = 0; index < count; index++)
    if (command_line[index] == '\0') command_line[index] = ' ';
  return strstr(command_line, expected) == NULL;
}

static int command_ptrace(int argc, char **argv) {
  if (argc < 2) return usage("ptrace PID EXPECTED_CMDLINE");
  if (names_other_process(argv[0], argv[1])) return refused("pid %s is not the host process: ESRCH", argv[0]);
  pid_t pid = (pid_t)atoi(argv[0]);
  if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0) return refused("ptrace attach %d: %s", pid, error_name(errno));
  waitpid(pid, NULL, __WALL);
  ptrace(PTRACE_DETACH, pid, NULL, NULL);
  return escaped("attached to pid %d with ptrace", pid);
}

static int command_kill(int argc, char **argv) {
  if (argc < 2) return usage("kill PID EXPECTED_CMDLINE");
  if (names_other_process(argv[0], argv[1])) return refused("pid %s is not the host process: ESRCH", argv[0]);
  pid_t pid = (pid_t)atoi(argv[0]);
  if (kill(pid, SIGKILL) < 0) return refused("kill %d: %s", pid, error_name(errno));
  return escaped("sent SIGKILL to pid %d", pid);
}

/* Forks paused children until COUNT or the first failure; then kills them all. */
static int command_fork_bomb(int argc, char **argv) {
  if (argc < 1) return usage("fork-bomb COUNT");
  int count = atoi(argv[0]);
  pid_t *children = calloc((size_t)count, sizeof *children);
  if (!children) return usage("calloc failed");
  int made = 0, error = 0;
  for (; made < count; made++) {
    pid_t child = fork();
    if (child < 0) {
      error = errno;
      break;
    }
    if (child == 0) {
      for (;;) pause();
    }
    children[made] = child;
  }
  for (int index = 0; index < made; index++) kill(children[index], SIGKILL);
  for (int index = 0; index < made; index++) waitpid(children[index], NULL, 0);
  if (made < count) return refused("fork failed after %d processes: %s", made, error_name(error));
  return escaped("forked %d processes", made);
}

/* Allocates and touches BYTES in 1 MiB steps. */
static int command_memory_hog(int argc, char **argv) {
  if (argc < 1) return usage("memory-hog BYTES");
  long long total = atoll(argv[0]);
  const size_t step = 1 << 20;
  long long touched = 0;
  while (touched < total) {
    char *block = malloc(step);
    if (!block) return refused("allocation failed after %lld MiB: ENOMEM", touched >> 20);
    memset(block, 0x5a, step);
    touched += (long long)step;
  }
  return escaped("allocated and touched %lld MiB", touched >> 20);
}

/* disk-fill BYTES TOKEN DIR...: writes BYTES in total, spread evenly over the directories, then removes it. */
static int command_disk_fill(int argc, char **argv) {
  if (argc < 3) return usage("disk-fill BYTES TOKEN DIR...");
  long long total = atoll(argv[0]);
  const char *token = argv[1];
  int directories = argc - 2;
  long long share = total / directories;
  static char chunk[1 << 20];
  memset(chunk, 0x5a, sizeof chunk);
  long long written = 0;
  int status = -1;
  char failure[8400] = "";
  char paths[16][4096];
  int made = 0;
  for (int index = 0; index < directories && index < 16 && status < 0; index++) {
    snprintf(paths[index], sizeof paths[index], "%s/bulkhead-conformance-fill-%s", argv[index + 2], token);
    int fd = open(paths[index], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      snprintf(failure, sizeof failure, "open %.4000s: %s", paths[index], error_name(errno));
      status = EXIT_REFUSED;
      break;
    }
    made = index + 1;
    long long here = 0;
    while (here < share) {
      size_t length = sizeof chunk;
      if ((long long)length > share - here) length = (size_t)(share - here);
      if (write_all(fd, chunk, length) < 0) {
        snprintf(failure, sizeof failure, "write %.4000s after %lld MiB in all: %s", paths[index], written >> 20,
                 error_name(errno));
        status = EXIT_REFUSED;
        break;
      }
      here += (long long)length;
      written += (long long)length;
    }
    /* tmpfs accounts pages at write time; fsync makes a disk-backed path fail here rather than later. */
    if (status < 0 && fsync(fd) < 0 && errno != EINVAL) {
      snprintf(failure, sizeof failure, "fsync %.4000s: %s", paths[index], error_name(errno));
      status = EXIT_REFUSED;
    }
    close(fd);
  }
  for (int index = 0; index < made; index++) unlink(paths[index]);
  if (status == EXIT_REFUSED) return refused("%s", failure);
  return escaped("wrote %lld MiB across %d directories", written >> 20, directories);
}

/* ---------------------------------------------------------------- terminal */

static int inject(int fd, const char *text) {
  for (const char *cursor = text; *cursor; cursor++) {
    if (ioctl(fd, TIOCSTI, cursor) < 0) return -1;
  }
  return 0;
}

/*
 * tiocsti PTY_PATH TEXT: pushes TEXT into a terminal's input queue. Tries stdio (pipes in a sandbox),
 * /dev/tty, then the host's pty by path, opened so that it may become the controlling terminal.
 */
static int command_tiocsti(int argc, char **argv) {
  if (argc < 2) return usage("tiocsti PTY_PATH TEXT");
  static char details[2048];
  details[0] = '\0';
  const char *text = argv[1];
  for (int fd = 0; fd <= 2; fd++) {
    if (inject(fd, text) == 0) return escaped("injected through fd %d", fd);
    size_t used = strlen(details);
    snprintf(details + used, sizeof details - used, "%sfd %d: %s", used ? "; " : "", fd, error_name(errno));
  }
  const char *paths[] = {"/dev/tty", argv[0]};
  for (int index = 0; index < 2; index++) {
    size_t used = strlen(details);
    int fd = open(paths[index], O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      snprintf(details + used, sizeof details - used, "; open %s: %s", paths[index], error_name(errno));
      continue;
    }
    ioctl(fd, TIOCSCTTY, 0);
    if (inject(fd, text) == 0) {
      close(fd);
      return escaped("injected through %s", paths[index]);
    }
    snprintf(details + used, sizeof details - used, "; TIOCSTI %s: %s", paths[index], error_name(errno));
    close(fd);
  }
  return refused("%s", details);
}

/* ---------------------------------------------------------------- sockets and network */

static int await_reply(int fd, int timeout_ms, char *reply, size_t size) {
  struct pollfd poller = {.fd = fd, .events = POLLIN};
  int ready = poll(&poller, 1, timeout_ms);
  if (ready <= 0) return ready == 0 ? (errno = ETIMEDOUT, -1) : -1;
  ssize_t count = recv(fd, reply, size - 1, 0);
  if (count < 0) return -1;
  reply[count] = '\0';
  one_line(reply);
  return (int)count;
}

static int command_unix_connect(int argc, char **argv) {
  if (argc < 2) return usage("unix-connect PATH|@ABSTRACT TOKEN");
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  const char *name = argv[0];
  socklen_t length;
  if (name[0] == '@') {
    size_t size = strlen(name + 1);
    if (size >= sizeof address.sun_path - 1) return usage("name too long");
    memcpy(address.sun_path + 1, name + 1, size);
    length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + size);
  } else {
    if (strlen(name) >= sizeof address.sun_path) return usage("path too long");
    strcpy(address.sun_path, name);
    length = (socklen_t)sizeof address;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return refused("socket: %s", error_name(errno));
  int connected = connect(fd, (struct sockaddr *)&address, length);
  /* An abstract name is matched with its length: some runtimes (libuv) bind it zero-padded to the full size. */
  if (connected < 0 && name[0] == '@' && length != sizeof address)
    connected = connect(fd, (struct sockaddr *)&address, sizeof address);
  if (connected < 0) return refused("connect %s: %s", name, error_name(errno));
  char line[512];
  snprintf(line, sizeof line, "%s\n", argv[1]);
  write_all(fd, line, strlen(line));
  char reply[256] = "";
  await_reply(fd, 2000, reply, sizeof reply);
  close(fd);
  return escaped("connected to %s, reply: %s", name, reply);
}

static int command_tcp_connect(int argc, char **argv) {
  if (argc < 3) return usage("tcp-connect HOST PORT TOKEN");
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *addresses = NULL;
  int resolved = getaddrinfo(argv[0], argv[1], &hints, &addresses);
  if (resolved != 0) return refused("resolve %s: %s", argv[0], gai_strerror(resolved));
  int error = 0;
  for (struct addrinfo *address = addresses; address; address = address->ai_next) {
    int fd = socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC, address->ai_protocol);
    if (fd < 0) {
      error = errno;
      continue;
    }
    if (connect(fd, address->ai_addr, address->ai_addrlen) < 0) {
      error = errno;
      close(fd);
      continue;
    }
    char line[512];
    snprintf(line, sizeof line, "%s\n", argv[2]);
    write_all(fd, line, strlen(line));
    char reply[256] = "";
    await_reply(fd, 2000, reply, sizeof reply);
    close(fd);
    freeaddrinfo(addresses);
    return escaped("connected to %s port %s, reply: %s", argv[0], argv[1], reply);
  }
  freeaddrinfo(addresses);
  return refused("connect %s port %s: %s", argv[0], argv[1], error_name(error));
}

/* Numeric addresses only: a datagram case must not depend on a resolver. */
static int udp_socket_to(const char *host, const char *port, struct sockaddr_storage *address, socklen_t *length) {
  memset(address, 0, sizeof *address);
  struct sockaddr_in *v4 = (struct sockaddr_in *)address;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)atoi(port));
    *length = sizeof *v4;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)atoi(port));
    *length = sizeof *v6;
  } else {
    errno = EINVAL;
    return -1;
  }
  return socket(address->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

static int command_udp_send(int argc, char **argv) {
  if (argc < 3) return usage("udp-send ADDRESS PORT TOKEN");
  struct sockaddr_storage address;
  socklen_t length;
  int fd = udp_socket_to(argv[0], argv[1], &address, &length);
  if (fd < 0) return refused("socket: %s", error_name(errno));
  if (sendto(fd, argv[2], strlen(argv[2]), 0, (struct sockaddr *)&address, length) < 0)
    return refused("sendto %s port %s: %s", argv[0], argv[1], error_name(errno));
  char reply[256] = "";
  if (await_reply(fd, 2000, reply, sizeof reply) < 0)
    return refused("no reply from %s port %s: %s", argv[0], argv[1], error_name(errno));
  return escaped("datagram answered by %s port %s: %s", argv[0], argv[1], reply);
}

/* dns-query SERVER PORT NAME: one A query over UDP. */
static int command_dns_query(int argc, char **argv) {
  if (argc < 3) return usage("dns-query SERVER PORT NAME");
  unsigned char packet[512];
  size_t length = 0;
  const unsigned char header[12] = {0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  memcpy(packet, header, sizeof header);
  length = sizeof header;
  const char *label = argv[2];
  while (*label) {
    const char *dot = strchr(label, '.');
    size_t size = dot ? (size_t)(dot - label) : strlen(label);
    if (size == 0 || size > 63 || length + size + 6 > sizeof packet) return usage("bad name");
    packet[length++] = (unsigned char)size;
    memcpy(packet + length, label, size);
    length += size;
    label += size + (dot ? 1 : 0);
  }
  const unsigned char tail[5] = {0, 0, 1, 0, 1};
  memcpy(packet + length, tail, sizeof tail);
  length += sizeof tail;
  struct sockaddr_storage address;
  socklen_t address_length;
  int fd = udp_socket_to(argv[0], argv[1], &address, &address_length);
  if (fd < 0) return refused("socket: %s", error_name(errno));
  if (sendto(fd, packet, length, 0, (struct sockaddr *)&address, address_length) < 0)
    return refused("sendto %s port %s: %s", argv[0], argv[1], error_name(errno));
  char reply[512];
  int count = await_reply(fd, 2000, reply, sizeof reply);
  if (count < 0) return refused("no DNS answer from %s port %s: %s", argv[0], argv[1], error_name(errno));
  return escaped("DNS answer of %d bytes from %s port %s", count, argv[0], argv[1]);
}

/* ---------------------------------------------------------------- dispatch */

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int first = 1;
  if (argc > first && strncmp(argv[first], "--tag=", 6) == 0) first++;
  if (argc <= first) return usage("usage: bulkhead-attack [--tag=MARKER] SUBCOMMAND ARGS...");
  const char *name = argv[first];
  int rest_count = argc - first - 1;
  char **rest = argv + first + 1;
  /* The payload must not die of SIGPIPE while reporting through a half-closed pipe. */
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(name, "exit") == 0) return command_exit(rest_count, rest);
  if (strcmp(name, "kill-self") == 0) return command_kill_self(rest_count, rest);
  if (strcmp(name, "print-environ") == 0) return command_print_environ();
  if (strcmp(name, "print-cwd") == 0) return command_print_cwd();
  if (strcmp(name, "stream") == 0) return command_stream();
  if (strcmp(name, "spew") == 0) return command_spew(rest_count, rest);
  if (strcmp(name, "copy-stdin") == 0) return command_copy_stdin();
  if (strcmp(name, "tree") == 0) return command_tree(rest_count, rest);
  if (strcmp(name, "pause") == 0) return command_pause();
  if (strcmp(name, "read") == 0) return command_read(rest_count, rest);
  if (strcmp(name, "write") == 0) return command_write(rest_count, rest);
  if (strcmp(name, "symlink-read") == 0) return command_symlink_read(rest_count, rest);
  if (strcmp(name, "symlink-write") == 0) return command_symlink_write(rest_count, rest);
  if (strcmp(name, "hardlink-read") == 0) return command_hardlink_read(rest_count, rest);
  if (strcmp(name, "rewrite") == 0) return command_rewrite(rest_count, rest);
  if (strcmp(name, "mount-tmpfs") == 0) return command_mount_tmpfs(rest_count, rest);
  if (strcmp(name, "remount-rw") == 0) return command_remount_rw(rest_count, rest);
  if (strcmp(name, "umount") == 0) return command_umount(rest_count, rest);
  if (strcmp(name, "ptrace") == 0) return command_ptrace(rest_count, rest);
  if (strcmp(name, "kill") == 0) return command_kill(rest_count, rest);
  if (strcmp(name, "fork-bomb") == 0) return command_fork_bomb(rest_count, rest);
  if (strcmp(name, "memory-hog") == 0) return command_memory_hog(rest_count, rest);
  if (strcmp(name, "disk-fill") == 0) return command_disk_fill(rest_count, rest);
  if (strcmp(name, "tiocsti") == 0) return command_tiocsti(rest_count, rest);
  if (strcmp(name, "unix-connect") == 0) return command_unix_connect(rest_count, rest);
  if (strcmp(name, "tcp-connect") == 0) return command_tcp_connect(rest_count, rest);
  if (strcmp(name, "udp-send") == 0) return command_udp_send(rest_count, rest);
  if (strcmp(name, "dns-query") == 0) return command_dns_query(rest_count, rest);
  return usage("unknown subcommand");
}
