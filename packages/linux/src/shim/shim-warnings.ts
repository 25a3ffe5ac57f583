/** Said by a plan for the host view (and by the probe, for doctor): what the unix-socket rule costs. */
export const UNIX_SOCKETS_REFUSED_WARNING =
  'without a mount namespace, the payload cannot create unix sockets (socket(AF_UNIX) and datagram socketpairs are refused by seccomp), since Landlock does not filter connect() on path-named sockets such as /run/docker.sock; stream socketpairs still work';
