/*
 * Bulkhead guest init: PID 1 of the micro-VM tier's guest. Built with `gcc -static` by the package.
 *
 * It mounts what the guest itself needs, says "ready" on the virtio-serial control port, receives
 * one launch (argv, env, cwd, uid, limits, grants), builds the payload's root from the 9p share of
 * the jail's view, runs the payload in a memory/pids cgroup with no capabilities, no_new_privs and
 * a seccomp filter, relays stdin/stdout/stderr as frames, reports the exit, and reboots (which,
 * with `reboot=t -no-reboot`, ends the VMM). One VM runs one payload: nothing is ever reused.
 *
 * The same binary, run on the host as `init --relay SOCKET`, is the VMM's per-connection relay for
 * an allow-list: restricted user networking hands each guest connection to the egress forward to
 * it on stdin/stdout, and it splices that to the egress proxy's unix socket.
 *
 * Frames, both ways: type (1 byte), length (4 bytes, little-endian), payload.
 *   host -> guest: 'P' seccomp program (struct sock_filter[]), 'L' launch (key\0value\0 pairs),
 *                  'I' stdin bytes (empty = end of input), 'S' signal number (1 byte), 'A' ack.
 *   guest -> host: 'R' ready, 'O' stdout bytes, 'E' stderr bytes, 'X' exit report (text),
 *                  'F' failure of init itself (text).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROOT "/payload-root"
#define SHARE "/share"
#define CGROUP "/sys/fs/cgroup"
#define PAYLOAD_CGROUP CGROUP "/payload"
#define MAX_FRAME (1u << 20)
#define MAX_ITEMS 512

static int control = -1;

static void finish(void) {
  sync();
  /* reboot=t on the command line and -no-reboot on the VMM turn a restart into the VMM's exit. */
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

static void write_all(int fd, const void *data, size_t length) {
  const char *cursor = data;
  while (length > 0) {
    ssize_t written = write(fd, cursor, length);
    if (written < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd wait = {.fd = fd, .events = POLLOUT};
        poll(&wait, 1, 1000);
        continue;
      }
      return;
    }
    cursor += written;
    length -= (size_t)written;
  }
}

static void send_frame(char type, const void *data, uint32_t length) {
  unsigned char header[5] = {(unsigned char)type, length & 0xff, (length >> 8) & 0xff, (length >> 16) & 0xff,
                             (length >> 24) & 0xff};
  write_all(control, header, sizeof header);
  if (length > 0) write_all(control, data, length);
}

/* Init's own failure: said to the host, then the VM ends. */
static void fail(const char *format, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *format, ...) {
  char message[1024];
  va_list arguments;
  va_start(arguments, format);
  int length = vsnprintf(message, sizeof message, format, arguments);
  va_end(arguments);
  if (length < 0) length = 0;
  if ((size_t)length >= sizeof message) length = sizeof message - 1;
  if (control >= 0) send_frame('F', message, (uint32_t)length);
  else fprintf(stderr, "bulkhead-init: %s\n", message);
  finish();
  __builtin_unreachable();
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail("open %s: %s", path, strerror(errno));
  if (write(fd, text, strlen(text)) < 0) fail("write '%s' to %s: %s", text, path, strerror(errno));
  close(fd);
}

static long long read_number_field(const char *path, const char *key) {
  char buffer[4096];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t length = read(fd, buffer, sizeof buffer - 1);
  close(fd);
  if (length <= 0) return -1;
  buffer[length] = 0;
  if (!key) return atoll(buffer);
  size_t key_length = strlen(key);
  for (char *line = buffer; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    if (strncmp(line, key, key_length) == 0 && line[key_length] == ' ') return atoll(line + key_length + 1);
  }
  return -1;
}

static void make_directories(const char *path) {
  char partial[4096];
  size_t length = strlen(path);
  if (length >= sizeof partial) fail("path too long: %s", path);
  for (size_t index = 1; index <= length; index++) {
    if (path[index] == '/' || path[index] == 0) {
      memcpy(partial, path, index);
      partial[index] = 0;
      if (mkdir(partial, 0755) < 0 && errno != EEXIST) fail("mkdir %s: %s", partial, strerror(errno));
    }
  }
}

static void mount_or_fail(const char *source, const char *target, const char *type, unsigned long flags,
                          const char *data) {
  if (mount(source, target, type, flags, data) < 0)
    fail("mount %s on %s (%s): %s", source ? source : "none", target, type ? type : "bind", strerror(errno));
}

/* Waits for the host's control port: virtio-serial ports appear a moment after the device probes. */
static int open_control_port(void) {
  for (int attempt = 0; attempt < 2000; attempt++) {
    DIR *ports = opendir("/sys/class/virtio-ports");
    if (ports) {
      struct dirent *entry;
      while ((entry = readdir(ports))) {
        if (entry->d_name[0] == '.') continue;
        char path[512], name[128] = {0};
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", entry->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t length = read(fd, name, sizeof name - 1);
        close(fd);
        if (length > 0 && strncmp(name, "bulkhead.control", 16) == 0) {
          snprintf(path, sizeof path, "/dev/%s", entry->d_name);
          int port = open(path, O_RDWR | O_CLOEXEC);
          if (port >= 0) {
            closedir(ports);
            return port;
          }
        }
      }
      closedir(ports);
    }
    struct timespec pause_time = {0, 5 * 1000 * 1000};
    nanosleep(&pause_time, NULL);
  }
  fprintf(stderr, "bulkhead-init: no control port\n");
  finish();
  return -1;
}

/* Buffered frame reader over the control port. */
static unsigned char *incoming;
static size_t incoming_length, incoming_capacity;

/* Reads what is available; returns 0 when the host closed the port. */
static int fill_incoming(void) {
  if (incoming_capacity - incoming_length < 65536) {
    incoming_capacity = incoming_capacity ? incoming_capacity * 2 : 131072;
    incoming = realloc(incoming, incoming_capacity);
    if (!incoming) fail("out of memory");
  }
  ssize_t length = read(control, incoming + incoming_length, incoming_capacity - incoming_length);
  if (length < 0) return errno == EINTR || errno == EAGAIN ? 1 : 0;
  if (length == 0) return 0;
  incoming_length += (size_t)length;
  return 1;
}

/* Takes one whole frame from the buffer, if there is one. The payload stays valid until the next call. */
static unsigned char *frame_payload;
static int take_frame(char *type, uint32_t *length) {
  static size_t consumed;
  if (consumed > 0) {
    memmove(incoming, incoming + consumed, incoming_length - consumed);
    incoming_length -= consumed;
    consumed = 0;
  }
  if (incoming_length < 5) return 0;
  uint32_t size = incoming[1] | (incoming[2] << 8) | (incoming[3] << 16) | ((uint32_t)incoming[4] << 24);
  if (size > MAX_FRAME) fail("control frame of %u bytes is too large", size);
  if (incoming_length < 5 + size) return 0;
  *type = (char)incoming[0];
  *length = size;
  frame_payload = incoming + 5;
  consumed = 5 + size;
  return 1;
}

static void wait_frame(char *type, uint32_t *length) {
  while (!take_frame(type, length)) {
    if (!fill_incoming()) fail("the host closed the control port");
  }
}

struct launch {
  char *argv[MAX_ITEMS + 1];
  char *env[MAX_ITEMS + 1];
  char *read[MAX_ITEMS], *write[MAX_ITEMS], *deny[MAX_ITEMS];
  int argc, envc, readc, writec, denyc;
  const char *cwd;
  uid_t uid;
  gid_t gid;
  long long memory, pids;
  int spawn;
};

static void parse_launch(struct launch *launch, char *data, uint32_t length) {
  memset(launch, 0, sizeof *launch);
  launch->cwd = "/";
  launch->memory = -1;
  launch->pids = -1;
  launch->spawn = 1;
  char *cursor = data, *end = data + length;
  while (cursor < end) {
    char *key = cursor;
    cursor += strnlen(cursor, (size_t)(end - cursor)) + 1;
    if (cursor >= end) fail("launch record '%s' has no value", key);
    char *value = cursor;
    cursor += strnlen(cursor, (size_t)(end - cursor)) + 1;
    if (cursor > end) fail("launch record '%s' is truncated", key);
#define ADD(list, count)                                              \
  do {                                                                \
    if (launch->count >= MAX_ITEMS) fail("too many %s records", key); \
    launch->list[launch->count++] = value;                            \
  } while (0)
    if (!strcmp(key, "arg")) ADD(argv, argc);
    else if (!strcmp(key, "env")) ADD(env, envc);
    else if (!strcmp(key, "read")) ADD(read, readc);
    else if (!strcmp(key, "write")) ADD(write, writec);
    else if (!strcmp(key, "deny")) ADD(deny, denyc);
    else if (!strcmp(key, "cwd")) launch->cwd = value;
    else if (!strcmp(key, "uid")) launch->uid = (uid_t)atol(value);
    else if (!strcmp(key, "gid")) launch->gid = (gid_t)atol(value);
    else if (!strcmp(key, "memory")) launch->memory = atoll(value);
    else if (!strcmp(key, "pids")) launch->pids = atoll(value);
    else if (!strcmp(key, "spawn")) launch->spawn = atoi(value);
    else fail("unknown launch record '%s'", key);
#undef ADD
  }
  if (launch->argc == 0) fail("the launch has no command");
}

/* Grants are bound onto themselves, shortest path first, so a nested grant overrides its parent's mode. */
struct grant {
  const char *path;
  int writable;
};

static int compare_grants(const void *left, const void *right) {
  return (int)strlen(((const struct grant *)left)->path) - (int)strlen(((const struct grant *)right)->path);
}

static void rooted(char *out, size_t size, const char *path) {
  if ((size_t)snprintf(out, size, "%s%s", ROOT, path) >= size) fail("path too long: %s", path);
}

static int is_granted_exactly(const struct launch *launch, const char *path) {
  for (int index = 0; index < launch->readc; index++)
    if (!strcmp(launch->read[index], path)) return 1;
  for (int index = 0; index < launch->writec; index++)
    if (!strcmp(launch->write[index], path)) return 1;
  return 0;
}

static void build_root(const struct launch *launch) {
  /* The jail's view: the only host files the guest can reach. Read-only parts are read-only there too. */
  make_directories(SHARE);
  mount_or_fail("view", SHARE, "9p", MS_NOSUID | MS_NODEV,
                "trans=virtio,version=9p2000.L,cache=mmap,msize=262144,access=client");
  make_directories(ROOT);
  mount_or_fail(SHARE, ROOT, NULL, MS_BIND, NULL);
  mount_or_fail(NULL, ROOT, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
  /* A private /tmp in guest RAM (counted in the payload's memory cgroup), unless /tmp itself is granted. */
  if (!is_granted_exactly(launch, "/tmp") && !is_granted_exactly(launch, "/"))
    mount_or_fail("tmp", ROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  static struct grant grants[2 * MAX_ITEMS];
  int count = 0;
  for (int index = 0; index < launch->readc; index++) grants[count++] = (struct grant){launch->read[index], 0};
  for (int index = 0; index < launch->writec; index++) grants[count++] = (struct grant){launch->write[index], 1};
  qsort(grants, (size_t)count, sizeof grants[0], compare_grants);
  char source[4096], target[4096];
  for (int index = 0; index < count; index++) {
    if ((size_t)snprintf(source, sizeof source, "%s%s", SHARE, grants[index].path) >= sizeof source)
      fail("path too long: %s", grants[index].path);
    rooted(target, sizeof target, grants[index].path);
    struct stat info;
    if (lstat(source, &info) < 0 || S_ISLNK(info.st_mode)) continue; /* A grant of nothing grants nothing. */
    struct stat existing;
    if (lstat(target, &existing) < 0) {
      /* Only inside the private /tmp: everywhere else the view already has the mount point. */
      if (S_ISDIR(info.st_mode)) make_directories(target);
      else {
        int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) fail("create mount point %s: %s", target, strerror(errno));
        close(fd);
      }
    }
    mount_or_fail(source, target, NULL, MS_BIND, NULL);
    unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (grants[index].writable ? 0 : MS_RDONLY);
    mount_or_fail(NULL, target, NULL, flags, NULL);
  }
  /* Deny masks, again inside the guest: the jail's view already hides these paths. */
  for (int index = 0; index < launch->denyc; index++) {
    rooted(target, sizeof target, launch->deny[index]);
    struct stat info;
    if (lstat(target, &info) < 0) continue;
    if (S_ISDIR(info.st_mode)) mount_or_fail("deny", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=000,size=4k");
    else if (!S_ISLNK(info.st_mode)) mount_or_fail("/.bulkhead/empty", target, NULL, MS_BIND, NULL);
  }
  /* The payload's private kernel interfaces, over the skeleton directories of the view. */
  mount_or_fail("proc", ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  static const char *read_only_proc[] = {ROOT "/proc/sys", ROOT "/proc/sysrq-trigger", ROOT "/proc/irq", ROOT "/proc/bus"};
  for (size_t index = 0; index < sizeof read_only_proc / sizeof read_only_proc[0]; index++) {
    if (access(read_only_proc[index], F_OK) < 0) continue;
    mount_or_fail(read_only_proc[index], read_only_proc[index], NULL, MS_BIND, NULL);
    mount_or_fail(NULL, read_only_proc[index], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  }
  mount_or_fail("dev", ROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k");
  static const struct {
    const char *name;
    unsigned major, minor;
  } nodes[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  for (size_t index = 0; index < sizeof nodes / sizeof nodes[0]; index++) {
    snprintf(target, sizeof target, ROOT "/dev/%s", nodes[index].name);
    if (mknod(target, S_IFCHR | 0666, makedev(nodes[index].major, nodes[index].minor)) < 0)
      fail("mknod %s: %s", target, strerror(errno));
    chmod(target, 0666);
  }
  make_directories(ROOT "/dev/pts");
  mount_or_fail("devpts", ROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
  symlink("pts/ptmx", ROOT "/dev/ptmx");
  make_directories(ROOT "/dev/shm");
  mount_or_fail("shm", ROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  symlink("/proc/self/fd", ROOT "/dev/fd");
  symlink("/proc/self/fd/0", ROOT "/dev/stdin");
  symlink("/proc/self/fd/1", ROOT "/dev/stdout");
  symlink("/proc/self/fd/2", ROOT "/dev/stderr");
}

static void set_up_cgroup(const struct launch *launch) {
  make_directories(CGROUP);
  mount_or_fail("cgroup2", CGROUP, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  write_file(CGROUP "/cgroup.subtree_control", "+memory +pids");
  make_directories(PAYLOAD_CGROUP);
  char number[32];
  if (launch->memory > 0) {
    snprintf(number, sizeof number, "%lld", launch->memory);
    write_file(PAYLOAD_CGROUP "/memory.max", number);
    write_file(PAYLOAD_CGROUP "/memory.oom.group", "1");
  }
  long long pids = launch->spawn ? launch->pids : 1;
  if (pids > 0) {
    snprintf(number, sizeof number, "%lld", pids);
    write_file(PAYLOAD_CGROUP "/pids.max", number);
  }
}

/* The process tier's refusals, as a guest-side filter: x86-64 only, EPERM for the listed calls. */
static struct sock_filter default_filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    /* x32 syscalls carry bit 30: refuse the whole ABI. */
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 5),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K,
             CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
#define REFUSE(name) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_##name, 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)
    REFUSE(mount), REFUSE(umount2), REFUSE(pivot_root), REFUSE(move_mount), REFUSE(open_tree), REFUSE(fsopen),
    REFUSE(fsmount), REFUSE(fsconfig), REFUSE(fspick), REFUSE(mount_setattr), REFUSE(ptrace),
    REFUSE(process_vm_readv), REFUSE(process_vm_writev), REFUSE(kexec_load), REFUSE(kexec_file_load), REFUSE(bpf),
    REFUSE(perf_event_open), REFUSE(userfaultfd), REFUSE(keyctl), REFUSE(add_key), REFUSE(request_key),
    REFUSE(init_module), REFUSE(finit_module), REFUSE(delete_module), REFUSE(open_by_handle_at),
    REFUSE(io_uring_setup), REFUSE(io_uring_enter), REFUSE(io_uring_register), REFUSE(unshare), REFUSE(setns),
    REFUSE(iopl), REFUSE(ioperm), REFUSE(swapon), REFUSE(swapoff), REFUSE(reboot), REFUSE(acct), REFUSE(quotactl),
    REFUSE(settimeofday), REFUSE(clock_settime), REFUSE(adjtimex), REFUSE(clock_adjtime), REFUSE(chroot),
#undef REFUSE
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

static struct sock_fprog host_filter;

static void child_fail(const char *what, int code) {
  char message[512];
  int length = snprintf(message, sizeof message, "bulkhead: %s: %s\n", what, strerror(errno));
  if (length > 0) write_all(2, message, (size_t)length);
  _exit(code);
}

/* In the forked child: confine, then exec. Errors go to the payload's stderr, like a shell's. */
static void exec_payload(const struct launch *launch) {
  setsid();
  write_file(PAYLOAD_CGROUP "/cgroup.procs", "0");
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  if (chroot(ROOT) < 0) child_fail("chroot", 126);
  if (chdir(launch->cwd) < 0) child_fail(launch->cwd, 126);
  /* No capabilities survive into the payload, whatever its uid: not via exec, not via setuid files. */
  if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED) < 0)
    child_fail("securebits", 126);
  for (int capability = 0; capability <= CAP_LAST_CAP; capability++) prctl(PR_CAPBSET_DROP, capability, 0, 0, 0);
  if (setgroups(0, NULL) < 0 || setresgid(launch->gid, launch->gid, launch->gid) < 0 ||
      setresuid(launch->uid, launch->uid, launch->uid) < 0)
    child_fail("switching to the payload's uid", 126);
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {{0}};
  if (syscall(SYS_capset, &header, data) < 0) child_fail("dropping capabilities", 126);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail("no_new_privs", 126);
  struct sock_fprog guest_filter = {sizeof default_filter / sizeof default_filter[0], default_filter};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &guest_filter) < 0) child_fail("seccomp", 126);
  if (host_filter.len > 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &host_filter) < 0)
    child_fail("seccomp (host filter)", 126);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execvpe(launch->argv[0], launch->argv, launch->env);
  child_fail(launch->argv[0], errno == ENOENT ? 127 : 126);
}

/* Pending stdin bytes, written as the payload reads them so output keeps flowing meanwhile. */
static unsigned char *stdin_buffer;
static size_t stdin_length;
static int stdin_closing;

static void queue_stdin(const unsigned char *data, uint32_t length) {
  stdin_buffer = realloc(stdin_buffer, stdin_length + length + 1);
  if (!stdin_buffer) fail("out of memory");
  memcpy(stdin_buffer + stdin_length, data, length);
  stdin_length += length;
}

/* Host side: splices stdin/stdout (one guest connection) to the unix socket at `path`. */
static int relay(const char *path) {
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  if (sock < 0 || strlen(path) >= sizeof address.sun_path) return 1;
  memcpy(address.sun_path, path, strlen(path) + 1);
  if (connect(sock, (struct sockaddr *)&address, sizeof address) < 0) return 1;
  static char buffer[65536];
  int from_guest_open = 1, to_guest_open = 1;
  while (from_guest_open || to_guest_open) {
    struct pollfd watched[2] = {{.fd = from_guest_open ? 0 : -1, .events = POLLIN},
                                {.fd = to_guest_open ? sock : -1, .events = POLLIN}};
    if (poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (watched[0].revents) {
      ssize_t length = read(0, buffer, sizeof buffer);
      if (length <= 0) {
        from_guest_open = 0;
        shutdown(sock, SHUT_WR);
      } else {
        write_all(sock, buffer, (size_t)length);
      }
    }
    if (watched[1].revents) {
      ssize_t length = read(sock, buffer, sizeof buffer);
      if (length <= 0) {
        to_guest_open = 0;
        /* stdout is the VMM's end of a socket pair: a half close ends the guest's stream. */
        if (shutdown(1, SHUT_WR) < 0) close(1);
        if (!from_guest_open) break;
        /* The proxy is done with this connection: nothing the guest still sends matters. */
        break;
      } else {
        write_all(1, buffer, (size_t)length);
      }
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--relay") == 0) return relay(argv[2]);
  if (getpid() != 1) {
    fprintf(stderr, "bulkhead guest init: run as a guest's PID 1, or as --relay SOCKET\n");
    return 2;
  }
  /* The guest's own kernel interfaces, for init only. */
  mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL);
  control = open_control_port();
  send_frame('R', NULL, 0);

  static struct launch launch;
  for (;;) {
    char type;
    uint32_t length;
    wait_frame(&type, &length);
    if (type == 'P') {
      host_filter.len = (unsigned short)(length / sizeof(struct sock_filter));
      host_filter.filter = malloc(length ? length : 1);
      memcpy(host_filter.filter, frame_payload, length);
    } else if (type == 'L') {
      char *copy = malloc(length + 1);
      memcpy(copy, frame_payload, length);
      copy[length] = 0;
      parse_launch(&launch, copy, length);
      break;
    } else if (type == 'I') {
      if (length == 0) stdin_closing = 1;
      else queue_stdin(frame_payload, length);
    }
  }
  build_root(&launch);
  set_up_cgroup(&launch);

  int input[2], output[2], errors[2];
  if (pipe2(input, O_CLOEXEC) < 0 || pipe2(output, O_CLOEXEC) < 0 || pipe2(errors, O_CLOEXEC) < 0)
    fail("pipe: %s", strerror(errno));
  sigset_t child_signals;
  sigemptyset(&child_signals);
  sigaddset(&child_signals, SIGCHLD);
  sigprocmask(SIG_BLOCK, &child_signals, NULL);
  int child_events = signalfd(-1, &child_signals, SFD_CLOEXEC | SFD_NONBLOCK);
  pid_t payload = fork();
  if (payload < 0) fail("fork: %s", strerror(errno));
  if (payload == 0) {
    dup2(input[0], 0);
    dup2(output[1], 1);
    dup2(errors[1], 2);
    exec_payload(&launch);
  }
  close(input[0]);
  close(output[1]);
  close(errors[1]);
  fcntl(input[1], F_SETFL, O_NONBLOCK);
  int stdin_fd = input[1];
  int output_fds[2] = {output[0], errors[0]};
  const char output_types[2] = {'O', 'E'};
  int status = 0, payload_done = 0, control_open = 1;
  static unsigned char chunk[65536];

  while (!payload_done || output_fds[0] >= 0 || output_fds[1] >= 0) {
    struct pollfd watched[5];
    int count = 0;
    watched[count++] = (struct pollfd){.fd = control_open ? control : -1, .events = POLLIN};
    watched[count++] = (struct pollfd){.fd = child_events, .events = POLLIN};
    watched[count++] = (struct pollfd){.fd = output_fds[0], .events = POLLIN};
    watched[count++] = (struct pollfd){.fd = output_fds[1], .events = POLLIN};
    watched[count++] = (struct pollfd){.fd = stdin_fd >= 0 && stdin_length > 0 ? stdin_fd : -1, .events = POLLOUT};
    if (stdin_fd >= 0 && stdin_length == 0 && stdin_closing) {
      close(stdin_fd);
      stdin_fd = -1;
      continue;
    }
    if (poll(watched, (nfds_t)count, -1) < 0) {
      if (errno == EINTR) continue;
      fail("poll: %s", strerror(errno));
    }
    if (watched[0].revents) {
      if (!fill_incoming()) control_open = 0;
      char type;
      uint32_t length;
      while (take_frame(&type, &length)) {
        if (type == 'I') {
          if (length == 0) stdin_closing = 1;
          else if (stdin_fd >= 0) queue_stdin(frame_payload, length);
        } else if (type == 'S' && length == 1) {
          /* The whole payload, like a signal to a process tree. */
          kill(-payload, frame_payload[0]);
          kill(payload, frame_payload[0]);
        }
      }
    }
    if (watched[1].revents) {
      struct signalfd_siginfo information;
      while (read(child_events, &information, sizeof information) > 0) {
      }
      int reaped;
      pid_t pid;
      while ((pid = waitpid(-1, &reaped, WNOHANG)) > 0) {
        if (pid == payload) {
          status = reaped;
          payload_done = 1;
          /* Nothing the payload started outlives it: not a setsid daemon, not a double fork. */
          int fd = open(PAYLOAD_CGROUP "/cgroup.kill", O_WRONLY | O_CLOEXEC);
          if (fd >= 0) {
            write_all(fd, "1", 1);
            close(fd);
          }
        }
      }
    }
    for (int stream = 0; stream < 2; stream++) {
      if (!watched[2 + stream].revents) continue;
      ssize_t length = read(output_fds[stream], chunk, sizeof chunk);
      if (length > 0) send_frame(output_types[stream], chunk, (uint32_t)length);
      else if (length == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(output_fds[stream]);
        output_fds[stream] = -1;
      }
    }
    if (watched[4].revents & (POLLERR | POLLHUP)) {
      close(stdin_fd);
      stdin_fd = -1;
      stdin_length = 0;
    } else if (watched[4].revents & POLLOUT) {
      ssize_t written = write(stdin_fd, stdin_buffer, stdin_length);
      if (written > 0) {
        memmove(stdin_buffer, stdin_buffer + written, stdin_length - (size_t)written);
        stdin_length -= (size_t)written;
      } else if (written < 0 && errno == EPIPE) {
        close(stdin_fd);
        stdin_fd = -1;
        stdin_length = 0;
      }
    }
  }

  long long peak = read_number_field(PAYLOAD_CGROUP "/memory.peak", NULL);
  long long oom = read_number_field(PAYLOAD_CGROUP "/memory.events", "oom_kill");
  long long cpu = read_number_field(PAYLOAD_CGROUP "/cpu.stat", "usage_usec");
  char report[256];
  int length = snprintf(report, sizeof report, "exit=%d signal=%d oom=%lld peak=%lld cpu_usec=%lld",
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                        oom, peak, cpu);
  send_frame('X', report, (uint32_t)length);
  /* The host ends the VMM on the report; the ack only spares waiting when it does not. */
  struct pollfd ack = {.fd = control, .events = POLLIN};
  if (control_open) poll(&ack, 1, 2000);
  finish();
  return 0;
}
