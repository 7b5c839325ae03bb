"""The seed's upload client on unstick's framing: one file to the file server, checked by MD5.

    unstick ftp serve --root incoming        # in another terminal
    python3 upload_client.py FILE [HOST:PORT]
"""
import os
import socket
import sys

import unstick

file_path = sys.argv[1]
host, _, port = (sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:8090").rpartition(":")
sk = socket.create_connection((host, int(port)))
head = {
    "filepath": os.path.dirname(os.path.abspath(file_path)),  # the seed's header, as it was
    "filename": os.path.basename(file_path),
}
with open(file_path, "rb") as f:
    # "filesize" as the seed writes it, and an "md5" the server checks before it keeps the file.
    unstick.send_frame(sk, head, f.read(), "md5", size_field="filesize")
reply = unstick.recv_frame(sk)
print(reply.header)
sk.close()
sys.exit(reply.header.get("op") != "stored")
