# An upload client written like the seed's "FTP" client: a struct.pack('i') length, a
# json.dumps header (ASCII-escaped: non-ASCII folder and file names travel as \uXXXX escapes,
# emoji as surrogate pairs), then the file in 1024-byte pieces, then close without reading any
# reply.
#
# usage: ftp_seed_upload.py PORT FOLDER FILENAME [--md5 | --bad-md5] [--buffer N]
import hashlib
import json
import os
import socket
import struct
import sys

port = int(sys.argv[1])
folder = sys.argv[2]
filename = sys.argv[3]
extra = sys.argv[4:]
buffer = 1024
if '--buffer' in extra:
    buffer = int(extra[extra.index('--buffer') + 1])

sk = socket.socket()
sk.connect(('127.0.0.1', port))
head = {
    'filepath': folder,  # the client's own folder, as in the seed
    'filename': filename,
    'filesize': None,
}
file_path = os.path.join(head['filepath'], head['filename'])
filesize = os.path.getsize(file_path)
head['filesize'] = filesize
if '--md5' in extra or '--bad-md5' in extra:
    with open(file_path, 'rb') as f:
        digest = hashlib.md5(f.read()).hexdigest()
    if '--bad-md5' in extra:
        digest = ('0' if digest[0] != '0' else '1') + digest[1:]
    head['md5'] = digest
json_head = json.dumps(head)
bytes_head = json_head.encode('utf-8')
sk.send(struct.pack('i', len(bytes_head)))
sk.send(bytes_head)
with open(file_path, 'rb') as f:
    while filesize:
        if filesize >= buffer:
            content = f.read(buffer)
            sk.sendall(content)
            filesize -= buffer
        else:
            content = f.read(filesize)
            sk.sendall(content)
            break
sk.close()
