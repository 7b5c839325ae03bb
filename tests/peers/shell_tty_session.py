"""Runs `unstick shell connect ADDR` with a terminal as its stdin, types the given lines, then
Ctrl-D, and prints what the client wrote to its stdout (a pipe) as hex.

usage: shell_tty_session.py UNSTICK ADDR LINE...
"""
import os
import subprocess
import sys


def main():
    unstick, addr, lines = sys.argv[1], sys.argv[2], sys.argv[3:]
    master, slave = os.openpty()
    client = subprocess.Popen([unstick, 'shell', 'connect', addr], stdin=slave,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    os.close(slave)
    for line in lines:
        os.write(master, line.encode('utf-8') + b'\n')
    os.write(master, b'\x04')  # Ctrl-D at the start of a line: the end of input
    out, _ = client.communicate(timeout=20)
    os.close(master)
    print(out.hex())
    sys.exit(client.returncode)


if __name__ == '__main__':
    main()
