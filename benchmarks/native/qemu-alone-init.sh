#!/.bulkhead/bin/busybox sh
# PID 1 of the "QEMU microvm alone" peer: the micro-VM tier's guest kernel and initramfs, booted by
# plain QEMU with this script as rdinit instead of the tier's init (which waits for a launch on the
# control port). It runs the payload the kernel command line names and reboots, which with
# `reboot=t -no-reboot` ends QEMU:
#   bench_payload=true   busybox true (the launch-to-exit figure)
#   bench_payload=echo   writes "bulkhead" to the control port, which QEMU puts on its stdout
#   bench_payload=hold   writes "ready" there, then idles until QEMU is killed (memory)
b=/.bulkhead/bin/busybox
port() {
  for candidate in /dev/vport*p*; do
    [ -e "$candidate" ] && echo "$candidate" && return 0
  done
  return 1
}
say() {
  $b mount -t devtmpfs dev /dev
  # The virtio-serial port registers asynchronously after the kernel starts init.
  until p=$(port); do $b usleep 1000; done
  echo "$1" >"$p"
}
case "$bench_payload" in
  true) $b true ;;
  echo) say bulkhead ;;
  hold) say ready && $b sleep 100000 ;;
esac
$b reboot -f
