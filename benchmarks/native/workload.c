/*
 * The payload the benchmarks run inside and outside each sandbox. It times its own work with
 * CLOCK_MONOTONIC so that launch cost never pollutes the CPU-overhead figures, and it reports host
 * facts Node cannot read without native bindings.
 *
 *   workload cpu ITERATIONS        CPU-bound loop; prints elapsed nanoseconds
 *   workload syscalls ITERATIONS PATH   stat+open+read+close of PATH; prints elapsed nanoseconds
 *   workload hold                  prints "ready", then waits for end of stdin
 *   workload landlock-abi          prints the Landlock ABI version (or -errno)
 *   workload kvm                   prints KVM's API version (or -errno)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

static int syscalls(unsigned long iterations, const char *path) {
  char buffer[4096];
  struct stat status;
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

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "cpu") == 0) return cpu(strtoul(argv[2], NULL, 10));
  if (argc >= 4 && strcmp(argv[1], "syscalls") == 0) return syscalls(strtoul(argv[2], NULL, 10), argv[3]);
  if (argc >= 2 && strcmp(argv[1], "hold") == 0) return hold();
  if (argc >= 2 && strcmp(argv[1], "landlock-abi") == 0) return landlock_abi();
  if (argc >= 2 && strcmp(argv[1], "kvm") == 0) return kvm();
  fprintf(stderr, "usage: workload cpu N | syscalls N PATH | hold | landlock-abi | kvm\n");
  return 2;
}
