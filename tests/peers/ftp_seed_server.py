# An upload server written like the seed's "FTP" server: reads a struct.pack('i') length, a JSON
# header, then `filesize` bytes with recv(1024), and writes them to head['filename'] in the
# current directory. One connection, then exit. Unlike the seed it counts the bytes recv really
# returned (the seed subtracts the buffer size and loses data when recv returns short).
#
# usage: ftp_seed_server.py DIR [--buffer N]   (prints the bound port on its first line)
import json
import os
import socket
import struct
import sys

os.chdir(sys.argv[1])
buffer = 1024
if '--buffer' in sys.argv:
    buffer = int(sys.argv[sys.argv.index('--buffer') + 1])

sk = socket.socket()
sk.bind(('127.0.0.1', 0))
sk.listen()
print(sk.getsockname()[1], flush=True)
conn, addr = sk.accept()


def recv_exactly(n):
    data = b''
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError('connection closed early')
        data += chunk
    return data


head_len = struct.unpack('i', recv_exactly(4))[0]
head = json.loads(recv_exactly(head_len).decode('utf-8'))
filesize = head['filesize']
with open(os.path.basename(head['filename']), 'wb') as f:
    while filesize:
        content = conn.recv(min(buffer, filesize))
        if not content:
            break
        f.write(content)
        filesize -= len(content)
    f.flush()
    os.fsync(f.fileno())
conn.close()
sk.close()
