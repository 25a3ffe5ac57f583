/*
 * bulkhead-shim: applies a confinement plan decided by @bulkhead/linux, then execs the payload.
 *
 *   bulkhead-shim [--config-fd N] [--status-fd N] -- PROGRAM [ARGS...]
 *   bulkhead-shim --config-fd N [--status-fd N]       (the program comes in the plan's argument lines)
 *
 * The TypeScript side decides everything; this program only applies, in this order:
 *   1. read and close the plan fd (and the seccomp fd it names);
 *      with a parent line, die with the parent (PR_SET_PDEATHSIG, SIGKILL) from here on;
 *   2. start the egress relay, if the plan has one;
 *   3. prctl(PR_SET_NO_NEW_PRIVS);
 *   4. rlimits;  5. chdir;
 *   6. the Landlock ruleset, then landlock_restrict_self;
 *   7. the seccomp filter (raw classic BPF read from the seccomp fd);
 *   8. setsid (no controlling terminal); default signal dispositions, empty signal mask;
 *   9. every fd above 2 closed (close-on-exec, so the status fd stays open until the exec);
 *  10. execvp(PROGRAM) with the environment this process was given, less what env-keep lines
 *      leave out.
 *
 * Plan format (text, one directive per line, fields separated by one space, numbers in decimal,
 * paths absolute and running to the end of the line, so they may hold spaces but not newlines):
 *
 *   bulkhead-plan 1                                   first line, always
 *   landlock <min-abi> <fs-mask> <net-mask> <scope>   handled rights; refuse when the ABI is lower
 *   path <mask> <path>                                allow <mask> beneath path (must exist)
 *   path-optional <mask> <path>                       same, skipped when the path does not exist
 *                                                     or this uid cannot reach it (it could not
 *                                                     use the grant anyway)
 *   entry <mask> <path>                               like path-optional, but a symlink is skipped
 *                                                     (the entries a grant was split into: a rule
 *                                                     would follow the link out of the grant)
 *   port <mask> <port>                                allow TCP bind/connect rights on a port
 *   rlimit <resource> <soft> <hard>                   resource: as core cpu data fsize locks
 *                                                     memlock msgqueue nice nofile nproc rss
 *                                                     rtprio rttime sigpending stack;
 *                                                     soft/hard: a number or "infinity"
 *   chdir <path>
 *   seccomp-fd <n>                                    read the filter (struct sock_filter[]) from n
 *   relay <port> <unix-socket-path>                   relay 127.0.0.1:<port> to the unix socket
 *                                                     (and take tunnels over: see the relay below)
 *   env-keep <name>                                   keep this variable of the shim's environment;
 *                                                     with at least one env-keep line, every other
 *                                                     variable is removed before the exec (bubblewrap
 *                                                     always exports PWD, for one). The name runs to
 *                                                     the end of the line.
 *   parent <pid>                                      die with the parent: PR_SET_PDEATHSIG(SIGKILL),
 *                                                     then refuse to go on unless getppid() is <pid>
 *                                                     (0: the parent the shim started with, for a pid
 *                                                     namespace where the caller's pid means nothing),
 *                                                     so a parent that died before the prctl counts too
 *   argument <hex>                                    the next word of the program to run (its bytes in
 *                                                     hexadecimal, so it may hold spaces and newlines),
 *                                                     for a shim started before its payload was known;
 *                                                     then the command line names no program
 *
 * On a rule a path does not accept (a directory right on a file), the shim keeps the rights that
 * apply to files. Anything malformed is refused.
 *
 * Status: before the exec, a failure is written as one line on the status fd (close-on-exec, so
 * a successful exec closes it with nothing written):
 *
 *   error <step> <errno> <detail>
 *
 * then the shim exits 125; 127 when the program is not found, 126 when it cannot be executed
 * (step "exec"). Steps: usage plan parent seccomp relay no-new-privs rlimit chdir landlock-abi landlock
 * setsid signals close-fds exec.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

/* Landlock's uapi, spelled out so the shim builds against headers older than the running kernel. */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#define LANDLOCK_CREATE_RULESET_VERSION_FLAG (1U << 0)
#define LANDLOCK_RULE_PATH_BENEATH_TYPE 1
#define LANDLOCK_RULE_NET_PORT_TYPE 2
#define CLOSE_RANGE_CLOEXEC_FLAG (1U << 2)
/* Rights that a rule on a non-directory may carry: execute, write, read, truncate, ioctl_dev. */
#define LANDLOCK_FILE_RIGHTS ((1ULL << 0) | (1ULL << 1) | (1ULL << 2) | (1ULL << 14) | (1ULL << 15))

struct ruleset_attr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct path_beneath_attr {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

struct net_port_attr {
  uint64_t allowed_access;
  uint64_t port;
};

#define PLAN_MAX_BYTES (4 * 1024 * 1024)
#define SECCOMP_MAX_BYTES (BPF_MAXINSNS * sizeof(struct sock_filter))
#define RELAY_MAX_PAIRS 128
/*
 * Per direction of a connection. Pages are touched only as used: a small exchange costs a page or
 * two, a bulk transfer as much as one read returns (what the socket holds, often several MiB once
 * TCP has grown its buffers). Measured on loopback, 4 MiB beat 1 MiB by about a tenth and larger
 * buffers did no better.
 */
#define RELAY_BUFFER_BYTES (4 * 1024 * 1024)
#define RELAY_ROUNDS 4 /* per step and direction: at most 4 buffers (16 MiB) before other connections get a turn */
#define RELAY_HANDOVER_WINDOW 1024

enum { EXIT_SHIM_FAILED = 125, EXIT_NOT_EXECUTABLE = 126, EXIT_NOT_FOUND = 127 };

struct path_rule {
  uint64_t mask;
  const char *path;
  int optional;
  int no_follow;
};

struct port_rule {
  uint64_t mask;
  uint64_t port;
};

struct limit_rule {
  int resource;
  struct rlimit value;
};

struct plan {
  int has_landlock;
  long min_abi;
  struct ruleset_attr ruleset;
  struct path_rule *paths;
  size_t path_count;
  struct port_rule *ports;
  size_t port_count;
  struct limit_rule *limits;
  size_t limit_count;
  const char *chdir_path;
  int seccomp_fd;
  int has_relay;
  unsigned relay_port;
  const char *relay_socket;
  const char **keep_environment;
  size_t keep_count;
  int has_parent;
  pid_t parent;
  char **command;
  size_t command_count;
};

static int status_fd = -1;

/* Reports a failure of the shim itself on the status fd (or stderr without one), then exits. */
__attribute__((noreturn, format(printf, 4, 5))) static void fail(int exit_code, const char *step, int error,
                                                                 const char *format, ...) {
  char detail[1024];
  char line[1200];
  va_list arguments;
  va_start(arguments, format);
  vsnprintf(detail, sizeof detail, format, arguments);
  va_end(arguments);
  for (char *c = detail; *c; c++) {
    if (*c == '\n') *c = ' ';
  }
  int length = snprintf(line, sizeof line, "error %s %d %s\n", step, error, detail);
  if (length < 0) _exit(exit_code);
  if ((size_t)length >= sizeof line) length = sizeof line - 1;
  int fd = status_fd >= 0 ? status_fd : STDERR_FILENO;
  if (fd == STDERR_FILENO) {
    static const char prefix[] = "bulkhead-shim: ";
    ssize_t ignored = write(fd, prefix, sizeof prefix - 1);
    (void)ignored;
  }
  for (const char *p = line; length > 0;) {
    ssize_t written = write(fd, p, (size_t)length);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) break;
    p += written;
    length -= (int)written;
  }
  _exit(exit_code);
}

static int parse_fd(const char *text, int *fd) {
  char *end;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno || end == text || *end || value < 0 || value > INT_MAX) return -1;
  *fd = (int)value;
  return 0;
}

/* Unsigned decimal only: no sign, no leading space, no hex, nothing after it. */
static int parse_number(const char *text, uint64_t maximum, uint64_t *value) {
  if (*text < '0' || *text > '9') return -1;
  char *end;
  errno = 0;
  unsigned long long parsed = strtoull(text, &end, 10);
  if (errno || *end || parsed > maximum) return -1;
  *value = parsed;
  return 0;
}

static int parse_limit(const char *text, rlim_t *value) {
  if (strcmp(text, "infinity") == 0) {
    *value = RLIM_INFINITY;
    return 0;
  }
  uint64_t parsed;
  if (parse_number(text, UINT64_MAX - 1, &parsed)) return -1;
  *value = (rlim_t)parsed;
  return 0;
}

static const struct {
  const char *name;
  int resource;
} resources[] = {
    {"as", RLIMIT_AS},         {"core", RLIMIT_CORE},       {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},     {"fsize", RLIMIT_FSIZE},     {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC},     {"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO}, {"rttime", RLIMIT_RTTIME},   {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};

static void *grow(void *array, size_t count, size_t size) {
  /* Doubling at powers of two keeps appends amortised without tracking a capacity. */
  if (count && (count & (count - 1))) return array;
  void *grown = realloc(array, (count ? count * 2 : 8) * size);
  if (!grown) fail(EXIT_SHIM_FAILED, "plan", ENOMEM, "out of memory");
  return grown;
}

/* Reads fd to EOF into a NUL-terminated buffer and closes it. */
static char *read_all(int fd, size_t maximum, size_t *size, const char *step) {
  size_t capacity = 4096, used = 0;
  char *buffer = malloc(capacity + 1);
  if (!buffer) fail(EXIT_SHIM_FAILED, step, ENOMEM, "out of memory");
  for (;;) {
    if (used == capacity) {
      if (capacity >= maximum) fail(EXIT_SHIM_FAILED, step, EFBIG, "fd %d holds more than %zu bytes", fd, maximum);
      capacity *= 2;
      char *grown = realloc(buffer, capacity + 1);
      if (!grown) fail(EXIT_SHIM_FAILED, step, ENOMEM, "out of memory");
      buffer = grown;
    }
    ssize_t count = read(fd, buffer + used, capacity - used);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) fail(EXIT_SHIM_FAILED, step, errno, "cannot read fd %d: %s", fd, strerror(errno));
    if (count == 0) break;
    used += (size_t)count;
  }
  if (used > maximum) fail(EXIT_SHIM_FAILED, step, EFBIG, "fd %d holds more than %zu bytes", fd, maximum);
  close(fd);
  buffer[used] = '\0';
  *size = used;
  return buffer;
}

/* Splits off the next space-separated field; returns NULL when there is none. */
static char *next_field(char **cursor) {
  char *start = *cursor;
  if (!start || !*start) return NULL;
  char *space = strchr(start, ' ');
  if (space) {
    *space = '\0';
    *cursor = space + 1;
  } else {
    *cursor = NULL;
  }
  return start;
}

__attribute__((noreturn)) static void malformed(size_t line_number, const char *why) {
  fail(EXIT_SHIM_FAILED, "plan", EINVAL, "line %zu: %s", line_number, why);
}

static void expect_end(char **cursor, size_t line_number) {
  if (*cursor) malformed(line_number, "unexpected text after the last field");
}

static const char *expect_path(char **cursor, size_t line_number) {
  char *path = *cursor;
  if (!path || path[0] != '/') malformed(line_number, "expected an absolute path");
  *cursor = NULL;
  return path;
}

static uint64_t expect_number(char **cursor, uint64_t maximum, size_t line_number, const char *what) {
  char *field = next_field(cursor);
  uint64_t value;
  if (!field || parse_number(field, maximum, &value)) {
    char why[96];
    snprintf(why, sizeof why, "expected %s", what);
    malformed(line_number, why);
  }
  return value;
}

static int hex_digit(char digit) {
  if (digit >= '0' && digit <= '9') return digit - '0';
  if (digit >= 'a' && digit <= 'f') return digit - 'a' + 10;
  if (digit >= 'A' && digit <= 'F') return digit - 'A' + 10;
  return -1;
}

/* Decodes hexadecimal text in place (the bytes are never longer than their digits). */
static char *expect_hex_word(char **cursor, size_t line_number) {
  char *text = next_field(cursor);
  expect_end(cursor, line_number);
  size_t length = text ? strlen(text) : 0;
  if (!text || length % 2) malformed(line_number, "expected an even number of hexadecimal digits");
  for (size_t i = 0; i < length / 2; i++) {
    int high = hex_digit(text[2 * i]);
    int low = hex_digit(text[2 * i + 1]);
    if (high < 0 || low < 0) malformed(line_number, "expected hexadecimal digits");
    if (!high && !low) malformed(line_number, "an argument cannot hold a NUL byte");
    text[i] = (char)(high * 16 + low);
  }
  text[length / 2] = '\0';
  return text;
}

static void parse_plan(char *text, size_t size, struct plan *plan) {
  if (memchr(text, '\0', size)) fail(EXIT_SHIM_FAILED, "plan", EINVAL, "the plan holds a NUL byte");
  if (size == 0 || text[size - 1] != '\n') fail(EXIT_SHIM_FAILED, "plan", EINVAL, "the plan must end with a newline");
  size_t line_number = 0;
  for (char *line = text; *line;) {
    char *newline = strchr(line, '\n');
    *newline = '\0';
    char *cursor = line;
    line = newline + 1;
    line_number++;
    char *directive = next_field(&cursor);
    if (!directive) malformed(line_number, "empty line");
    if (line_number == 1) {
      char *version = next_field(&cursor);
      if (strcmp(directive, "bulkhead-plan") || !version || strcmp(version, "1"))
        malformed(line_number, "the first line must be 'bulkhead-plan 1'");
      expect_end(&cursor, line_number);
    } else if (!strcmp(directive, "landlock")) {
      if (plan->has_landlock) malformed(line_number, "more than one landlock line");
      plan->has_landlock = 1;
      plan->min_abi = (long)expect_number(&cursor, 1000, line_number, "a minimum ABI");
      plan->ruleset.handled_access_fs = expect_number(&cursor, UINT64_MAX, line_number, "a filesystem mask");
      plan->ruleset.handled_access_net = expect_number(&cursor, UINT64_MAX, line_number, "a network mask");
      plan->ruleset.scoped = expect_number(&cursor, UINT64_MAX, line_number, "a scope mask");
      expect_end(&cursor, line_number);
      if (plan->min_abi < 1) malformed(line_number, "the minimum ABI must be at least 1");
    } else if (!strcmp(directive, "path") || !strcmp(directive, "path-optional") || !strcmp(directive, "entry")) {
      if (!plan->has_landlock) malformed(line_number, "a path rule before the landlock line");
      plan->paths = grow(plan->paths, plan->path_count, sizeof *plan->paths);
      struct path_rule *rule = &plan->paths[plan->path_count++];
      rule->optional = directive[0] == 'e' || directive[4] == '-';
      rule->no_follow = directive[0] == 'e';
      rule->mask = expect_number(&cursor, UINT64_MAX, line_number, "an access mask");
      rule->path = expect_path(&cursor, line_number);
      if (!rule->mask || (rule->mask & ~plan->ruleset.handled_access_fs))
        malformed(line_number, "a path mask must be non-zero and within the handled filesystem rights");
    } else if (!strcmp(directive, "port")) {
      if (!plan->has_landlock) malformed(line_number, "a port rule before the landlock line");
      plan->ports = grow(plan->ports, plan->port_count, sizeof *plan->ports);
      struct port_rule *rule = &plan->ports[plan->port_count++];
      rule->mask = expect_number(&cursor, UINT64_MAX, line_number, "an access mask");
      rule->port = expect_number(&cursor, 65535, line_number, "a port (0-65535)");
      expect_end(&cursor, line_number);
      if (!rule->mask || (rule->mask & ~plan->ruleset.handled_access_net))
        malformed(line_number, "a port mask must be non-zero and within the handled network rights");
    } else if (!strcmp(directive, "rlimit")) {
      char *name = next_field(&cursor);
      char *soft = next_field(&cursor);
      char *hard = next_field(&cursor);
      expect_end(&cursor, line_number);
      if (!name || !soft || !hard) malformed(line_number, "expected 'rlimit <resource> <soft> <hard>'");
      plan->limits = grow(plan->limits, plan->limit_count, sizeof *plan->limits);
      struct limit_rule *rule = &plan->limits[plan->limit_count++];
      rule->resource = -1;
      for (size_t i = 0; i < sizeof resources / sizeof resources[0]; i++) {
        if (!strcmp(name, resources[i].name)) rule->resource = resources[i].resource;
      }
      if (rule->resource < 0) malformed(line_number, "unknown rlimit resource");
      if (parse_limit(soft, &rule->value.rlim_cur) || parse_limit(hard, &rule->value.rlim_max))
        malformed(line_number, "rlimit values must be numbers or 'infinity'");
      if (rule->value.rlim_max != RLIM_INFINITY &&
          (rule->value.rlim_cur == RLIM_INFINITY || rule->value.rlim_cur > rule->value.rlim_max))
        malformed(line_number, "an rlimit's soft value exceeds its hard value");
    } else if (!strcmp(directive, "chdir")) {
      if (plan->chdir_path) malformed(line_number, "more than one chdir line");
      plan->chdir_path = expect_path(&cursor, line_number);
    } else if (!strcmp(directive, "seccomp-fd")) {
      if (plan->seccomp_fd >= 0) malformed(line_number, "more than one seccomp-fd line");
      plan->seccomp_fd = (int)expect_number(&cursor, INT_MAX, line_number, "an fd number");
      expect_end(&cursor, line_number);
      if (plan->seccomp_fd <= STDERR_FILENO || plan->seccomp_fd == status_fd)
        malformed(line_number, "the seccomp fd must be above 2 and not the status fd");
    } else if (!strcmp(directive, "relay")) {
      if (plan->has_relay) malformed(line_number, "more than one relay line");
      plan->has_relay = 1;
      plan->relay_port = (unsigned)expect_number(&cursor, 65535, line_number, "a port (1-65535)");
      plan->relay_socket = expect_path(&cursor, line_number);
      if (plan->relay_port == 0) malformed(line_number, "the relay port must be 1-65535");
      if (strlen(plan->relay_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        malformed(line_number, "the relay socket path is too long for a unix socket");
    } else if (!strcmp(directive, "env-keep")) {
      char *name = cursor;
      cursor = NULL;
      if (!name || !*name || strchr(name, '=')) malformed(line_number, "expected a variable name without '='");
      plan->keep_environment = grow(plan->keep_environment, plan->keep_count, sizeof *plan->keep_environment);
      plan->keep_environment[plan->keep_count++] = name;
    } else if (!strcmp(directive, "argument")) {
      /* One more slot than words: the list handed to execvp ends with NULL. */
      plan->command = grow(plan->command, plan->command_count, sizeof *plan->command);
      plan->command[plan->command_count++] = expect_hex_word(&cursor, line_number);
      plan->command = grow(plan->command, plan->command_count, sizeof *plan->command);
      plan->command[plan->command_count] = NULL;
    } else if (!strcmp(directive, "parent")) {
      if (plan->has_parent) malformed(line_number, "more than one parent line");
      plan->has_parent = 1;
      plan->parent = (pid_t)expect_number(&cursor, INT_MAX, line_number, "a pid");
      expect_end(&cursor, line_number);
    } else {
      malformed(line_number, "unknown directive");
    }
  }
}

/* ---- relay: 127.0.0.1:<port> -> unix socket, one child, one poll loop ---- */

/*
 * Each direction moves bytes with read() and write() through a buffer of its own. splice() through
 * a pipe looked cheaper (no copy here), but measured on loopback TCP it costs more in all: the pipe
 * hands the client's socket the upstream's pages a 4 KiB fragment at a time, and the payload then
 * pays per fragment on every read, more than the two copies made here. Each side is drained until
 * the kernel says EAGAIN (or the buffer is full) before poll is asked again, so a bulk transfer
 * costs two syscalls per buffer-full rather than a poll round trip per chunk.
 *
 * Handover: the relay opens each proxy connection with one marker byte (0x00, which neither HTTP
 * nor SOCKS5 starts with). A proxy that sees it may, once it has allowed a tunnel and connected
 * upstream, send its reply with the upstream socket attached (SCM_RIGHTS), within the first
 * RELAY_HANDOVER_WINDOW bytes it sends on the connection (read here with recvmsg; after the window,
 * read, which drops attached fds). The proxy never reads that upstream socket. Then, in order:
 *   1. upstream -> client reads the upstream socket at once, through the same buffer as the reply;
 *   2. client -> proxy stops reading the client, drains its buffer to the proxy and shuts the write
 *      side: the proxy writes what it holds of the client's bytes upstream, then ends its side;
 *   3. at that EOF, client -> upstream starts; the proxy connection is closed.
 * So every byte reaches its destination in the order it was sent, and the proxy leaves the data path.
 */
enum { ROLE_CLIENT, ROLE_PROXY, ROLE_UPSTREAM };
enum { PHASE_PROXIED, PHASE_HANDING_OVER, PHASE_DIRECT };

struct relay_direction {
  char *buffer;      /* RELAY_BUFFER_BYTES, mapped while the pair exists */
  size_t start, end; /* buffer[start, end): read, not yet written to the destination */
  int closed;        /* the source said EOF (or failed) */
  int shut;          /* the destination's write side is shut */
};

struct relay_pair {
  int fds[3];                    /* by role; -1 when unused (fds[ROLE_CLIENT] < 0: a free slot) */
  struct relay_direction way[2]; /* 0: client -> proxy/upstream; 1: proxy/upstream -> client */
  int full[3];                   /* by role: refused a write (EAGAIN), wait for POLLOUT on it */
  int phase;
  size_t from_proxy; /* bytes the proxy sent, while under the handover window */
};

static int relay_source(const struct relay_pair *pair, int i) {
  return i == 0 ? ROLE_CLIENT : pair->phase == PHASE_PROXIED ? ROLE_PROXY : ROLE_UPSTREAM;
}

static int relay_destination(const struct relay_pair *pair, int i) {
  return i == 1 ? ROLE_CLIENT : pair->phase == PHASE_DIRECT ? ROLE_UPSTREAM : ROLE_PROXY;
}

/* Whether way i may read its source now (the client waits while the proxy hands over). */
static int relay_reading(const struct relay_pair *pair, int i) {
  return !pair->way[i].closed && !(i == 0 && pair->phase == PHASE_HANDING_OVER);
}

static void relay_close(struct relay_pair *pair) {
  for (int role = 0; role < 3; role++)
    if (pair->fds[role] >= 0) close(pair->fds[role]);
  /* Both buffers are one mapping: unmapping it gives the memory back at once. */
  if (pair->way[0].buffer) munmap(pair->way[0].buffer, 2 * RELAY_BUFFER_BYTES);
  memset(pair, 0, sizeof *pair);
  pair->fds[0] = pair->fds[1] = pair->fds[2] = -1;
}

/*
 * Reads the proxy's first bytes with recvmsg, which keeps an attached upstream socket (read drops
 * it), into way 1's buffer, never past RELAY_HANDOVER_WINDOW bytes of the connection.
 * Returns the byte count, 0 at EOF, -1 with errno.
 */
static ssize_t relay_receive(struct relay_pair *pair) {
  struct relay_direction *way = &pair->way[1];
  size_t room = RELAY_BUFFER_BYTES - way->end;
  if (room > RELAY_HANDOVER_WINDOW - pair->from_proxy) room = RELAY_HANDOVER_WINDOW - pair->from_proxy;
  union {
    struct cmsghdr header;
    char space[CMSG_SPACE(sizeof(int))];
  } control;
  struct iovec vector = {.iov_base = way->buffer + way->end, .iov_len = room};
  struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control};
  ssize_t count = recvmsg(pair->fds[ROLE_PROXY], &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (count <= 0) return count;
  for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    size_t fd_count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t k = 0; k < fd_count; k++) {
      int fd;
      memcpy(&fd, CMSG_DATA(header) + k * sizeof(int), sizeof fd);
      if (k == 0 && pair->phase == PHASE_PROXIED && pair->fds[ROLE_UPSTREAM] < 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        pair->fds[ROLE_UPSTREAM] = fd;
      } else {
        close(fd);
      }
    }
  }
  /* A truncated control message may have lost an fd: the stream's order can no longer be kept. */
  if (message.msg_flags & MSG_CTRUNC) {
    errno = EPROTO;
    return -1;
  }
  pair->from_proxy += (size_t)count;
  if (pair->fds[ROLE_UPSTREAM] >= 0) pair->phase = PHASE_HANDING_OVER;
  return count;
}

/*
 * Moves what it can in one direction, a bounded number of rounds so one busy connection cannot
 * starve the others; returns -1 when the pair must be dropped. On return either the buffer is
 * empty, the destination is marked full (poll waits for POLLOUT on it), or the source is done.
 */
static int relay_move(struct relay_pair *pair, int i) {
  struct relay_direction *way = &pair->way[i];
  for (int round = 0; round < RELAY_ROUNDS; round++) {
    int from = pair->fds[relay_source(pair, i)], to_role = relay_destination(pair, i);
    int progressed = 0;
    if (way->start == way->end) way->start = way->end = 0;
    if (relay_reading(pair, i) && way->end < RELAY_BUFFER_BYTES) {
      ssize_t count;
      if (i == 1 && pair->phase == PHASE_PROXIED && pair->from_proxy < RELAY_HANDOVER_WINDOW)
        count = relay_receive(pair);
      else
        count = read(from, way->buffer + way->end, RELAY_BUFFER_BYTES - way->end);
      if (count > 0) {
        way->end += (size_t)count;
        progressed = 1;
      } else if (count == 0 || (errno != EINTR && errno != EAGAIN)) {
        way->closed = 1;
      }
    }
    if (way->end > way->start) {
      ssize_t count = write(pair->fds[to_role], way->buffer + way->start, way->end - way->start);
      if (count > 0) {
        way->start += (size_t)count;
        pair->full[to_role] = 0;
        progressed = 1;
      } else if (count < 0 && errno == EAGAIN) {
        pair->full[to_role] = 1;
        break;
      } else if (count == 0 || errno != EINTR) {
        return -1;
      }
    }
    if (!progressed) break;
  }
  int to_role = relay_destination(pair, i);
  /* Out of rounds with bytes still buffered: a POLLOUT wake-up (at once) brings it back. */
  if (way->end > way->start) pair->full[to_role] = 1;
  if (!relay_reading(pair, i) && way->end == way->start && !way->shut) {
    shutdown(pair->fds[to_role], SHUT_WR);
    way->shut = 1;
  }
  return 0;
}

/* While handing over: the proxy's EOF says it wrote upstream all it held of the client's bytes. */
static int relay_await_proxy(struct relay_pair *pair) {
  if (pair->phase != PHASE_HANDING_OVER || !pair->way[0].shut) return 0;
  char byte;
  ssize_t count = read(pair->fds[ROLE_PROXY], &byte, 1);
  if (count < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (count != 0) return -1; /* the proxy sent more after the handover, or failed: order is lost */
  close(pair->fds[ROLE_PROXY]);
  pair->fds[ROLE_PROXY] = -1;
  pair->full[ROLE_PROXY] = 0;
  pair->phase = PHASE_DIRECT;
  pair->way[0].shut = 0; /* now towards upstream: shut again if the client already finished */
  return 1;
}

static void relay_step(struct relay_pair *pair) {
  for (int again = 1; again;) {
    again = 0;
    int phase = pair->phase;
    for (int i = 0; i < 2; i++) {
      if (relay_move(pair, i) < 0) {
        relay_close(pair);
        return;
      }
    }
    int awaited = relay_await_proxy(pair);
    if (awaited < 0) {
      relay_close(pair);
      return;
    }
    /* A phase change gives each direction a new source or destination to try at once. */
    again = awaited || phase != pair->phase;
  }
  if (pair->way[0].shut && pair->way[1].shut && pair->phase != PHASE_HANDING_OVER) relay_close(pair);
}

static int relay_connect(const char *socket_path) {
  /* Non-blocking: a proxy with a full backlog (EAGAIN) fails this client, not the whole relay. */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  strncpy(address.sun_path, socket_path, sizeof address.sun_path - 1);
  static const char marker = 0;
  if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0 ||
      send(fd, &marker, 1, MSG_NOSIGNAL) != 1) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A pair with its two buffers, or -1 (nothing allocated) when the system is out of memory. */
static int relay_open(struct relay_pair *pair, int client, int proxy) {
  memset(pair, 0, sizeof *pair);
  pair->fds[0] = pair->fds[1] = pair->fds[2] = -1;
  char *buffers = mmap(NULL, 2 * RELAY_BUFFER_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buffers == MAP_FAILED) return -1;
  /* Where transparent huge pages are "always", the first byte would cost 2 MiB: keep 4 KiB pages. */
  madvise(buffers, 2 * RELAY_BUFFER_BYTES, MADV_NOHUGEPAGE);
  pair->way[0].buffer = buffers;
  pair->way[1].buffer = buffers + RELAY_BUFFER_BYTES;
  pair->fds[ROLE_CLIENT] = client;
  pair->fds[ROLE_PROXY] = proxy;
  return 0;
}

/* The poll events for one role of a pair. */
static short relay_events(const struct relay_pair *pair, int role) {
  short events = pair->full[role] ? POLLOUT : 0;
  for (int i = 0; i < 2; i++) {
    /* While the destination is full, the buffer holds what was read: read no more until it drains. */
    if (relay_source(pair, i) == role && relay_reading(pair, i) && !pair->full[relay_destination(pair, i)])
      events |= POLLIN;
  }
  if (role == ROLE_PROXY && pair->phase == PHASE_HANDING_OVER && pair->way[0].shut) events |= POLLIN;
  return events;
}

__attribute__((noreturn)) static void relay_loop(int listener, int payload, const char *socket_path) {
  static struct relay_pair pairs[RELAY_MAX_PAIRS];
  struct pollfd polled[2 + 3 * RELAY_MAX_PAIRS];
  const size_t payload_entry = 1 + 3 * RELAY_MAX_PAIRS;
  for (size_t i = 0; i < RELAY_MAX_PAIRS; i++) pairs[i].fds[0] = pairs[i].fds[1] = pairs[i].fds[2] = -1;
  for (;;) {
    size_t free_slot = RELAY_MAX_PAIRS;
    polled[0] = (struct pollfd){.fd = -1};
    for (size_t i = 0; i < RELAY_MAX_PAIRS; i++) {
      struct relay_pair *pair = &pairs[i];
      for (int role = 0; role < 3; role++) {
        struct pollfd *entry = &polled[1 + 3 * i + (size_t)role];
        *entry = (struct pollfd){.fd = pair->fds[role]};
        if (pair->fds[ROLE_CLIENT] < 0 || pair->fds[role] < 0) continue;
        entry->events = relay_events(pair, role);
        /* Nothing to wait for on this side: a hung-up peer would otherwise wake poll forever. */
        if (!entry->events) entry->fd = -1;
      }
      if (pair->fds[ROLE_CLIENT] < 0 && free_slot == RELAY_MAX_PAIRS) free_slot = i;
    }
    /* With every slot busy, new connections wait in the listen backlog. */
    if (free_slot < RELAY_MAX_PAIRS) polled[0] = (struct pollfd){.fd = listener, .events = POLLIN};
    polled[payload_entry] = (struct pollfd){.fd = payload, .events = POLLIN};
    if (poll(polled, payload_entry + 1, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (polled[payload_entry].revents) _exit(0); /* the payload is gone */
    if (polled[0].revents & POLLIN) {
      int accepted = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (accepted >= 0) {
        int proxy = relay_connect(socket_path);
        /* Buffers exist only while a connection does: an idle relay stays small. */
        if (proxy < 0 || relay_open(&pairs[free_slot], accepted, proxy) < 0) {
          close(accepted); /* the client sees a reset at once instead of a hang */
          if (proxy >= 0) close(proxy);
        } else {
          int on = 1;
          setsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        }
      }
    }
    for (size_t i = 0; i < RELAY_MAX_PAIRS; i++) {
      const struct pollfd *entries = &polled[1 + 3 * i];
      if (pairs[i].fds[ROLE_CLIENT] >= 0 && (entries[0].revents || entries[1].revents || entries[2].revents))
        relay_step(&pairs[i]);
    }
  }
}

static void bring_loopback_up(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  struct ifreq request;
  memset(&request, 0, sizeof request);
  strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFFLAGS, &request) == 0 && !(request.ifr_flags & IFF_UP)) {
    request.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &request) < 0) {
      int error = errno;
      close(fd);
      fail(EXIT_SHIM_FAILED, "relay", error, "cannot bring the loopback interface up: %s", strerror(error));
    }
  }
  close(fd);
}

/* Closes every fd but `first` and `first + 1`. */
static void close_all_but_two(int first) {
  if (syscall(SYS_close_range, 0U, (unsigned)first - 1, 0U) == 0 &&
      syscall(SYS_close_range, (unsigned)first + 2, ~0U, 0U) == 0)
    return;
  long maximum = sysconf(_SC_OPEN_MAX);
  if (maximum < 0 || maximum > 65536) maximum = 65536;
  for (int fd = 0; fd < maximum; fd++) {
    if (fd != first && fd != first + 1) close(fd);
  }
}

static void start_relay(const struct plan *plan) {
  bring_loopback_up();
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) fail(EXIT_SHIM_FAILED, "relay", errno, "cannot create the relay socket: %s", strerror(errno));
  int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)plan->relay_port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 128) < 0)
    fail(EXIT_SHIM_FAILED, "relay", errno, "cannot listen on 127.0.0.1:%u: %s", plan->relay_port, strerror(errno));
  fcntl(listener, F_SETFL, O_NONBLOCK);
  pid_t parent = getpid();
  /*
   * A clone child with no exit signal: the payload's wait()/waitpid(-1) never sees it (only
   * __WCLONE/__WALL do), so a shell's `wait` does not hang on the relay.
   */
  long child = syscall(SYS_clone, 0UL, NULL, NULL, NULL, NULL);
  if (child < 0) fail(EXIT_SHIM_FAILED, "relay", errno, "cannot start the relay: %s", strerror(errno));
  if (child == 0) {
    /*
     * Landlock's signal scope stops the payload's death signal from reaching the relay, which sits
     * outside the sandbox's domain: a pidfd of the payload, readable once it exits, ends the relay.
     * Kernels before 5.3 have no pidfd, and no Landlock scope either: the death signal works there.
     */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int payload = (int)syscall(SYS_pidfd_open, parent, 0U);
    if ((payload < 0 && errno != ENOSYS) || getppid() != parent) _exit(0);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    /* It must not hold the payload's stdio or the status fd, or their readers never see EOF. */
    if (payload >= 0 && dup2(payload, listener + 1) < 0) _exit(0);
    close_all_but_two(listener);
    signal(SIGPIPE, SIG_IGN);
    relay_loop(listener, payload >= 0 ? listener + 1 : -1, plan->relay_socket);
  }
  close(listener);
}

/* ---- restrictions ---- */

static void apply_landlock(const struct plan *plan) {
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION_FLAG);
  if (abi < 0) abi = 0;
  if (abi < plan->min_abi)
    fail(EXIT_SHIM_FAILED, "landlock-abi", 0, "required=%ld available=%ld", plan->min_abi, abi);
  /* Older kernels accept only the prefix of the attribute they know; the rest must be zero. */
  size_t size = sizeof(struct ruleset_attr);
  if (!plan->ruleset.scoped) size = offsetof(struct ruleset_attr, scoped);
  if (!plan->ruleset.scoped && !plan->ruleset.handled_access_net) size = offsetof(struct ruleset_attr, handled_access_net);
  int ruleset = (int)syscall(SYS_landlock_create_ruleset, &plan->ruleset, size, 0U);
  if (ruleset < 0) fail(EXIT_SHIM_FAILED, "landlock", errno, "cannot create the ruleset: %s", strerror(errno));
  for (size_t i = 0; i < plan->path_count; i++) {
    const struct path_rule *rule = &plan->paths[i];
    int fd = open(rule->path, O_PATH | O_CLOEXEC | (rule->no_follow ? O_NOFOLLOW : 0));
    if (fd < 0 && rule->optional && (errno == ENOENT || errno == ENOTDIR || errno == EACCES)) continue;
    if (fd < 0) fail(EXIT_SHIM_FAILED, "landlock", errno, "cannot open %s: %s", rule->path, strerror(errno));
    struct stat status;
    if (fstat(fd, &status) < 0) fail(EXIT_SHIM_FAILED, "landlock", errno, "cannot stat %s: %s", rule->path, strerror(errno));
    if (S_ISLNK(status.st_mode)) {
      close(fd);
      continue;
    }
    struct path_beneath_attr attribute = {.allowed_access = rule->mask, .parent_fd = fd};
    if (!S_ISDIR(status.st_mode)) attribute.allowed_access &= LANDLOCK_FILE_RIGHTS;
    if (attribute.allowed_access &&
        syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH_TYPE, &attribute, 0U) < 0)
      fail(EXIT_SHIM_FAILED, "landlock", errno, "cannot add the rule for %s: %s", rule->path, strerror(errno));
    close(fd);
  }
  for (size_t i = 0; i < plan->port_count; i++) {
    struct net_port_attr attribute = {.allowed_access = plan->ports[i].mask, .port = plan->ports[i].port};
    if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_NET_PORT_TYPE, &attribute, 0U) < 0)
      fail(EXIT_SHIM_FAILED, "landlock", errno, "cannot add the rule for port %llu: %s",
           (unsigned long long)plan->ports[i].port, strerror(errno));
  }
  if (syscall(SYS_landlock_restrict_self, ruleset, 0U) < 0)
    fail(EXIT_SHIM_FAILED, "landlock", errno, "cannot restrict the process: %s", strerror(errno));
  close(ruleset);
}

static void apply_seccomp(const char *filter, size_t size) {
  if (size == 0 || size % sizeof(struct sock_filter) || size > SECCOMP_MAX_BYTES)
    fail(EXIT_SHIM_FAILED, "seccomp", EINVAL, "the filter is %zu bytes, not a whole number of 1-%d instructions", size,
         BPF_MAXINSNS);
  struct sock_fprog program = {.len = (unsigned short)(size / sizeof(struct sock_filter)),
                               .filter = (struct sock_filter *)(void *)filter};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0U, &program) == 0) return;
  if (errno == ENOSYS && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) == 0) return;
  fail(EXIT_SHIM_FAILED, "seccomp", errno, "cannot load the filter: %s", strerror(errno));
}

static void reset_signals(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  for (int signal_number = 1; signal_number < NSIG; signal_number++) {
    /* SIGKILL, SIGSTOP and the libc-reserved real-time signals refuse; that is expected. */
    sigaction(signal_number, &action, NULL);
  }
  sigset_t empty;
  sigemptyset(&empty);
  if (sigprocmask(SIG_SETMASK, &empty, NULL) < 0)
    fail(EXIT_SHIM_FAILED, "signals", errno, "cannot clear the signal mask: %s", strerror(errno));
}

static void close_inherited_fds(void) {
  /* Close-on-exec rather than close: the status fd must stay open until the exec succeeds. */
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC_FLAG) == 0) return;
  long maximum = sysconf(_SC_OPEN_MAX);
  if (maximum < 0 || maximum > 65536) maximum = 65536;
  for (int fd = 3; fd < maximum; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
      fail(EXIT_SHIM_FAILED, "close-fds", errno, "cannot close fd %d: %s", fd, strerror(errno));
  }
}

/* Leaves only the variables the plan keeps, in place: execvp reads PATH from what remains. */
static void filter_environment(const struct plan *plan) {
  if (!plan->keep_count) return;
  extern char **environ;
  size_t kept = 0;
  for (char **entry = environ; *entry; entry++) {
    const char *equals = strchr(*entry, '=');
    size_t length = equals ? (size_t)(equals - *entry) : strlen(*entry);
    for (size_t i = 0; i < plan->keep_count; i++) {
      if (strlen(plan->keep_environment[i]) == length && !strncmp(plan->keep_environment[i], *entry, length)) {
        environ[kept++] = *entry;
        break;
      }
    }
  }
  environ[kept] = NULL;
}

int main(int argc, char **argv) {
  /* Read first: a parent that dies from here on is caught by the check after the prctl. */
  pid_t initial_parent = getppid();
  int config_fd = -1;
  int index = 1;
  for (; index < argc; index++) {
    const char *argument = argv[index];
    if (!strcmp(argument, "--")) break;
    if ((!strcmp(argument, "--config-fd") || !strcmp(argument, "--status-fd")) && index + 1 < argc) {
      int *target = argument[2] == 'c' ? &config_fd : &status_fd;
      if (parse_fd(argv[++index], target) || *target <= STDERR_FILENO) {
        *target = -1;
        fail(EXIT_SHIM_FAILED, "usage", EINVAL, "%s needs an fd number above 2", argument);
      }
      continue;
    }
    fail(EXIT_SHIM_FAILED, "usage", EINVAL,
         "unknown argument '%s'; usage: bulkhead-shim [--config-fd N] [--status-fd N] -- PROGRAM [ARGS...]", argument);
  }
  if (status_fd >= 0 && fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0) {
    int error = errno;
    status_fd = -1;
    fail(EXIT_SHIM_FAILED, "usage", error, "the status fd is not open: %s", strerror(error));
  }
  if (config_fd >= 0 && config_fd == status_fd) fail(EXIT_SHIM_FAILED, "usage", EINVAL, "the config and status fds must differ");
  char **command = index < argc - 1 ? &argv[index + 1] : NULL;
  if (!command && config_fd < 0) fail(EXIT_SHIM_FAILED, "usage", EINVAL, "no program after '--'");

  struct plan plan;
  memset(&plan, 0, sizeof plan);
  plan.seccomp_fd = -1;
  char *filter = NULL;
  size_t filter_size = 0;
  if (config_fd >= 0) {
    size_t size;
    char *text = read_all(config_fd, PLAN_MAX_BYTES, &size, "plan");
    parse_plan(text, size, &plan);
    if (plan.has_parent) {
      pid_t expected = plan.parent ? plan.parent : initial_parent;
      if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        fail(EXIT_SHIM_FAILED, "parent", errno, "cannot set the parent death signal: %s", strerror(errno));
      /* Reparented already: the caller died before the prctl, and nobody waits for this sandbox. */
      if (getppid() != expected)
        fail(EXIT_SHIM_FAILED, "parent", ESRCH, "the parent %d is gone (now %d)", (int)expected, (int)getppid());
    }
    if (plan.seccomp_fd >= 0) {
      if (plan.seccomp_fd == config_fd) fail(EXIT_SHIM_FAILED, "plan", EINVAL, "the seccomp fd is the config fd");
      filter = read_all(plan.seccomp_fd, SECCOMP_MAX_BYTES, &filter_size, "seccomp");
    }
  }
  if (command && plan.command_count)
    fail(EXIT_SHIM_FAILED, "usage", EINVAL, "the program is named twice: after '--' and in the plan");
  if (plan.command_count) command = plan.command;
  if (!command) fail(EXIT_SHIM_FAILED, "usage", EINVAL, "no program: neither after '--' nor in the plan");

  if (plan.has_relay) start_relay(&plan);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    fail(EXIT_SHIM_FAILED, "no-new-privs", errno, "cannot set no_new_privs: %s", strerror(errno));
  for (size_t i = 0; i < plan.limit_count; i++) {
    if (setrlimit(plan.limits[i].resource, &plan.limits[i].value) < 0)
      fail(EXIT_SHIM_FAILED, "rlimit", errno, "cannot set rlimit %d: %s", plan.limits[i].resource, strerror(errno));
  }
  if (plan.chdir_path && chdir(plan.chdir_path) < 0)
    fail(EXIT_SHIM_FAILED, "chdir", errno, "cannot enter %s: %s", plan.chdir_path, strerror(errno));
  if (plan.has_landlock) apply_landlock(&plan);
  if (filter) apply_seccomp(filter, filter_size);
  /* Already a session leader (bubblewrap --new-session) is as good as a new session. */
  if (setsid() < 0 && getsid(0) != getpid())
    fail(EXIT_SHIM_FAILED, "setsid", errno, "cannot start a new session: %s", strerror(errno));
  reset_signals();
  close_inherited_fds();
  filter_environment(&plan);
  execvp(command[0], command);
  int error = errno;
  fail(error == ENOENT || error == ENOTDIR ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE, "exec", error, "%s: %s", command[0],
       strerror(error));
}
