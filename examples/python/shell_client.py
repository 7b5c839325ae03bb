"""The seed's remote shell client on unstick's framing: each command's output comes back whole.

    unstick shell serve                      # in another terminal
    python3 shell_client.py [HOST:PORT]      # then type commands at >>>
"""
import socket
import sys

import unstick

host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080").rpartition(":")
phone = socket.create_connection((host, int(port)))
while 1:
    try:
        cmd = input(">>>").strip()
    except EOFError:
        break
    if not cmd:
        continue
    unstick.send_frame(phone, {"op": "exec"}, cmd.encode("utf-8"), "xxh3")
    while 1:
        reply = unstick.recv_frame(phone)  # one whole frame, its xxh3 checked
        op = reply.header["op"]
        if op in ("stdout", "stderr"):
            out = sys.stdout if op == "stdout" else sys.stderr
            out.flush()
            out.buffer.write(reply.body)
            out.buffer.flush()
        elif op == "error":  # refused: the message says why
            print(reply.header["message"], file=sys.stderr)
            break
        elif op == "exit":  # {"code": N} or {"signal": N}
            break
phone.close()
