"""Ports for the local servers the scripts start (LocalStack, cargo lambda
watch), which need their port given up front.

  ports.py free               a port free on 127.0.0.1 now (it may be taken
                              before the server binds it: start_server in
                              lib/servers.sh retries on a new one)
  ports.py listens PORT PID   exit 0 if the TCP listener on PORT belongs to
                              PID or one of its descendants, 1 otherwise
                              (read from /proc: a server answering on the port
                              may be another process that holds it)
"""

import os
import socket
import sys


def free():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def socket_owners(inodes):
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    yield int(pid)
                    break
            except OSError:
                continue


def parent(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0
    # The command name is in parentheses and may hold spaces: fields follow the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def descends_from(pid, ancestor):
    while pid > 1:
        if pid == ancestor:
            return True
        pid = parent(pid)
    return pid == ancestor


def main(args):
    if args[:1] == ["free"]:
        print(free())
        return 0
    if len(args) == 3 and args[0] == "listens":
        port, pid = int(args[1]), int(args[2])
        owners = socket_owners(listening_inodes(port))
        return 0 if any(descends_from(o, pid) for o in owners) else 1
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
