"""A shell server written like the seed's final one: recv(1024) is the command, run with
shell=True, stdout read fully and then stderr, one reply of [4-byte LE header length][JSON
header][stdout + stderr]. Prints its port on the first line.

usage: shell_seed_server.py [--real-md5] [--forever] [--nodelay]
  --real-md5  put the body's real MD5 in the header (default: the seed's placeholder)
  --forever   serve connection after connection (default: one connection, then exit)
  --nodelay   set TCP_NODELAY on connections (the seed does not: its four small sends per
              reply then wait on delayed ACKs)
"""
import hashlib
import json
import socket
import struct
import subprocess
import sys


def serve_connection(conn, real_md5):
    while 1:
        try:
            cmd = conn.recv(1024)
        except (ConnectionResetError, socket.timeout):
            break
        if not cmd:
            break
        ret = subprocess.Popen(cmd.decode('utf-8'), shell=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        correct_msg = ret.stdout.read()
        error_msg = ret.stderr.read()
        ret.wait()
        total_size = len(correct_msg) + len(error_msg)
        body = correct_msg + error_msg
        header_dict = {
            'md5': hashlib.md5(body).hexdigest() if real_md5 else 'fdsaf2143254f',
            'file_name': 'f1.txt',
            'total_size': total_size,
        }
        bytes_headers = json.dumps(header_dict).encode('utf-8')
        conn.send(struct.pack('i', len(bytes_headers)))
        conn.send(bytes_headers)
        conn.send(correct_msg)
        conn.send(error_msg)
    conn.close()


def main():
    real_md5 = '--real-md5' in sys.argv
    forever = '--forever' in sys.argv
    nodelay = '--nodelay' in sys.argv
    phone = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    phone.bind(('127.0.0.1', 0))
    phone.listen(5)
    print(phone.getsockname()[1], flush=True)
    if not forever:
        phone.settimeout(30)
    while 1:
        conn, client_addr = phone.accept()
        if nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not forever:
            conn.settimeout(30)
        serve_connection(conn, real_md5)
        if not forever:
            break
    phone.close()


if __name__ == '__main__':
    main()
