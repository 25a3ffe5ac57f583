/*
 * The payload the benchmarks run inside and outside each sandbox. It times its own work with
 * CLOCK_MONOTONIC so that launch cost never pollutes the CPU-overhead figures, and it reports host
 * facts Node cannot read without native bindings.
 *
 *   workload cpu ITERATIONS        CPU-bound loop; prints elapsed nanoseconds
 *   workload syscalls ITERATIONS PATH [HELD]
 *                                  stat+open+read+close of PATH; prints elapsed nanoseconds. HELD:
 *                                  times to open PATH first and keep it open, which moves where the
 *                                  kernel's per-CPU memory-charge cache starts (see syscalls())
 *   workload hold                  prints "ready", then waits for end of stdin
 *   workload landlock-abi          prints the Landlock ABI version (or -errno)
 *   workload landlock-exec GRANT... -- COMMAND...
 *                                  restricts itself with Landlock alone (reading and executing
 *                                  files, listing folders, only under the GRANTs), then execs
 *                                  COMMAND: the least any Landlock file boundary costs
 *   workload mechanisms-exec READ... --write WRITE... -- COMMAND...
 *                                  restricts itself with a Landlock ruleset handling every file right
 *                                  of the running kernel (read rights under the READ grants, all of
 *                                  them under the WRITE grants) and a seccomp filter that allows
 *                                  everything, then execs COMMAND: the mechanisms of tier-process's
 *                                  shim-only mode with nothing of Bulkhead (no splits, no denies)
 *   workload kvm                   prints KVM's API version (or -errno)
 *   workload http-latency COUNT HOST PORT PATH ADDRESS
 *                                  COUNT GETs, a new connection each; prints each one's nanoseconds
 *   workload http-download HOST PORT PATH ADDRESS
 *                                  one GET read to its end; prints nanoseconds and bytes received
 *   workload http-hold HOST PORT PATH ADDRESS
 *                                  one GET, then like hold
 *   workload tcp-relay PORT        relays each connection to 127.0.0.1 to PORT on 127.0.0.1,
 *                                  with read/write through a buffer as the exec shim's relay does,
 *                                  no sandbox, no proxy; prints "ready LISTENPORT", ends with stdin:
 *                                  the floor of any relay process between a client and a server
 *
 * The HTTP modes are the same code inside a sandbox and bare: when HTTPS_PROXY (or https_proxy) is
 * set they open each connection with CONNECT HOST:PORT through it, as curl does; otherwise they
 * connect to ADDRESS:PORT directly (ADDRESS stands in for the name, like curl's --resolve). Each
 * timing covers connect, the tunnel, the request and the whole response: never the process start.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cpu(unsigned long iterations) {
  uint64_t state = 0x9E3779B97F4A7C15u;
  uint64_t start = now_ns();
  for (unsigned long i = 0; i < iterations; i++) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
  }
  uint64_t elapsed = now_ns() - start;
  /* Printing the state keeps the compiler from removing the loop. */
  printf("%llu %llu\n", (unsigned long long)elapsed, (unsigned long long)(state & 0xff));
  return 0;
}

/*
 * Why HELD: on cgroup v1 the kernel charges each open file's memory to the memory cgroup through a
 * per-CPU cache of bytes, and pays two hierarchical page-counter updates (memory and kmem) whenever
 * that cache crosses a page. A loop that opens and closes one file stays on one side of that
 * boundary for good: about one start in sixteen sits right at it, and every open and close then
 * charges and uncharges a page (+5-10% on this job, bare or sandboxed alike). Where a process starts
 * is fixed by everything its cgroup allocated before, so a fresh cgroup per sandbox draws the same
 * start every time, while the caller's shared cgroup draws a new one. Each held file moves the start
 * by one file's charge, so that runs given different HELD counts draw different starts.
 */
static int syscalls(unsigned long iterations, const char *path, unsigned long held) {
  char buffer[4096];
  struct stat status;
  for (unsigned long index = 0; index < held; index++)
    if (open(path, O_RDONLY | O_CLOEXEC) < 0) return perror("open"), 1;
  uint64_t start = now_ns();
  for (unsigned long i = 0; i < iterations; i++) {
    if (stat(path, &status) != 0) return perror("stat"), 1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return perror("open"), 1;
    if (read(fd, buffer, sizeof buffer) < 0) return perror("read"), 1;
    close(fd);
  }
  printf("%llu\n", (unsigned long long)(now_ns() - start));
  return 0;
}

static int hold(void) {
  char buffer[256];
  if (write(1, "ready\n", 6) != 6) return 1;
  while (read(0, buffer, sizeof buffer) > 0) {
  }
  return 0;
}

static int landlock_abi(void) {
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1u /* LANDLOCK_CREATE_RULESET_VERSION */);
  printf("%ld\n", abi < 0 ? -(long)errno : abi);
  return 0;
}

static int kvm(void) {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return printf("%d\n", -errno), 0;
  int version = ioctl(fd, 0xAE00 /* KVM_GET_API_VERSION */, 0);
  printf("%d\n", version < 0 ? -errno : version);
  close(fd);
  return 0;
}

/* The three read rights of Landlock ABI 1: execute, read a file, list a folder. */
#define LANDLOCK_READ_RIGHTS (1ull | 4ull | 8ull)
/* The rights that apply to a file (the rest are about folders): execute, write, read, truncate, ioctl. */
#define LANDLOCK_FILE_RIGHTS (1ull | 2ull | 4ull | (1ull << 14) | (1ull << 15))

/* Every file right Landlock ABI `abi` knows: 13 in ABI 1, then refer (2), truncate (3), ioctl_dev (5). */
static uint64_t landlock_rights_for(long abi) {
  uint64_t rights = (1ull << 13) - 1;
  if (abi >= 2) rights |= 1ull << 13;
  if (abi >= 3) rights |= 1ull << 14;
  if (abi >= 5) rights |= 1ull << 15;
  return rights;
}

/*
 * Restricts this process with a Landlock ruleset handling `handled` (the read rights under each
 * GRANT, all of `handled` under each grant after --write), and with `with_seccomp` a seccomp filter
 * that allows everything, then execs the command after --.
 */
static int restrict_and_exec(const char *mode, char **argv, uint64_t handled, int with_seccomp) {
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
  struct { uint64_t handled_access_fs; } attributes = {handled};
  int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attributes, sizeof attributes, 0u);
  if (ruleset < 0) return perror("landlock_create_ruleset"), 125;
  int index = 0;
  uint64_t access = LANDLOCK_READ_RIGHTS & handled;
  for (; argv[index] && strcmp(argv[index], "--") != 0; index++) {
    if (strcmp(argv[index], "--write") == 0) {
      access = handled;
      continue;
    }
    int fd = open(argv[index], O_PATH | O_CLOEXEC);
    if (fd < 0) continue; /* a grant that does not exist here grants nothing */
    struct stat status;
    struct __attribute__((packed)) { uint64_t allowed_access; int32_t parent_fd; } rule = {access, fd};
    if (fstat(fd, &status) == 0 && !S_ISDIR(status.st_mode)) rule.allowed_access &= LANDLOCK_FILE_RIGHTS;
    if (syscall(SYS_landlock_add_rule, ruleset, 1 /* LANDLOCK_RULE_PATH_BENEATH */, &rule, 0u) != 0)
      return perror(argv[index]), 125;
    close(fd);
  }
  if (!argv[index] || !argv[index + 1]) return fprintf(stderr, "%s: no command after --\n", mode), 2;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return perror("no_new_privs"), 125;
  if (syscall(SYS_landlock_restrict_self, ruleset, 0u) != 0) return perror("landlock_restrict_self"), 125;
  close(ruleset);
  if (with_seccomp) {
    /* Any filter puts every syscall on the kernel's slow entry path; what it checks adds nothing
       measurable for the syscalls the kernel's action cache allows outright, as Bulkhead's do. */
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog program = {1, allow};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0u, &program) != 0) return perror("seccomp"), 125;
  }
  execvp(argv[index + 1], argv + index + 1);
  perror(argv[index + 1]);
  return 127;
}

static int mechanisms_exec(char **argv) {
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1u /* LANDLOCK_CREATE_RULESET_VERSION */);
  if (abi < 1) return perror("landlock_create_ruleset"), 125;
  return restrict_and_exec("mechanisms-exec", argv, landlock_rights_for(abi), 1);
}

struct target {
  const char *host;
  const char *port;
  const char *path;
  /* Where the connection goes: the proxy when one is set, else the target's stand-in address. */
  struct sockaddr_in via;
  int proxied;
};

static int set_address(struct sockaddr_in *address, const char *host, const char *port) {
  memset(address, 0, sizeof *address);
  address->sin_family = AF_INET;
  address->sin_port = htons((unsigned short)strtoul(port, NULL, 10));
  return inet_pton(AF_INET, host, &address->sin_addr) == 1 ? 0 : -1;
}

/* http://127.0.0.1:3128 (the proxy variables the tiers set): numeric IPv4 only, as there is no DNS. */
static int parse_proxy(const char *url, struct sockaddr_in *address) {
  char host[64], port[16] = "80";
  const char *start = strstr(url, "://");
  start = start ? start + 3 : url;
  size_t length = strcspn(start, ":/");
  if (length == 0 || length >= sizeof host) return -1;
  memcpy(host, start, length);
  host[length] = 0;
  if (start[length] == ':') {
    size_t digits = strspn(start + length + 1, "0123456789");
    if (digits == 0 || digits >= sizeof port) return -1;
    memcpy(port, start + length + 1, digits);
    port[digits] = 0;
  }
  return set_address(address, host, port);
}

static int make_target(struct target *target, char **argv) {
  target->host = argv[0];
  target->port = argv[1];
  target->path = argv[2];
  const char *proxy = getenv("HTTPS_PROXY");
  if (!proxy || !*proxy) proxy = getenv("https_proxy");
  target->proxied = proxy && *proxy;
  int status = target->proxied ? parse_proxy(proxy, &target->via) : set_address(&target->via, argv[3], argv[1]);
  if (status != 0) fprintf(stderr, "workload: cannot use %s as an IPv4 address\n", target->proxied ? proxy : argv[3]);
  return status;
}

static int write_text(int fd, const char *text) {
  size_t length = strlen(text);
  while (length > 0) {
    ssize_t written = write(fd, text, length);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return -1;
    text += written;
    length -= (size_t)written;
  }
  return 0;
}

/* Opens a connection to the target (through the proxy's tunnel when there is one) and sends the GET. */
static int open_request(const struct target *target) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return perror("socket"), -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)&target->via, sizeof target->via) != 0) {
    perror("connect");
    close(fd);
    return -1;
  }
  char text[1024];
  if (target->proxied) {
    snprintf(text, sizeof text, "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", target->host, target->port,
             target->host, target->port);
    if (write_text(fd, text) != 0) return perror("write"), close(fd), -1;
    /* Byte by byte up to the blank line, so that nothing of the tunnel's payload is read here. */
    size_t used = 0;
    while (used < sizeof text - 1) {
      ssize_t got = read(fd, text + used, 1);
      if (got <= 0) break;
      used += 1;
      if (used >= 4 && memcmp(text + used - 4, "\r\n\r\n", 4) == 0) break;
    }
    text[used] = 0;
    if (strncmp(text, "HTTP/1.1 200", 12) != 0 && strncmp(text, "HTTP/1.0 200", 12) != 0) {
      fprintf(stderr, "workload: the proxy refused CONNECT %s:%s: %.200s\n", target->host, target->port, text);
      close(fd);
      return -1;
    }
  }
  snprintf(text, sizeof text, "GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n", target->path,
           target->host, target->port);
  if (write_text(fd, text) != 0) return perror("write"), close(fd), -1;
  return fd;
}

/* One request read to the end (the server closes); returns the bytes received, or -1. */
static long long request_once(const struct target *target) {
  static char buffer[1 << 18];
  int fd = open_request(target);
  if (fd < 0) return -1;
  long long total = 0;
  for (;;) {
    ssize_t got = read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return perror("read"), close(fd), -1;
    if (got == 0) break;
    if (total == 0 && strncmp(buffer, "HTTP/1.1 200", 12) != 0) {
      fprintf(stderr, "workload: the server answered %.100s\n", buffer);
      close(fd);
      return -1;
    }
    total += got;
  }
  close(fd);
  return total;
}

static int http_latency(unsigned long count, char **argv) {
  struct target target;
  if (make_target(&target, argv) != 0) return 2;
  for (unsigned long i = 0; i < count; i++) {
    uint64_t start = now_ns();
    if (request_once(&target) < 0) return 1;
    printf("%llu\n", (unsigned long long)(now_ns() - start));
  }
  return 0;
}

static int http_download(char **argv) {
  struct target target;
  if (make_target(&target, argv) != 0) return 2;
  uint64_t start = now_ns();
  long long bytes = request_once(&target);
  if (bytes < 0) return 1;
  printf("%llu %lld\n", (unsigned long long)(now_ns() - start), bytes);
  return 0;
}

static int http_hold(char **argv) {
  struct target target;
  if (make_target(&target, argv) != 0) return 2;
  if (request_once(&target) < 0) return 1;
  return hold();
}

/* As the shim's relay: one buffer per direction, each side drained before the other is written. */
#define RELAY_BUFFER_BYTES (4 * 1024 * 1024)

static void relay_one(int client, unsigned short target_port) {
  struct sockaddr_in target;
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons(target_port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (upstream < 0 || connect(upstream, (struct sockaddr *)&target, sizeof target) != 0) _exit(1);
  static char buffers[2][RELAY_BUFFER_BYTES];
  int from[2] = {client, upstream}, to[2] = {upstream, client}, open_ways = 2, done[2] = {0, 0};
  while (open_ways > 0) {
    struct pollfd polled[2] = {{.fd = done[0] ? -1 : client, .events = POLLIN}, {.fd = done[1] ? -1 : upstream, .events = POLLIN}};
    if (poll(polled, 2, -1) < 0) _exit(1);
    for (int way = 0; way < 2; way++) {
      if (done[way] || !(polled[way].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t count = read(from[way], buffers[way], RELAY_BUFFER_BYTES);
      if (count <= 0) {
        shutdown(to[way], SHUT_WR);
        done[way] = 1;
        open_ways--;
        continue;
      }
      for (ssize_t written = 0; written < count;) {
        ssize_t step = write(to[way], buffers[way] + written, (size_t)(count - written));
        if (step <= 0) _exit(1);
        written += step;
      }
    }
  }
  _exit(0);
}

static int tcp_relay(unsigned short target_port) {
  signal(SIGCHLD, SIG_IGN); /* children are not waited for: the kernel reaps them */
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 64) != 0 ||
      getsockname(listener, (struct sockaddr *)&address, &length) != 0)
    return perror("tcp-relay"), 1;
  printf("ready %u\n", ntohs(address.sin_port));
  fflush(stdout);
  for (;;) {
    struct pollfd polled[2] = {{.fd = listener, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    if (poll(polled, 2, -1) < 0) continue;
    if (polled[1].revents) {
      char byte;
      if (read(0, &byte, 1) <= 0) return 0; /* stdin ended: so does the relay */
    }
    if (!(polled[0].revents & POLLIN)) continue;
    int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (client < 0) continue;
    pid_t child = fork();
    if (child == 0) relay_one(client, target_port);
    close(client);
  }
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "cpu") == 0) return cpu(strtoul(argv[2], NULL, 10));
  if (argc >= 4 && strcmp(argv[1], "syscalls") == 0)
    return syscalls(strtoul(argv[2], NULL, 10), argv[3], argc >= 5 ? strtoul(argv[4], NULL, 10) : 0);
  if (argc >= 2 && strcmp(argv[1], "hold") == 0) return hold();
  if (argc >= 2 && strcmp(argv[1], "landlock-abi") == 0) return landlock_abi();
  if (argc >= 2 && strcmp(argv[1], "kvm") == 0) return kvm();
  if (argc >= 4 && strcmp(argv[1], "landlock-exec") == 0)
    return restrict_and_exec("landlock-exec", argv + 2, LANDLOCK_READ_RIGHTS, 0);
  if (argc >= 4 && strcmp(argv[1], "mechanisms-exec") == 0) return mechanisms_exec(argv + 2);
  if (argc >= 7 && strcmp(argv[1], "http-latency") == 0) return http_latency(strtoul(argv[2], NULL, 10), argv + 3);
  if (argc >= 6 && strcmp(argv[1], "http-download") == 0) return http_download(argv + 2);
  if (argc >= 6 && strcmp(argv[1], "http-hold") == 0) return http_hold(argv + 2);
  if (argc >= 3 && strcmp(argv[1], "tcp-relay") == 0) return tcp_relay((unsigned short)strtoul(argv[2], NULL, 10));
  fprintf(stderr, "usage: workload cpu N | syscalls N PATH [HELD] | hold | landlock-abi | landlock-exec GRANT... -- COMMAND... | mechanisms-exec READ... --write WRITE... -- COMMAND... "
                  "| kvm | http-latency N HOST PORT PATH ADDRESS | http-download HOST PORT PATH ADDRESS "
                  "| http-hold HOST PORT PATH ADDRESS | tcp-relay PORT\n");
  return 2;
}
