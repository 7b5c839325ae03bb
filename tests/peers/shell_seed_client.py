"""A shell client written like the seed's: the command goes out as raw text, the reply comes
back as the seed's server framed it. Prints one JSON line per command.

usage: shell_seed_client.py HOST PORT json|size|raw COMMAND...
"""
import hashlib
import json
import socket
import struct
import sys


def recv_exactly(phone, size):
    data = b''
    while len(data) < size:
        chunk = phone.recv(size - len(data))
        if not chunk:
            raise ConnectionError('server closed the connection')
        data += chunk
    return data


def recv_body(phone, total_size):
    # As the seed's client: recv(1024) until total_size bytes are in.
    recv_size = 0
    res = b''
    while recv_size < total_size:
        recv_data = phone.recv(1024)
        if not recv_data:
            raise ConnectionError('server closed the connection')
        res += recv_data
        recv_size += len(recv_data)
    return res


def as_gbk(body):
    # What the seed's second client prints: the reply decoded as GBK.
    try:
        return body.decode('gbk')
    except UnicodeDecodeError as e:
        return 'UnicodeDecodeError: ' + str(e)


def ask_json(phone):
    header_size = struct.unpack('i', recv_exactly(phone, 4))[0]
    header_dict = json.loads(recv_exactly(phone, header_size).decode('utf-8'))
    body = recv_body(phone, header_dict['total_size'])
    return {
        'header': header_dict,
        'body': body.hex(),
        'md5_ok': hashlib.md5(body).hexdigest() == header_dict.get('md5'),
        'gbk': as_gbk(body),
    }


def ask_size(phone):
    total_size = struct.unpack('i', recv_exactly(phone, 4))[0]
    return {'body': recv_body(phone, total_size).hex()}


def ask_raw(phone):
    # The seed's first client reads once; the rest of a larger reply follows quickly.
    res = phone.recv(1024)
    phone.settimeout(0.3)
    try:
        while True:
            more = phone.recv(1024)
            if not more:
                break
            res += more
    except socket.timeout:
        pass
    phone.settimeout(20)
    return {'body': res.hex()}


def main():
    host, port, reply_format = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ask = {'json': ask_json, 'size': ask_size, 'raw': ask_raw}[reply_format]
    phone = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    phone.settimeout(20)
    phone.connect((host, port))
    for cmd in sys.argv[4:]:
        phone.send(cmd.encode('utf-8'))
        print(json.dumps(ask(phone)), flush=True)
    phone.close()


if __name__ == '__main__':
    main()
